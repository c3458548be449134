import { SUBNET_MIN_PREFIX, checkRules, invalid, isCidr, isIPv4 } from "../common/validate";

/** Stack config `hastack:firewall`: a host firewall (nftables) in front of every port the stack manages; SSH is never filtered. */
export interface FirewallSettings {
  /** Write the firewall tables at all. @default true */
  readonly enabled?: boolean;
  /**
   * IPv4 addresses or CIDRs of operator and monitoring machines; they may reach every managed port except etcd's
   * (members only), and log in to the application database as the application role (never as superuser).
   * @default []
   */
  readonly adminSources?: string[];
}

export const FirewallDefaults = {
  enabled: true,
  adminSources: [] as string[],
} as const;

export interface ResolvedFirewallSettings {
  readonly enabled: boolean;
  /** Validated, in config order, duplicates removed. */
  readonly adminSources: readonly string[];
}

const KEY = "hastack:firewall";
const KNOWN = new Set(Object.keys(FirewallDefaults));

/** True when a CIDR has no bits set beyond its prefix (nftables refuses 10.0.0.1/24 in an interval set). */
export function isNetworkCidr(s: string): boolean {
  const [ip, bits] = s.split("/");
  const n = ip.split(".").reduce((a, o) => a * 256 + Number(o), 0);
  const hostBits = 32 - Number(bits);
  return hostBits === 0 || n % 2 ** hostBits === 0;
}

/** Apply defaults and validate `hastack:firewall` (absent means the defaults); throws ConfigError. */
export function resolveFirewallSettings(raw: unknown): ResolvedFirewallSettings {
  if (raw === undefined) return { enabled: FirewallDefaults.enabled, adminSources: [] };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) invalid(KEY, raw, "an object such as {\"adminSources\": [\"192.168.1.10/32\"]}");
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!KNOWN.has(k)) invalid(`${KEY}.${k}`, r[k], `no such key; known keys are ${[...KNOWN].join(", ")}`);
  }
  const enabled = r.enabled ?? FirewallDefaults.enabled;
  const sources = r.adminSources ?? FirewallDefaults.adminSources;
  checkRules([
    { field: `${KEY}.enabled`, given: r.enabled, ok: typeof enabled === "boolean", accepted: "true or false" },
    { field: `${KEY}.adminSources`, given: sources, ok: Array.isArray(sources), accepted: "a list of IPv4 addresses or CIDRs" },
  ]);
  const list = sources as unknown[];
  list.forEach((v, i) => {
    const field = `${KEY}.adminSources[${i}]`;
    if (!isIPv4(v) && !isCidr(v)) invalid(field, v, "an IPv4 address such as 192.168.1.10 or a CIDR such as 192.168.1.0/28");
    if (isCidr(v) && !isNetworkCidr(v)) invalid(field, v, "a CIDR whose address has no bits set beyond its prefix, such as 192.168.1.0/28");
    // these sources reach PostgreSQL, PgBouncer and Redis on every host: operator machines, not whole networks
    if (isCidr(v) && Number(v.split("/")[1]) < SUBNET_MIN_PREFIX) {
      invalid(field, v, `a prefix of /${SUBNET_MIN_PREFIX} or longer (operator and monitoring machines, not a whole network such as 0.0.0.0/0)`);
    }
  });
  return { enabled: enabled as boolean, adminSources: [...new Set(list as string[])] };
}
