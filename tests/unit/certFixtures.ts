// Real certificates for the unit tests, made once per test file with the openssl CLI (Node cannot
// issue X.509 itself): a CA, a server certificate it issued, a self-signed non-CA certificate,
// a 1-day certificate, and an unrelated key.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface CertFixtures {
  readonly caCertPem: string;
  readonly caKeyPem: string;
  /** Issued by the CA, for a server. */
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  /** Self-signed, basicConstraints CA:FALSE (a leaf, not a CA). */
  readonly leafCertPem: string;
  readonly leafKeyPem: string;
  /** Self-signed, valid for one day: expired at `expiredNow()`. */
  readonly expiredCertPem: string;
  readonly expiredKeyPem: string;
  /** A key no certificate here belongs to. */
  readonly otherKeyPem: string;
  /** A second CA (the new CA of a rotation) and a server certificate it issued for wp1. */
  readonly ca2CertPem: string;
  readonly ca2KeyPem: string;
  readonly server2CertPem: string;
  readonly server2KeyPem: string;
}

let cached: CertFixtures | undefined;

export function certFixtures(): CertFixtures {
  if (cached) return cached;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-certs-"));
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  const key = (n: string) => ssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f(n));
  try {
    for (const k of ["ca.key", "server.key", "leaf.key", "expired.key", "other.key", "ca2.key", "server2.key"]) key(k);
    ssl("req", "-x509", "-new", "-key", f("ca.key"), "-subj", "/CN=test CA", "-days", "3650", "-out", f("ca.crt"),
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
    ssl("req", "-new", "-key", f("server.key"), "-subj", "/CN=wp1", "-out", f("server.csr"));
    fs.writeFileSync(f("server.ext"), "basicConstraints=CA:FALSE\nsubjectAltName=DNS:wp1,DNS:workspad\n");
    ssl("x509", "-req", "-in", f("server.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-days", "365",
      "-extfile", f("server.ext"), "-out", f("server.crt"));
    ssl("req", "-x509", "-new", "-key", f("ca2.key"), "-subj", "/CN=test CA 2", "-days", "3650", "-out", f("ca2.crt"),
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
    ssl("req", "-new", "-key", f("server2.key"), "-subj", "/CN=wp1", "-out", f("server2.csr"));
    ssl("x509", "-req", "-in", f("server2.csr"), "-CA", f("ca2.crt"), "-CAkey", f("ca2.key"), "-CAcreateserial", "-days", "365",
      "-extfile", f("server.ext"), "-out", f("server2.crt"));
    ssl("req", "-x509", "-new", "-key", f("leaf.key"), "-subj", "/CN=not a CA", "-days", "365", "-out", f("leaf.crt"),
      "-addext", "basicConstraints=critical,CA:FALSE");
    // OpenSSL 3.0 (Debian 12) cannot set an end date in the past: a 1-day certificate, checked with a later `now`
    ssl("req", "-x509", "-new", "-key", f("expired.key"), "-subj", "/CN=expired", "-days", "1", "-out", f("expired.crt"));
    const r = (n: string) => fs.readFileSync(f(n), "utf8");
    cached = {
      caCertPem: r("ca.crt"), caKeyPem: r("ca.key"), serverCertPem: r("server.crt"), serverKeyPem: r("server.key"),
      leafCertPem: r("leaf.crt"), leafKeyPem: r("leaf.key"), expiredCertPem: r("expired.crt"), expiredKeyPem: r("expired.key"),
      otherKeyPem: r("other.key"),
      ca2CertPem: r("ca2.crt"), ca2KeyPem: r("ca2.key"), server2CertPem: r("server2.crt"), server2KeyPem: r("server2.key"),
    };
    return cached;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A `now` at which the 1-day `expired` certificate has expired but the others (365+ days) are still valid. */
export function expiredNow(): Date {
  return new Date(Date.now() + 3 * 24 * 3600 * 1000);
}
