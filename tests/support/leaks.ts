// Finding secrets where they must not be: the strings that would give a secret away, and a sampler
// of every process's command line on this machine (lab VMs' processes included: their pid
// namespaces are children of the host's, so /proc shows them).
import * as fs from "fs";

/**
 * Strings that would give a secret away: itself, JSON-escaped, base64 and URL-encoded; for a key,
 * each body line (a leak need not keep the line breaks); with `derived`, a password's long
 * alphanumeric runs too, which catch it quoted or escaped inside a file or a connection string.
 */
export function needles(secret: string, derived: boolean): string[] {
  const out = new Set([secret, JSON.stringify(secret).slice(1, -1), Buffer.from(secret).toString("base64"), encodeURIComponent(secret)]);
  if (/PRIVATE KEY/.test(secret)) {
    for (const line of secret.split("\n")) if (line.length >= 16 && !line.startsWith("-----")) out.add(line);
  } else if (derived) {
    for (const run of secret.match(/[A-Za-z0-9]{12,}/g) ?? []) out.add(run);
  }
  return [...out].filter((n) => n.length >= 8);
}

/** One line per (place, secret) found; secrets are named by index, never shown. */
export function leaks(where: string, text: string, secrets: readonly string[], derived = true): string[] {
  const found: string[] = [];
  secrets.forEach((s, i) => {
    for (const n of needles(s, derived)) if (text.includes(n)) { found.push(`${where}: secret #${i} (${n.length} chars of it)`); break; }
  });
  return found;
}

/** Samples /proc/PID/cmdline of every process every `everyMs` until stopped; returns the distinct command lines. */
export function sampleCommandLines(everyMs = 100): { stop(): string[] } {
  const seen = new Set<string>();
  const sample = () => {
    for (const pid of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
        if (cmd) seen.add(cmd);
      } catch { /* the process ended */ }
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return { stop() { clearInterval(timer); sample(); return [...seen]; } };
}
