/** Error for bad stack input: names the field, what was given and what is accepted. */
export class ConfigError extends Error {
  constructor(readonly field: string, readonly given: unknown, readonly accepted: string) {
    super(`Invalid ${field}: got ${show(given)}; expected ${accepted}.`);
    this.name = "ConfigError";
  }
}

export function show(v: unknown): string {
  if (v === undefined) return "nothing";
  return JSON.stringify(v);
}

/** Throw a ConfigError. */
export function invalid(field: string, given: unknown, accepted: string): never {
  throw new ConfigError(field, given, accepted);
}

/**
 * A table of rules: each is a predicate that must hold and the error to raise when it does not.
 * `ok` may be a function: it is called only after every earlier rule of the table held, so a rule
 * can rely on an earlier one (e.g. "is an IPv4 address" before "is inside the subnet").
 */
export interface Rule {
  readonly field: string;
  readonly given: unknown;
  readonly ok: boolean | (() => boolean);
  /** What would be accepted; a function when the text needs an earlier rule's result. */
  readonly accepted: string | (() => string);
}

export function checkRules(rules: readonly Rule[]): void {
  for (const r of rules) {
    const ok = typeof r.ok === "function" ? r.ok() : r.ok;
    if (!ok) invalid(r.field, r.given, typeof r.accepted === "function" ? r.accepted() : r.accepted);
  }
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(s: unknown): s is string {
  return typeof s === "string" && IPV4.test(s);
}

function ipToInt(ip: string): number {
  return ip.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function isCidr(s: unknown): s is string {
  if (typeof s !== "string") return false;
  const [ip, bits, ...rest] = s.split("/");
  return rest.length === 0 && isIPv4(ip) && /^\d+$/.test(bits ?? "") && Number(bits) <= 32;
}

/** True when `ip` lies inside `cidr` (both already validated). */
export function inSubnet(ip: string, cidr: string): boolean {
  const [net, bitsStr] = cidr.split("/");
  const bits = Number(bitsStr);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return ((ipToInt(ip) & mask) >>> 0) === ((ipToInt(net) & mask) >>> 0);
}

export function isPort(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** Names used in resource names, unit names and daemon member names. */
export function isHostName(s: unknown): s is string {
  return typeof s === "string" && /^[a-z][a-z0-9-]{0,62}$/.test(s);
}

/** Validate a list of hosts under `field` (e.g. "hastack:postgres.nodes"). */
export function checkHosts(field: string, hosts: unknown, minCount = 1): void {
  if (!Array.isArray(hosts) || hosts.length < minCount) {
    invalid(field, hosts, `a list of at least ${minCount} {name, address} entries`);
  }
  hosts.forEach((h: any, i: number) => {
    if (!isHostName(h?.name)) invalid(`${field}[${i}].name`, h?.name, "a lower-case name of letters, digits and '-', starting with a letter");
    if (!isIPv4(h?.address)) invalid(`${field}[${i}].address`, h?.address, "an IPv4 address such as 192.168.1.130");
  });
}

/**
 * The common opening of a section resolver: `raw` must be an object with only `known` keys, and
 * the stack subnet must be CIDR. Returns the object for the section's own rules.
 */
export function checkSection(key: string, raw: unknown, subnet: string, known: ReadonlySet<string>, shape: string): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) invalid(key, raw, shape);
  checkSubnet(subnet);
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!known.has(k)) invalid(`${key}.${k}`, r[k], `no such key; known keys are ${[...known].join(", ")}`);
  }
  return r;
}

/**
 * Widest stack subnet accepted. keepalived adds each VIP as `<vip>/<prefix>`, so the kernel makes the
 * whole subnet on-link on the VIP's interface: with a /8 (or 0.0.0.0/0) the node holding a VIP would
 * stop routing other 10.x (or all) networks through its gateway, and "inside the subnet" would no
 * longer mean "on the stack's L2 segment". A /16 (65 534 addresses) is more than any stack here needs.
 */
export const SUBNET_MIN_PREFIX = 16;
/** Narrowest: a /31 or /32 has no room for a VIP next to the hosts (and no network/broadcast pair). */
export const SUBNET_MAX_PREFIX = 30;

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
}

function maskOf(bits: number): number {
  return bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
}

/** The network (all host bits 0) and broadcast (all host bits 1) addresses of a CIDR already validated. */
export function subnetEnds(cidr: string): { network: string; broadcast: string } {
  const [ip, bits] = cidr.split("/");
  const mask = maskOf(Number(bits));
  const net = (ipToInt(ip) & mask) >>> 0;
  return { network: intToIp(net), broadcast: intToIp((net | ~mask) >>> 0) };
}

/** `hastack:subnet`: IPv4 CIDR, written with its network address, /16 to /30. */
export function checkSubnet(subnet: unknown): asserts subnet is string {
  const K = "hastack:subnet";
  checkRules([
    { field: K, given: subnet, ok: isCidr(subnet), accepted: "an IPv4 CIDR such as 10.213.7.0/24" },
    { field: K, given: subnet, ok: () => Number((subnet as string).split("/")[1]) >= SUBNET_MIN_PREFIX,
      accepted: `a prefix of /${SUBNET_MIN_PREFIX} or longer: the stack's L2 segment, since each VIP is added as <vip>/<prefix> and makes the whole subnet on-link on its interface` },
    { field: K, given: subnet, ok: () => Number((subnet as string).split("/")[1]) <= SUBNET_MAX_PREFIX,
      accepted: `a prefix of /${SUBNET_MAX_PREFIX} or shorter (a /31 or /32 leaves no address for hosts and a VIP)` },
    { field: K, given: subnet, ok: () => subnetEnds(subnet as string).network === (subnet as string).split("/")[0],
      accepted: () => `the subnet written with its network address, ${subnetEnds(subnet as string).network}/${(subnet as string).split("/")[1]}` },
  ]);
}

/**
 * The rules every floating address obeys, as one table (each rule runs only when the earlier ones
 * held): IPv4, inside the stack subnet, neither the subnet's network nor its broadcast address
 * (every host of the segment takes a packet to the broadcast address as its own, and the network
 * address names the subnet, not a host), and no host's own address.
 */
export function vipRules(field: string, vip: unknown, subnet: string, hostAddresses: readonly string[], example: string): Rule[] {
  const ends = () => subnetEnds(subnet);
  return [
    { field, given: vip, ok: isIPv4(vip), accepted: `an IPv4 address such as ${example}` },
    { field, given: vip, ok: () => inSubnet(vip as string, subnet), accepted: `an address inside the stack subnet ${subnet}` },
    { field, given: vip, ok: () => vip !== ends().network && vip !== ends().broadcast,
      accepted: () => `a host address of ${subnet}, not its network (${ends().network}) or broadcast (${ends().broadcast}) address` },
    { field, given: vip, ok: () => !hostAddresses.includes(vip as string), accepted: "an address no host of the stack has" },
  ];
}

/**
 * Linux interface names (dev_valid_name): 1..15 bytes (IFNAMSIZ 16 with the NUL), not "." or "..",
 * no '/', ':' or whitespace; we also keep out quotes and shell characters, which keepalived.conf and
 * the scripts would have to escape.
 */
export function isInterfaceName(s: unknown): s is string {
  return typeof s === "string" && /^[A-Za-z0-9_.@-]{1,15}$/.test(s) && s !== "." && s !== "..";
}
export const INTERFACE_TEXT = "a network interface name of 1..15 letters, digits and _.@- (not \".\" or \"..\")";

/** `/a/b/` → `/a/b`; `//a` → `/a`. */
export function normalizePath(p: string): string {
  const n = p.replace(/\/+/g, "/").replace(/\/$/, "");
  return n === "" ? "/" : n;
}

/** True when one path is the other or lies inside it (either way round). */
export function pathsOverlap(a: string, b: string): boolean {
  const x = normalizePath(a), y = normalizePath(b);
  const inside = (c: string, p: string) => c === p || p === "/" || c.startsWith(`${p}/`);
  return inside(x, y) || inside(y, x);
}

/** True when `child` is `parent` or lies inside it. */
export function pathInside(child: string, parent: string): boolean {
  const c = normalizePath(child), p = normalizePath(parent);
  return c === p || p === "/" || c.startsWith(`${p}/`);
}

/**
 * Directories of the distribution or of another daemon of the stack: a data or install directory must
 * not be one of them, lie inside one, or contain one (a wipe, chown or package file there would hit the other).
 */
export const FOREIGN_DIRS = [
  "/etc/patroni", "/etc/postgresql", "/etc/postgresql-common", "/etc/pgbouncer", "/etc/haproxy", "/etc/keepalived",
  "/etc/nginx", "/etc/redis", "/etc/ssh", "/etc/apt", "/etc/systemd", "/etc/default", "/etc/ssl",
  "/var/lib/postgresql", "/var/lib/etcd", "/var/lib/redis", "/var/lib/haproxy", "/var/lib/dpkg", "/var/lib/apt",
  "/var/lib/hastack", "/var/cache/hastack", "/usr/local/lib/hastack",
] as const;

/** Top-level system directories: nothing of ours may be one of them (it may lie inside some, e.g. /opt/workspad). */
export const SYSTEM_DIRS = [
  "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt", "/proc", "/root", "/run",
  "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/sbin", "/usr/share", "/var",
  "/var/lib", "/var/cache", "/var/log", "/var/run", "/var/tmp",
] as const;

/** Directories under which nothing of ours may live (kernel, device and volatile trees). */
export const VOLATILE_DIRS = ["/proc", "/sys", "/dev", "/run", "/var/run", "/tmp", "/var/tmp", "/boot"] as const;

/**
 * Role names PostgreSQL refuses (`pg_*`, public, none: "role name … is reserved") or treats as
 * keywords: current_user, session_user, current_role and user in role specifications (ALTER ROLE,
 * GRANT), all/sameuser/samerole/samegroup/replication in pg_hba.conf.
 */
export const RESERVED_ROLE_NAMES = ["public", "none", "current_user", "session_user", "current_role", "user", "all", "sameuser",
  "samerole", "samegroup", "replication"] as const;

export function isReservedRoleName(s: string): boolean {
  return s.startsWith("pg_") || (RESERVED_ROLE_NAMES as readonly string[]).includes(s);
}
