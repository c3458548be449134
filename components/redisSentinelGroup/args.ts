import { HostSpec } from "../common/host";
import { aclRuleProblem, grantedAdminCommands } from "./acl";
import { INTERFACE_TEXT, checkHosts, checkRules, checkSubnet, invalid, inSubnet, isInterfaceName, isPort, vipRules } from "../common/validate";

/**
 * Stack config under `hastack:redis`: Redis with auth, one Sentinel per node, HAProxy on each node
 * forwarding to the current master, optionally a keepalived VIP over the HAProxies.
 * HAProxy owns /etc/haproxy/haproxy.cfg and keepalived /etc/keepalived/keepalived.conf, so these nodes
 * must not also be PgBouncer proxy nodes (the reference layout gives Redis its own VMs).
 */
export interface RedisSentinelGroupSettings {
  /** Create the group at all. @default false */
  readonly enabled?: boolean;
  /**
   * Redis hosts, at least 3 (one Sentinel each). A new group starts with the first as master; a group
   * redeployed over data left by `pulumi destroy` starts with the node whose data reached the highest
   * replication offset.
   */
  readonly nodes: HostSpec[];
  /** Redis port. @default 6379 */
  readonly port?: number;
  /** Sentinel port. @default 26379 */
  readonly sentinelPort?: number;
  /** Name Sentinel monitors the master under. @default "hastack" */
  readonly masterName?: string;
  /** Sentinels that must agree the master is down; 1..number of nodes. @default majority, floor(n/2)+1 */
  readonly quorum?: number;
  /** Milliseconds without an answer before a Sentinel considers an instance down. @default 5000 */
  readonly downAfterMs?: number;
  /** Sentinel failover timeout in milliseconds. @default 60000 */
  readonly failoverTimeoutMs?: number;
  /** Replicas resynchronised with a new master at the same time. @default 1 */
  readonly parallelSyncs?: number;
  /**
   * A master refuses writes unless this many replicas are connected (Redis `min-replicas-to-write`):
   * an old master that reboots before Sentinel demotes it then cannot acknowledge writes that the
   * demotion would discard. 0 turns it off (writes continue with every replica gone). @default 1
   */
  readonly minReplicasToWrite?: number;
  /** Seconds of replica silence after which it no longer counts for minReplicasToWrite. @default 10 */
  readonly minReplicasMaxLagSeconds?: number;
  /** Redis `maxmemory` (e.g. "512mb"). @default undefined (no limit) */
  readonly maxmemory?: string;
  /** Floating IPv4 address over the HAProxies; inside the stack subnet, not any host's address. @default undefined (no keepalived) */
  readonly vip?: string;
  /** HAProxy port on every node (and on the VIP) that always reaches the current master. @default 6380 */
  readonly haproxyPort?: number;
  /** Network interface that carries the VIP. @default "eth0" */
  readonly interface?: string;
  /** VRRP virtual router id, unique per L2 segment. @default 53 */
  readonly virtualRouterId?: number;
  /**
   * ACL user the application logs in as (`AUTH <appUser> <hastack:passwords.redis>`); the `default` user
   * is hastack's own (replication, health checks) with `hastack:passwords.redisSentinel`. @default "app"
   */
  readonly appUser?: string;
  /**
   * The application user's command rules, in Redis ACL syntax, on every key and channel. The default is every
   * command but Redis' `@dangerous` ones (configuration, replication, ACLs, modules, shutdown, KEYS, FLUSHALL, …),
   * plus INFO, which client libraries read. Rules that grant an admin command are refused unless
   * appAllowAdminCommands is set. @default ["+@all", "-@dangerous", "+info"]
   */
  readonly appCommands?: string[];
  /** Let appCommands grant admin commands (CONFIG, ACL, DEBUG, SHUTDOWN, REPLICAOF, MODULE, FLUSHALL, …). @default false */
  readonly appAllowAdminCommands?: boolean;
}

export const RedisSentinelGroupDefaults = {
  enabled: false,
  port: 6379,
  sentinelPort: 26379,
  masterName: "hastack",
  downAfterMs: 5000,
  failoverTimeoutMs: 60000,
  parallelSyncs: 1,
  minReplicasToWrite: 1,
  minReplicasMaxLagSeconds: 10,
  haproxyPort: 6380,
  interface: "eth0",
  virtualRouterId: 53,
  appUser: "app",
  appCommands: ["+@all", "-@dangerous", "+info"] as readonly string[],
  appAllowAdminCommands: false,
} as const;

export interface ResolvedRedisSentinelGroupSettings {
  readonly nodes: HostSpec[];
  readonly port: number;
  readonly sentinelPort: number;
  readonly masterName: string;
  readonly quorum: number;
  readonly downAfterMs: number;
  readonly failoverTimeoutMs: number;
  readonly parallelSyncs: number;
  readonly minReplicasToWrite: number;
  readonly minReplicasMaxLagSeconds: number;
  readonly maxmemory?: string;
  readonly vip?: string;
  /** Prefix length of the stack subnet, used for the VIP address. */
  readonly vipPrefix: number;
  readonly haproxyPort: number;
  readonly interface: string;
  readonly virtualRouterId: number;
  readonly appUser: string;
  readonly appCommands: readonly string[];
  /**
   * The group's name in the list form of `hastack:redis`: its units (redis-server@NAME, redis-sentinel@NAME),
   * files and data dir are its own. Absent in the single-object form, which keeps the packaged units and paths.
   */
  readonly group?: string;
  /** Redis `replica-priority` per node (same order as nodes), present when any node sets one. */
  readonly replicaPriorities?: readonly (number | undefined)[];
}

/** A Redis node; `replicaPriority` is Redis' replica-priority: lower is promoted first by Sentinel, 0 never. */
export interface RedisNodeSpec extends HostSpec {
  /**
   * Redis `replica-priority` of this node (besides `name` and `address`): Sentinel promotes the replica with the lowest
   * first; 0 never makes it master (keeps the master in a preferred site). 0..2147483647; at least one node not 0.
   * @default undefined (Redis' own, 100)
   */
  readonly replicaPriority?: number;
}

/** One entry of the list form of `hastack:redis`: a group's settings, without `enabled`, plus its name. */
export interface RedisGroupSettings extends Omit<RedisSentinelGroupSettings, "enabled" | "nodes"> {
  /** The group's name, 1..20 lower-case letters, digits and '-', starting with a letter; unique. It names the group's resources, units, files and data dir. */
  readonly name: string;
  /** Redis hosts of this group, at least 3 (one Sentinel each), each `{name, address, replicaPriority?}`. Every other setting of `hastack:redis` but `enabled` applies per group, with the same defaults; `masterName` must differ between groups. */
  readonly nodes: RedisNodeSpec[];
}

/** ACL users hastack defines besides the application's; the application user cannot take these names. */
export const RESERVED_REDIS_USERS = ["default", "hastack-sentinel", "hastack-check"] as const;

const KEY = "hastack:redis";
const KNOWN = new Set(["nodes", "quorum", "maxmemory", "vip", ...Object.keys(RedisSentinelGroupDefaults)]);
/** Keys of a group in the list form: no `enabled` (a listed group is on), a `name`. */
const GROUP_KNOWN = new Set(["name", ...[...KNOWN].filter((k) => k !== "enabled")]);
/** Redis reads replica-priority as a C int from 0 (createIntConfig 0..INT_MAX). */
const MAX_REPLICA_PRIORITY = 2147483647;
const GROUP_NAME = /^[a-z][a-z0-9-]{0,19}$/;

const isInt = (n: unknown, min: number, max: number): n is number =>
  typeof n === "number" && Number.isInteger(n) && n >= min && n <= max;

/** Bytes of a Redis memory size already matching the syntax rule (units as Redis' memtoll reads them). */
export function redisBytes(v: string): bigint {
  const m = /^([0-9]+)([a-z]*)$/i.exec(v)!;
  const unit: Record<string, bigint> = { "": 1n, b: 1n, k: 1000n, kb: 1024n, m: 1000000n, mb: 1n << 20n, g: 1000000000n, gb: 1n << 30n };
  return BigInt(m[1]) * unit[m[2].toLowerCase()];
}

/**
 * Apply defaults and validate `hastack:redis`. Pure; throws ConfigError before any resource exists.
 * Returns undefined when the group is not enabled (nothing else is checked then).
 * `allHostAddresses` are the addresses of every host of the stack (the VIP must be none of them).
 */
export function resolveRedisSentinelGroupSettings(raw: unknown, subnet: string,
  allHostAddresses: readonly string[] = []): ResolvedRedisSentinelGroupSettings | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) invalid(KEY, raw, "an object with enabled and nodes (one group), or a list of named groups");
  const r = raw as Record<string, unknown>;
  const enabled = r.enabled ?? RedisSentinelGroupDefaults.enabled;
  checkRules([{ field: `${KEY}.enabled`, given: r.enabled, ok: typeof enabled === "boolean", accepted: "true or false" }]);
  if (!enabled) return undefined;
  return resolveOne(r, KEY, KNOWN, subnet, allHostAddresses);
}

/**
 * Apply defaults and validate `hastack:redis` in either form: the single object (at most one group, the
 * packaged units; as before) or a list of named groups, each checked on its own and against the others
 * (names, master names). Ports, files and VRRP ids across groups and sections are checked by the stack
 * (stacks/datacenter.ts), each group as section `hastack:redis[i]`.
 */
export function resolveRedisGroups(raw: unknown, subnet: string, allHostAddresses: readonly string[] = []): ResolvedRedisSentinelGroupSettings[] {
  if (!Array.isArray(raw)) {
    const one = resolveRedisSentinelGroupSettings(raw, subnet, allHostAddresses);
    return one ? [one] : [];
  }
  const groups = raw.map((g, i) => {
    const key = `${KEY}[${i}]`;
    if (typeof g !== "object" || g === null || Array.isArray(g)) invalid(key, g, "a group: an object with name, nodes and the group's settings");
    const r = g as Record<string, unknown>;
    checkRules([{ field: `${key}.name`, given: r.name, ok: typeof r.name === "string" && GROUP_NAME.test(r.name),
      accepted: "1..20 lower-case letters, digits and '-', starting with a letter (it names the group's units, files and resources)" }]);
    return resolveOne(r, key, GROUP_KNOWN, subnet, allHostAddresses, r.name as string);
  });
  groups.forEach((g, i) => {
    const earlier = groups.slice(0, i);
    const sameName = earlier.findIndex((o) => o.group === g.group);
    if (sameName >= 0) invalid(`${KEY}[${i}].name`, g.group, `a name no other group has (${KEY}[${sameName}] is "${g.group}")`);
    const sameMaster = earlier.findIndex((o) => o.masterName === g.masterName);
    // a Sentinel-aware client asks for a master by name; one name for two groups would let it reach the wrong data
    if (sameMaster >= 0) {
      invalid(`${KEY}[${i}].masterName`, g.masterName, `a master name no other group has (${KEY}[${sameMaster}] ("${groups[sameMaster].group}") ` +
        `uses "${g.masterName}"; the default is "${RedisSentinelGroupDefaults.masterName}", so set masterName on every group but one)`);
    }
  });
  return groups;
}

function resolveOne(r: Record<string, unknown>, KEY: string, known: ReadonlySet<string>, subnet: string,
  allHostAddresses: readonly string[], group?: string): ResolvedRedisSentinelGroupSettings {
  checkSubnet(subnet);
  for (const k of Object.keys(r)) {
    if (!known.has(k)) invalid(`${KEY}.${k}`, r[k], `no such key; known keys are ${[...known].join(", ")}`);
  }
  checkHosts(`${KEY}.nodes`, r.nodes, 3);
  const nodes = (r.nodes as HostSpec[]).map((h) => ({ name: h.name, address: h.address }));
  const priorities = (r.nodes as RedisNodeSpec[]).map((h) => h.replicaPriority);
  checkRules(priorities.map((p, i) => ({ field: `${KEY}.nodes[${i}].replicaPriority`, given: p,
    ok: p === undefined || isInt(p, 0, MAX_REPLICA_PRIORITY),
    accepted: `an integer 0..${MAX_REPLICA_PRIORITY} (Redis replica-priority: lower is promoted first, 0 never)` })));
  checkRules([{ field: `${KEY}.nodes[*].replicaPriority`, given: priorities, ok: priorities.some((p) => p !== 0),
    accepted: "at least one node whose replicaPriority is not 0 (a group with no node Sentinel may promote has no master after a failure)" }]);
  const s = { ...RedisSentinelGroupDefaults, quorum: Math.floor(nodes.length / 2) + 1, ...r } as Record<string, any>;

  checkRules([
    ...nodes.map((h, i) => ({ field: `${KEY}.nodes[${i}].name`, given: h.name, ok: nodes.findIndex((o) => o.name === h.name) === i,
      accepted: "a name no other Redis node has" })),
    ...nodes.map((h, i) => ({ field: `${KEY}.nodes[${i}].address`, given: h.address,
      ok: nodes.findIndex((o) => o.address === h.address) === i, accepted: "an address no other Redis node has" })),
    ...nodes.map((h, i) => ({ field: `${KEY}.nodes[${i}].address`, given: h.address, ok: inSubnet(h.address, subnet),
      accepted: `an address inside the stack subnet ${subnet}` })),
    { field: `${KEY}.port`, given: s.port, ok: isPort(s.port), accepted: "a TCP port 1..65535" },
    { field: `${KEY}.sentinelPort`, given: s.sentinelPort, ok: isPort(s.sentinelPort), accepted: "a TCP port 1..65535" },
    { field: `${KEY}.haproxyPort`, given: s.haproxyPort, ok: isPort(s.haproxyPort), accepted: "a TCP port 1..65535" },
  ]);
  checkRules([
    { field: `${KEY}.sentinelPort`, given: s.sentinelPort, ok: s.sentinelPort !== s.port, accepted: `a port other than ${KEY}.port (${s.port})` },
    { field: `${KEY}.haproxyPort`, given: s.haproxyPort, ok: s.haproxyPort !== s.port && s.haproxyPort !== s.sentinelPort,
      accepted: `a port other than ${KEY}.port (${s.port}) and ${KEY}.sentinelPort (${s.sentinelPort})` },
    // the name ends up in sentinel.conf, haproxy.cfg and shell commands
    { field: `${KEY}.masterName`, given: s.masterName, ok: typeof s.masterName === "string" && /^[A-Za-z0-9_.-]{1,64}$/.test(s.masterName),
      accepted: "1..64 letters, digits, '_', '.' or '-'" },
    { field: `${KEY}.quorum`, given: s.quorum, ok: isInt(s.quorum, 1, nodes.length),
      accepted: `an integer 1..${nodes.length} (the number of Sentinels)` },
    { field: `${KEY}.downAfterMs`, given: s.downAfterMs, ok: isInt(s.downAfterMs, 100, 3600000), accepted: "an integer 100..3600000" },
    { field: `${KEY}.failoverTimeoutMs`, given: s.failoverTimeoutMs, ok: isInt(s.failoverTimeoutMs, 1000, 86400000),
      accepted: "an integer 1000..86400000" },
    { field: `${KEY}.parallelSyncs`, given: s.parallelSyncs, ok: isInt(s.parallelSyncs, 1, nodes.length - 1),
      accepted: `an integer 1..${nodes.length - 1} (the number of replicas)` },
    { field: `${KEY}.minReplicasToWrite`, given: s.minReplicasToWrite, ok: isInt(s.minReplicasToWrite, 0, nodes.length - 1),
      accepted: `an integer 0..${nodes.length - 1} (the number of replicas)` },
    { field: `${KEY}.minReplicasMaxLagSeconds`, given: s.minReplicasMaxLagSeconds, ok: isInt(s.minReplicasMaxLagSeconds, 1, 3600),
      accepted: "an integer 1..3600" },
    { field: `${KEY}.maxmemory`, given: s.maxmemory,
      ok: s.maxmemory === undefined || (typeof s.maxmemory === "string" && /^[1-9][0-9]{0,15}(b|k|kb|m|mb|g|gb)?$/i.test(s.maxmemory)),
      accepted: `a Redis memory size such as "512mb"` },
    // Redis 7.0 wraps a size past 2^63 bytes around silently and warns below 1 MB
    { field: `${KEY}.maxmemory`, given: s.maxmemory,
      ok: () => s.maxmemory === undefined || (redisBytes(s.maxmemory) >= 1n << 20n && redisBytes(s.maxmemory) < 1n << 63n),
      accepted: `a size from 1mb to below 8388608tb (Redis units: k=1000, kb=1024, m, mb, g, gb)` },
    { field: `${KEY}.interface`, given: s.interface, ok: isInterfaceName(s.interface),
      accepted: INTERFACE_TEXT },
    { field: `${KEY}.virtualRouterId`, given: s.virtualRouterId, ok: isInt(s.virtualRouterId, 1, 255), accepted: "an integer 1..255" },
    // the name ends up in the ACL file and in the stack outputs; Redis splits ACL lines on spaces
    { field: `${KEY}.appUser`, given: s.appUser, ok: typeof s.appUser === "string" && /^[A-Za-z0-9_.-]{1,64}$/.test(s.appUser),
      accepted: "1..64 letters, digits, '_', '.' or '-'" },
    { field: `${KEY}.appUser`, given: s.appUser, ok: () => !(RESERVED_REDIS_USERS as readonly string[]).includes(s.appUser),
      accepted: `a name other than ${RESERVED_REDIS_USERS.join(", ")} (hastack's own Redis users)` },
    { field: `${KEY}.appAllowAdminCommands`, given: s.appAllowAdminCommands, ok: typeof s.appAllowAdminCommands === "boolean",
      accepted: "true or false" },
    { field: `${KEY}.appCommands`, given: s.appCommands,
      ok: Array.isArray(s.appCommands) && s.appCommands.length >= 1 && s.appCommands.length <= 100,
      accepted: `a list of 1..100 Redis ACL command rules, such as ${JSON.stringify(RedisSentinelGroupDefaults.appCommands)}` },
  ]);
  const rules: string[] = s.appCommands;
  checkRules(rules.map((r, i) => ({ field: `${KEY}.appCommands[${i}]`, given: r, ok: () => aclRuleProblem(r) === undefined,
    accepted: () => aclRuleProblem(r)! })));
  const granted = grantedAdminCommands(rules);
  checkRules([{ field: `${KEY}.appCommands`, given: rules, ok: s.appAllowAdminCommands || granted.length === 0,
    accepted: `rules that grant the application no admin command (these grant ${granted.slice(0, 8).join(", ")}` +
      `${granted.length > 8 ? ` and ${granted.length - 8} more` : ""}; subtract them, e.g. "-@dangerous" after "+@all", ` +
      `or set ${KEY}.appAllowAdminCommands to true)` }]);
  if (s.vip !== undefined) {
    checkRules(vipRules(`${KEY}.vip`, s.vip, subnet, [...allHostAddresses, ...nodes.map((n) => n.address)], "10.213.7.70"));
  }

  return {
    nodes,
    port: s.port,
    sentinelPort: s.sentinelPort,
    masterName: s.masterName,
    quorum: s.quorum,
    downAfterMs: s.downAfterMs,
    failoverTimeoutMs: s.failoverTimeoutMs,
    parallelSyncs: s.parallelSyncs,
    minReplicasToWrite: s.minReplicasToWrite,
    minReplicasMaxLagSeconds: s.minReplicasMaxLagSeconds,
    maxmemory: s.maxmemory,
    vip: s.vip,
    vipPrefix: Number(subnet.split("/")[1]),
    haproxyPort: s.haproxyPort,
    interface: s.interface,
    virtualRouterId: s.virtualRouterId,
    appUser: s.appUser,
    appCommands: [...rules],
    // only when used, so the single-object form resolves to exactly what it did before the list form
    ...(group === undefined ? {} : { group }),
    ...(priorities.some((p) => p !== undefined) ? { replicaPriorities: priorities } : {}),
  };
}

const secretText = (p: unknown) => `<secret of ${typeof p === "string" ? p.length : 0} characters>`;

/**
 * The two Redis passwords, checked when the secrets resolve (known at preview): an empty one would let
 * `AUTH ""` in, and hastack's scripts read them back with `$(cat …)` (a shell variable cannot hold NUL;
 * line breaks would be cut). The application's must not also open Sentinel and hastack's admin login, and
 * neither may the application's previous one (kept accepted while clients move to a rotated password).
 */
export function checkRedisPasswords(app: string, internal: string, previous?: string): void {
  const line = (p: unknown) => typeof p === "string" && p.length > 0 && !/[\r\n\0]/.test(p);
  checkRules([
    { field: "hastack:passwords.redis", given: secretText(app), ok: line(app), accepted: "a non-empty password on one line, without NUL" },
    { field: "hastack:passwords.redisSentinel", given: secretText(internal), ok: line(internal),
      accepted: "a non-empty password on one line, without NUL" },
    { field: "hastack:passwords.redisSentinel", given: `${secretText(internal)}, the same as hastack:passwords.redis`, ok: app !== internal,
      accepted: "a password other than hastack:passwords.redis (it opens Sentinel and hastack's admin login, which the application must not have)" },
    ...(previous === undefined ? [] : [
      { field: "hastack:passwords.redisPrevious", given: secretText(previous), ok: line(previous), accepted: "a non-empty password on one line, without NUL" },
      { field: "hastack:passwords.redisPrevious", given: `${secretText(previous)}, the same as hastack:passwords.redisSentinel`, ok: previous !== internal,
        accepted: "the application's previous password, not hastack's own (the application must not log in as hastack)" },
    ]),
  ]);
}
