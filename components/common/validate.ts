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

/** A table of rules: each is a predicate that must hold and the error to raise when it does not. */
export interface Rule {
  readonly field: string;
  readonly given: unknown;
  readonly ok: boolean;
  readonly accepted: string;
}

export function checkRules(rules: readonly Rule[]): void {
  for (const r of rules) if (!r.ok) invalid(r.field, r.given, r.accepted);
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
  if (!isCidr(subnet)) invalid("subnet", subnet, "an IPv4 CIDR such as 10.213.7.0/24");
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!known.has(k)) invalid(`${key}.${k}`, r[k], `no such key; known keys are ${[...known].join(", ")}`);
  }
  return r;
}
