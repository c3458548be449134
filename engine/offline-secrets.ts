// Passwords and certificates for stacks run where the random/tls providers cannot be had:
// made here with Node's crypto and the openssl CLI, handed to the stack as secret config
// (the same `hastack:passwords` / `hastack:certificates` keys a user fills from a vault).
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigMap } from "@pulumi/pulumi/automation";
import { PASSWORD_NAMES, PasswordName } from "../stacks/secrets";

const SPECIAL = "/=\\'\"$";

/** A password that always contains the characters that break naive quoting. */
export function strongPassword(length = 24): string {
  const alnum = crypto.randomBytes(length).toString("base64").replace(/[^A-Za-z0-9]/g, "").slice(0, length - SPECIAL.length);
  return `${alnum.slice(0, 4)}${SPECIAL}${alnum.slice(4)}`;
}

export function offlinePasswords(): Record<PasswordName, string> {
  const out = {} as Record<PasswordName, string>;
  for (const n of PASSWORD_NAMES) {
    // keepalived reads only 8 characters of auth_pass; keep those plain
    out[n] = /Keepalived$/.test(n) ? crypto.randomBytes(6).toString("base64").replace(/[^A-Za-z0-9]/g, "x").slice(0, 8) : strongPassword();
  }
  return out;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** A CA, one server certificate per host (SAN = its name and address), one data-protection certificate. */
export function offlineCertificates(hosts: readonly { name: string; address: string; dnsNames?: string[] }[]) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-pki-"));
  try {
    openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
      "-days", "3650", "-subj", "/O=hastack/CN=hastack offline CA", "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
    const servers: Record<string, { certPem: string; keyPem: string }> = {};
    for (const h of hosts) {
      fs.writeFileSync(path.join(dir, `${h.name}.ext`),
        `subjectAltName=${[h.name, ...(h.dnsNames ?? [])].map((d) => `DNS:${d}`).join(",")},IP:${h.address}\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
      openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${h.name}.key`, "-out", `${h.name}.csr`,
        "-subj", `/O=hastack/CN=${h.name}`], dir);
      openssl(["x509", "-req", "-in", `${h.name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "730",
        "-extfile", `${h.name}.ext`, "-out", `${h.name}.crt`], dir);
      servers[h.name] = { certPem: fs.readFileSync(path.join(dir, `${h.name}.crt`), "utf8"), keyPem: fs.readFileSync(path.join(dir, `${h.name}.key`), "utf8") };
    }
    openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "dp.key", "-out", "dp.crt", "-days", "3650",
      "-subj", "/O=hastack/CN=WorksPad data protection"], dir);
    return {
      caCertPem: fs.readFileSync(path.join(dir, "ca.crt"), "utf8"),
      servers,
      dataProtection: { certPem: fs.readFileSync(path.join(dir, "dp.crt"), "utf8"), keyPem: fs.readFileSync(path.join(dir, "dp.key"), "utf8") },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Secret config entries for a stack whose hosts are `hosts`, one secure value per leaf. */
export function offlineSecretsConfig(hosts: readonly { name: string; address: string; dnsNames?: string[] }[]): ConfigMap {
  return { ...secretLeaves("hastack:passwords", offlinePasswords()), ...secretLeaves("hastack:certificates", offlineCertificates(hosts)) };
}

/**
 * An object as one secure config value per leaf (`key.a.b`, set with --path), the way a user sets
 * `pulumi config set --secret --path passwords.postgresApp …`. Not one secret JSON blob: the CLI
 * redacts each secure config value from engine diagnostics (the Node SDK's debug log of every
 * RegisterResource response carries secret inputs in plaintext), and it can only redact values it
 * knows whole, so a password inside a blob would go out unredacted.
 */
export function secretLeaves(key: string, value: unknown, out: ConfigMap = {}): ConfigMap {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (!/^[A-Za-z0-9_-]+$/.test(k)) throw new Error(`${key}: key ${JSON.stringify(k)} cannot be a config path segment`);
      secretLeaves(`${key}.${k}`, v, out);
    }
  } else if (typeof value === "string") {
    out[key] = { value, secret: true };
  } else {
    throw new Error(`${key}: expected a string or an object of strings`);
  }
  return out;
}
