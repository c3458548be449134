// The SCRAM secret the stack gives PostgreSQL and PgBouncer: checked here by running the server's half of
// a SCRAM-SHA-256 exchange (RFC 5802) against it; PostgreSQL and PgBouncer accepting it is in
// tests/daemons/pgBouncerVipPair.test.ts.
import * as crypto from "crypto";
import { SCRAM_ITERATIONS, scramSecret } from "../../components/common/scram";

const hmac = (key: Buffer, text: string) => crypto.createHmac("sha256", key).update(text).digest();
const sha256 = (b: Buffer) => crypto.createHash("sha256").update(b).digest();

/** A client's proof for `password` (computed from the salt and iterations the server announces), checked as a server checks it. */
function serverAccepts(secret: string, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(secret);
  if (!m) throw new Error(`not a SCRAM secret: ${secret}`);
  const [iterations, salt, storedKey] = [Number(m[1]), Buffer.from(m[2], "base64"), Buffer.from(m[3], "base64")];
  const authMessage = `n=,r=abc,r=abcdef,s=${m[2]},i=${iterations},c=biws,r=abcdef`;
  // client side
  const clientKey = hmac(crypto.pbkdf2Sync(password, salt, iterations, 32, "sha256"), "Client Key");
  const proof = Buffer.from(clientKey.map((b, i) => b ^ hmac(sha256(clientKey), authMessage)[i]));
  // server side: only StoredKey is known
  const recovered = Buffer.from(proof.map((b, i) => b ^ hmac(storedKey, authMessage)[i]));
  return sha256(recovered).equals(storedKey);
}

describe("scramSecret", () => {
  const pw = `jhYg/=\\F'"$`;
  test("is PostgreSQL's format with the default iteration count and a 16-byte salt", () => {
    const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(scramSecret("workspad", pw)!);
    expect(m).not.toBeNull();
    expect([Number(m![1]), Buffer.from(m![2], "base64").length, Buffer.from(m![3], "base64").length, Buffer.from(m![4], "base64").length])
      .toEqual([SCRAM_ITERATIONS, 16, 32, 32]);
  });
  test("a login with the password passes, one with another password fails", () => {
    const secret = scramSecret("workspad", pw)!;
    expect(serverAccepts(secret, pw)).toBe(true);
    expect(serverAccepts(secret, pw + "x")).toBe(false);
  });
  test("is the same on every run and every stack (sites share it), but differs per role and password", () => {
    expect(scramSecret("workspad", pw)).toBe(scramSecret("workspad", pw));
    expect(scramSecret("other", pw)).not.toBe(scramSecret("workspad", pw));
    expect(scramSecret("workspad", pw + "x")).not.toBe(scramSecret("workspad", pw));
  });
  test("leaves a non-ASCII or empty password to PostgreSQL's own hashing", () => {
    expect(scramSecret("workspad", "pässwörd")).toBeUndefined();
    expect(scramSecret("workspad", "")).toBeUndefined();
  });
});
