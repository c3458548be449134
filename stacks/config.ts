import * as pulumi from "@pulumi/pulumi";
import { SshAccess, invalid, isCidr, isIPv4 } from "../components/common";
import { PasswordName } from "./secrets";
import { SuppliedCertificates } from "./pki";
import { ResolvedFirewallSettings, resolveFirewallSettings } from "../components/firewall/args";
import { ResolvedPolicySettings, resolvePolicySettings } from "../policy/settings";

/** Everything a datacenter stack reads from `hastack:*` config, before component validation. */
export interface StackConfig {
  readonly subnet: string;
  readonly ssh: SshAccess;
  readonly postgres: unknown;
  readonly proxy: unknown;
  readonly workspad: unknown;
  readonly nginx: unknown;
  readonly redis: unknown;
  /** `hastack:site` (raw; resolved by resolveSiteSettings): absent for a single datacenter. */
  readonly site?: unknown;
  readonly passwords: Partial<Record<PasswordName, string>>;
  readonly certificates: SuppliedCertificates;
  /** `hastack:firewall`, validated (unknown keys refused) with its defaults applied. */
  readonly firewall: ResolvedFirewallSettings;
  /** `hastack:vmmanager` (raw; resolved by inventory/vmmanager with the hosts' `vm` flags): absent when every host is hand-made. */
  readonly vmmanager?: unknown;
  /** `hastack:backup` (raw; resolved by resolvePgBackRestSettings with the database hosts): absent or {} = no backups. */
  readonly backup?: unknown;
  /** `hastack:policy`, validated: production or not, and the policy pack's waivers (policy/settings.ts). */
  readonly policy: ResolvedPolicySettings;
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
  const SSH_KEYS = ["user", "port", "hostKeys", "trustOnFirstUse"];
  if (typeof ssh !== "object" || Array.isArray(ssh)) invalid("hastack:ssh", ssh, `an object with ${SSH_KEYS.join(", ")}`);
  for (const k of Object.keys(ssh)) if (!SSH_KEYS.includes(k)) invalid(`hastack:ssh.${k}`, ssh[k], `no such key; known keys are ${SSH_KEYS.join(", ")}`);
  const trustOnFirstUse = ssh.trustOnFirstUse ?? false;
  if (typeof trustOnFirstUse !== "boolean") invalid("hastack:ssh.trustOnFirstUse", trustOnFirstUse, "true or false");
  const user = ssh.user ?? "root";
  if (typeof user !== "string" || !/^[a-z_][a-z0-9_-]*$/.test(user)) invalid("hastack:ssh.user", user, "a Unix user name");
  const port = ssh.port ?? 22;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) invalid("hastack:ssh.port", port, "a TCP port 1–65535");
  const hostKeys = ssh.hostKeys as Record<string, string> | undefined;
  if (hostKeys !== undefined && (typeof hostKeys !== "object" || hostKeys === null || Array.isArray(hostKeys))) {
    invalid("hastack:ssh.hostKeys", hostKeys, "a map from host address to a public host key line such as 'ssh-ed25519 AAAA…'");
  }
  for (const [address, k] of Object.entries(hostKeys ?? {})) {
    if (!isIPv4(address)) invalid(`hastack:ssh.hostKeys["${address}"]`, address, "an IPv4 address of a host of the stack as the map key");
    if (typeof k !== "string" || !/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}$/.test(k.trim())) {
      invalid(`hastack:ssh.hostKeys["${address}"]`, k, "one public host key line, type and base64 only, such as 'ssh-ed25519 AAAAC3Nza…'");
    }
  }
  return {
    subnet,
    ssh: { privateKey: pulumi.secret(key), user, port, hostKeys, trustOnFirstUse },
    postgres: get("postgres"),
    proxy: get("proxy"),
    workspad: get("workspad"),
    nginx: get("nginx"),
    redis: get("redis"),
    site: get("site"),
    passwords: (get("passwords") ?? {}) as Partial<Record<PasswordName, string>>,
    certificates: (get("certificates") ?? {}) as SuppliedCertificates,
    firewall: resolveFirewallSettings(get("firewall")),
    vmmanager: get("vmmanager"),
    backup: get("backup"),
    policy: resolvePolicySettings(get("policy")),
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
