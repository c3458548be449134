/**
 * Single-quote a string for POSIX sh: the one way hastack puts a value into shell text. Inside single
 * quotes nothing is special, so only `'` itself needs the close-escape-reopen dance. A shell word
 * cannot hold a NUL byte (the kernel passes argv as C strings), so such a value is refused instead of
 * silently cut short.
 */
export function shq(s: string): string {
  if (s.includes("\0")) throw new Error("shq: a NUL byte cannot be passed through a shell word");
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
