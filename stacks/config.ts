import * as pulumi from "@pulumi/pulumi";
import { SshAccess, invalid, isCidr } from "../components/common";
import { PasswordName } from "./secrets";
import { SuppliedCertificates } from "./pki";

/** Everything a datacenter stack reads from `hastack:*` config, before component validation. */
export interface StackConfig {
  readonly subnet: string;
  readonly ssh: SshAccess;
  readonly postgres: unknown;
  readonly proxy: unknown;
  readonly workspad: unknown;
  readonly nginx: unknown;
  readonly redis: unknown;
  readonly passwords: Partial<Record<PasswordName, string>>;
  readonly certificates: SuppliedCertificates;
}

/** Plain reader of one config key (object values already parsed), so loading is testable without Pulumi. */
export type ConfigReader = (key: string) => unknown;

/** Read and check the top-level settings; component sections are validated by their own resolvers. */
export function readStackConfig(get: ConfigReader): StackConfig {
  const subnet = get("subnet");
  if (!isCidr(subnet)) invalid("hastack:subnet", subnet, "an IPv4 subnet in CIDR form, such as 192.168.1.0/24");
  const key = get("sshPrivateKey");
  if (typeof key !== "string" || key.trim() === "") {
    invalid("hastack:sshPrivateKey", key === undefined ? undefined : "(empty)",
      "an SSH private key, set with `pulumi config set --secret hastack:sshPrivateKey < KEYFILE`");
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
    invalid("hastack:sshPrivateKey", "(a value that is not a private key; not shown)", "a PEM or OpenSSH private key beginning with -----BEGIN … PRIVATE KEY-----");
  }
  const ssh = (get("ssh") ?? {}) as Record<string, unknown>;
  const user = ssh.user ?? "root";
  if (typeof user !== "string" || !/^[a-z_][a-z0-9_-]*$/.test(user)) invalid("hastack:ssh.user", user, "a Unix user name");
  const port = ssh.port ?? 22;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) invalid("hastack:ssh.port", port, "a TCP port 1–65535");
  const hostKeys = ssh.hostKeys as Record<string, string> | undefined;
  if (hostKeys !== undefined && (typeof hostKeys !== "object" || Object.values(hostKeys).some((k) => typeof k !== "string" || !/^(ssh-|ecdsa-)/.test(k)))) {
    invalid("hastack:ssh.hostKeys", hostKeys, "a map from host address to a public host key line such as 'ssh-ed25519 AAAA…'");
  }
  return {
    subnet,
    ssh: { privateKey: pulumi.secret(key), user, port, hostKeys },
    postgres: get("postgres"),
    proxy: get("proxy"),
    workspad: get("workspad"),
    nginx: get("nginx"),
    redis: get("redis"),
    passwords: (get("passwords") ?? {}) as Partial<Record<PasswordName, string>>,
    certificates: (get("certificates") ?? {}) as SuppliedCertificates,
  };
}

/** The reader for a running Pulumi program: objects parsed, secrets read as values and re-wrapped by the callers. */
export function pulumiConfigReader(): ConfigReader {
  const cfg = new pulumi.Config("hastack");
  return (key) => {
    const raw = cfg.get(key);
    if (raw === undefined) return undefined;
    try { return JSON.parse(raw); } catch { return raw; }
  };
}
