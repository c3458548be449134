// The stack's trusted CAs as one PEM bundle: caCertPem plus, during a rotation, extraTrustedCaPem (README "Rotating
// the CA"). nginx verifies the WorksPad upstreams with it and the WorksPad nodes install it into their trust store.
import * as crypto from "crypto";

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificates of a PEM text, each as its own PEM; undefined when anything else than certificates is in it. */
export function splitPemCertificates(text: string): string[] | undefined {
  const blocks = text.match(PEM_CERT) ?? [];
  if (text.replace(PEM_CERT, "").trim() !== "") return undefined;
  return blocks.map((b) => `${b}\n`);
}

/**
 * One bundle of the distinct certificates in `pems`, in a fixed order (by SHA-256 fingerprint), each in OpenSSL's
 * canonical PEM form. The order does not follow which CA issues: swapping caCertPem and extraTrustedCaPem (the
 * rotation's second step) leaves the bundle byte for byte the same, so no trust file changes and nothing reloads.
 */
export function trustBundle(...pems: (string | undefined)[]): string {
  const certs = new Map<string, string>();
  for (const pem of pems) {
    for (const block of (pem ? splitPemCertificates(pem) : undefined) ?? []) {
      const x = new crypto.X509Certificate(block);
      certs.set(x.fingerprint256, x.toString());
    }
  }
  return [...certs.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, pem]) => pem.endsWith("\n") ? pem : `${pem}\n`).join("");
}
