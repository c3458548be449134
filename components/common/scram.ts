import * as crypto from "crypto";

/** PostgreSQL's default (and PgBouncer 1.18's fixed) PBKDF2 iteration count for SCRAM-SHA-256. */
export const SCRAM_ITERATIONS = 4096;

/**
 * The SCRAM-SHA-256 secret of a role as PostgreSQL stores it in pg_authid
 * (`SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`, RFC 5802 / 7677).
 *
 * The same secret goes to PostgreSQL (ALTER ROLE … PASSWORD '<secret>', stored as given) and to
 * PgBouncer's auth_file. PgBouncer then checks a client's login with two HMACs instead of running
 * 4096 PBKDF2 rounds per login on its one thread (what a plain-text entry costs), and logs in to
 * PostgreSQL with the keys the client proved (SCRAM pass-through, which needs the identical secret).
 * The salt is derived from the role name and password, so every stack (and every site of a
 * multi-site database) computes the same secret without sharing one more value; it is still
 * per role, so one precomputed table does not serve all roles.
 *
 * Returns undefined for a password with non-ASCII characters: PostgreSQL runs SASLprep on those
 * first, which is not reproduced here; such a password stays plain text on both sides.
 */
export function scramSecret(role: string, password: string): string | undefined {
  if (!/^[\x00-\x7f]*$/.test(password) || password.length === 0) return undefined;
  const salt = crypto.createHmac("sha256", password).update(`hastack scram salt\0${role}`).digest().subarray(0, 16);
  const salted = crypto.pbkdf2Sync(password, salt, SCRAM_ITERATIONS, 32, "sha256");
  const hmac = (key: Buffer, text: string) => crypto.createHmac("sha256", key).update(text).digest();
  const storedKey = crypto.createHash("sha256").update(hmac(salted, "Client Key")).digest();
  const serverKey = hmac(salted, "Server Key");
  return `SCRAM-SHA-256$${SCRAM_ITERATIONS}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}
