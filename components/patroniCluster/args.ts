import {
  FOREIGN_DIRS, HostSpec, SYSTEM_DIRS, VOLATILE_DIRS, checkHosts, checkRules, checkSubnet, invalid, isPort, inSubnet, isReservedRoleName,
  pathInside, pathsOverlap, Rule,
} from "../common";

/** Failover timing presets; see `PatroniClusterSettings.failoverProfile`. */
export const FailoverProfiles = {
  /** Patroni's own defaults: a hard crash of the leader takes roughly 30–40 s to fail over; tolerant of slow disks and networks. */
  default: { ttl: 30, loopWait: 10, retryTimeout: 10 },
  /**
   * Roughly twice as fast (about 20–25 s), at the cost of false failovers when etcd or PostgreSQL stall for ~8 s
   * (a busy VM host, a long fsync). ttl 20 is the lowest value newer Patroni releases accept, and
   * loop_wait + 2 × retry_timeout must not exceed ttl.
   */
  fast: { ttl: 20, loopWait: 4, retryTimeout: 8 },
  /**
   * For a write outage under 10 s on a leader crash (bench/results-leader-crash.md): the leader key
   * expires 7 s after its last renewal (the least loop_wait 1 and retry_timeout 3 allow), then the
   * leader race waits 2 s for the dead member's REST API (fixed in Patroni). A leader that cannot
   * renew its key for 7 s (a starved VM) loses it, and any etcd/PostgreSQL stall over ~3 s demotes
   * it. Debian 12's Patroni 3.0.2 accepts it; later Patroni releases raise a ttl below 20 to 20,
   * so this profile is then `fast`-like.
   */
  aggressive: { ttl: 7, loopWait: 1, retryTimeout: 3 },
} as const;

export type FailoverProfile = keyof typeof FailoverProfiles;

/** Stack config `hastack:postgres`: a PostgreSQL + Patroni + etcd (v3) cluster, one member per node. */
export interface PatroniClusterSettings {
  /** Members (each runs etcd, PostgreSQL and Patroni); an odd number, at least 3, so etcd keeps a quorum. */
  readonly nodes: HostSpec[];
  /**
   * Patroni scope and etcd cluster token. A deploy refuses to change it on hosts that already run a cluster
   * (see allowClusterRename). @default "hastack"
   */
  readonly clusterName?: string;
  /**
   * Let a deploy change `clusterName` on hosts that already run a cluster. Patroni then finds no state under
   * the new name: the members race for leadership as an uninitialised cluster (a lagging replica may win and
   * drop acknowledged writes) and etcd moves to a new, empty data directory. Safe only on a cluster that is
   * rebuilt from a backup anyway. @default false
   */
  readonly allowClusterRename?: boolean;
  /** PostgreSQL major version (package `postgresql-<v>`, binaries in /usr/lib/postgresql/<v>/bin). @default 15 */
  readonly pgVersion?: number;
  /** PostgreSQL port. @default 5432 */
  readonly pgPort?: number;
  /** Patroni REST API port (health checks of HAProxy use it). @default 8008 */
  readonly restApiPort?: number;
  /** etcd client port. @default 2379 */
  readonly etcdClientPort?: number;
  /** etcd peer port. @default 2380 */
  readonly etcdPeerPort?: number;
  /** Patroni's own data directory (not the packaged `main` cluster's, nor etcd's, Redis' or a system directory); created owner postgres, mode 0700, never wiped. @default "/var/lib/postgresql/15/hastack" */
  readonly dataDir?: string;
  /** Application database. @default "workspad" */
  readonly database?: string;
  /** Application role, owner of `database`; not a name PostgreSQL reserves (pg_*, public, none, current_user, …). @default "workspad" */
  readonly appUser?: string;
  /** PostgreSQL superuser Patroni uses. @default "postgres" */
  readonly superuser?: string;
  /** Streaming replication role. @default "replicator" */
  readonly replicationUser?: string;
  /** pg_rewind role. @default "rewind" */
  readonly rewindUser?: string;
  /** Failover timing preset: "default" (ttl 30, loop_wait 10, retry_timeout 10), "fast" (ttl 20, loop_wait 4, retry_timeout 8) or "aggressive" (ttl 7, loop_wait 1, retry_timeout 3); see FailoverProfiles for the trade-offs. @default "default" */
  readonly failoverProfile?: FailoverProfile;
  /** Leader key TTL in seconds; overrides the profile. @default from failoverProfile */
  readonly ttl?: number;
  /** Seconds between Patroni HA loops; overrides the profile. @default from failoverProfile */
  readonly loopWait?: number;
  /** Seconds before DCS/PostgreSQL operations are retried as failed; overrides the profile. @default from failoverProfile */
  readonly retryTimeout?: number;
  /** Patroni synchronous_mode (a commit waits for one replica). @default false */
  readonly synchronousMode?: boolean;
  /** PostgreSQL max_connections. @default 200 */
  readonly maxConnections?: number;
  /**
   * PostgreSQL `max_slot_wal_keep_size`: the most WAL a replication slot may hold back. A standby site
   * that stays away longer loses its slot and must be cloned again, instead of filling the primary's disk.
   * @default "1GB"
   */
  readonly maxSlotWalKeepSize?: string;
  /**
   * Names of members that must never lead (Patroni's `nofailover` tag; each is tagged `nosync` too, so in synchronous
   * mode the standby a commit waits for is always one that may be promoted). Patroni 3.0.2 has no leader priority,
   * so this is how a member on weaker hardware, or a site that must not lead, is kept a replica. At least two
   * members must stay able to lead. @default []
   */
  readonly noFailover?: string[];
  /**
   * etcd's raft heartbeat interval in milliseconds (`ETCD_HEARTBEAT_INTERVAL`). Raise it with etcdElectionMs when
   * members sit in different datacenters: about the round trip between the farthest two. @default etcd's own, 100
   */
  readonly etcdHeartbeatMs?: number;
  /**
   * etcd's election timeout in milliseconds (`ETCD_ELECTION_TIMEOUT`): at least 5 × the heartbeat (etcd refuses
   * less), at most 50000 (etcd refuses more) and below retryTimeout, or one etcd election outlasts Patroni's retries and
   * the leader demotes itself. @default etcd's own, 1000
   */
  readonly etcdElectionMs?: number;
}

export const PatroniClusterDefaults = {
  clusterName: "hastack",
  allowClusterRename: false,
  pgVersion: 15,
  pgPort: 5432,
  restApiPort: 8008,
  etcdClientPort: 2379,
  etcdPeerPort: 2380,
  dataDir: "/var/lib/postgresql/15/hastack",
  database: "workspad",
  appUser: "workspad",
  superuser: "postgres",
  replicationUser: "replicator",
  rewindUser: "rewind",
  failoverProfile: "default" as FailoverProfile,
  synchronousMode: false,
  maxConnections: 200,
  maxSlotWalKeepSize: "1GB",
  noFailover: [] as string[],
} as const;

/** Settings with every default applied, plus the stack subnet and derived values. */
export interface ResolvedPatroniClusterSettings {
  readonly nodes: HostSpec[];
  readonly clusterName: string;
  readonly allowClusterRename: boolean;
  readonly pgVersion: number;
  readonly pgPort: number;
  readonly restApiPort: number;
  readonly etcdClientPort: number;
  readonly etcdPeerPort: number;
  readonly dataDir: string;
  readonly database: string;
  readonly appUser: string;
  readonly superuser: string;
  readonly replicationUser: string;
  readonly rewindUser: string;
  readonly failoverProfile: FailoverProfile;
  readonly ttl: number;
  readonly loopWait: number;
  readonly retryTimeout: number;
  readonly synchronousMode: boolean;
  readonly maxConnections: number;
  readonly maxSlotWalKeepSize: string;
  /** Members tagged nofailover and nosync. */
  readonly noFailover: string[];
  /** etcd raft timings when set (unset: etcd's defaults, nothing rendered). */
  readonly etcdHeartbeatMs?: number;
  readonly etcdElectionMs?: number;
  /** Stack subnet (CIDR): pg_hba admits only it. */
  readonly subnet: string;
  /** etcd data directory, derived from clusterName so a packaged single-node etcd's data is never reused. */
  readonly etcdDataDir: string;
  /**
   * WAL archiving to a backup repository (set from `hastack:backup`, components/pgBackRest). @default undefined:
   * no archive settings at all, so a stack without backups renders exactly as before.
   */
  readonly archive?: { readonly archiveCommand: string; readonly restoreCommand: string };
}

const K = "hastack:postgres";
const ROLE = /^[a-z_][a-z0-9_]{0,62}$/;
const ROLE_TEXT = "a lower-case PostgreSQL identifier of letters, digits and '_' (at most 63), not starting with a digit";
const RESERVED_TEXT = "a role name PostgreSQL does not reserve: not pg_*, public or none (refused by CREATE ROLE), nor current_user, " +
  "session_user, current_role, user (keywords in role specifications) or all, sameuser, samerole, samegroup, replication (pg_hba keywords)";
const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;

/** Apply defaults and validate `hastack:postgres`; throws ConfigError before any resource exists. */
export function resolvePatroniClusterSettings(raw: unknown, subnet: string): ResolvedPatroniClusterSettings {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) invalid(K, raw, "an object with at least `nodes`");
  checkSubnet(subnet);
  const r = raw as Record<string, unknown>;
  const d = PatroniClusterDefaults;
  const get = <T>(key: string, dflt: T): T => (r[key] === undefined ? dflt : (r[key] as T));

  checkHosts(`${K}.nodes`, r.nodes, 3);
  const nodes = (r.nodes as HostSpec[]).map((h) => ({ name: h.name, address: h.address }));
  checkRules([
    { field: `${K}.nodes`, given: nodes.length, ok: nodes.length % 2 === 1, accepted: "an odd number of nodes (3, 5, …) so etcd keeps a quorum" },
    ...nodes.map((h, i) => ({ field: `${K}.nodes[${i}].address`, given: h.address, ok: inSubnet(h.address, subnet), accepted: `an address inside the stack subnet ${subnet}` })),
    ...nodes.map((h, i) => ({ field: `${K}.nodes[${i}].name`, given: h.name, ok: nodes.findIndex((x) => x.name === h.name) === i, accepted: "a name no other node uses" })),
    ...nodes.map((h, i) => ({ field: `${K}.nodes[${i}].address`, given: h.address, ok: nodes.findIndex((x) => x.address === h.address) === i, accepted: "an address no other node uses" })),
  ]);

  const s = {
    clusterName: get("clusterName", d.clusterName),
    allowClusterRename: get("allowClusterRename", d.allowClusterRename as boolean),
    pgVersion: get("pgVersion", d.pgVersion),
    pgPort: get("pgPort", d.pgPort),
    restApiPort: get("restApiPort", d.restApiPort),
    etcdClientPort: get("etcdClientPort", d.etcdClientPort),
    etcdPeerPort: get("etcdPeerPort", d.etcdPeerPort),
    dataDir: get("dataDir", d.dataDir),
    database: get("database", d.database),
    appUser: get("appUser", d.appUser),
    superuser: get("superuser", d.superuser),
    replicationUser: get("replicationUser", d.replicationUser),
    rewindUser: get("rewindUser", d.rewindUser),
    failoverProfile: get("failoverProfile", d.failoverProfile),
    synchronousMode: get("synchronousMode", d.synchronousMode),
    maxConnections: get("maxConnections", d.maxConnections),
    maxSlotWalKeepSize: get("maxSlotWalKeepSize", d.maxSlotWalKeepSize as string),
    noFailover: get("noFailover", d.noFailover),
  };
  const f = (p: string) => `${K}.${p}`;
  checkRules([
    { field: f("clusterName"), given: s.clusterName, ok: typeof s.clusterName === "string" && /^[a-z][a-z0-9-]{0,62}$/.test(s.clusterName), accepted: "a lower-case name of letters, digits and '-', starting with a letter" },
    { field: f("allowClusterRename"), given: s.allowClusterRename, ok: typeof s.allowClusterRename === "boolean", accepted: "true or false" },
    { field: f("pgVersion"), given: s.pgVersion, ok: isInt(s.pgVersion, 12, 17), accepted: "a PostgreSQL major version from 12 to 17" },
    { field: f("pgPort"), given: s.pgPort, ok: isPort(s.pgPort), accepted: "a TCP port from 1 to 65535" },
    { field: f("restApiPort"), given: s.restApiPort, ok: isPort(s.restApiPort), accepted: "a TCP port from 1 to 65535" },
    { field: f("etcdClientPort"), given: s.etcdClientPort, ok: isPort(s.etcdClientPort), accepted: "a TCP port from 1 to 65535" },
    { field: f("etcdPeerPort"), given: s.etcdPeerPort, ok: isPort(s.etcdPeerPort), accepted: "a TCP port from 1 to 65535" },
  ]);
  const ports: [string, number][] = [["pgPort", s.pgPort], ["restApiPort", s.restApiPort], ["etcdClientPort", s.etcdClientPort], ["etcdPeerPort", s.etcdPeerPort]];
  ports.forEach(([key, port], i) => {
    const other = ports.slice(0, i).find(([, p]) => p === port);
    if (other) invalid(f(key), port, `a port not already used by ${other[0]} on the same host`);
  });
  const dataDir = s.dataDir as string;
  // the directories Patroni's data must stay clear of, beside the distribution's own (SYSTEM_DIRS)
  const foreign = [
    ...FOREIGN_DIRS.filter((x) => x !== "/var/lib/postgresql"),
    `/var/lib/etcd/${s.clusterName}`,
    // the packaged cluster, and the postgres home where Patroni keeps its pgpass
    `/var/lib/postgresql/${s.pgVersion}/main`, "/var/lib/postgresql/.pgpass.patroni",
  ];
  checkRules([
    { field: f("dataDir"), given: s.dataDir, ok: typeof s.dataDir === "string" && /^\/[A-Za-z0-9._\/-]+$/.test(s.dataDir) && !s.dataDir.split("/").includes("..") && s.dataDir.replace(/\/+$/, "").split("/").length >= 3,
      accepted: "an absolute path of letters, digits, '.', '_', '-' and '/', at least two levels deep, such as /var/lib/postgresql/15/hastack" },
    { field: f("dataDir"), given: s.dataDir, ok: () => !/\/main\/?$/.test(dataDir), accepted: "a directory other than the packaged cluster's …/main (Patroni must not share it)" },
    { field: f("dataDir"), given: s.dataDir, ok: () => !VOLATILE_DIRS.some((v) => pathInside(dataDir, v)),
      accepted: `a persistent directory, not under ${VOLATILE_DIRS.join(", ")}` },
    { field: f("dataDir"), given: s.dataDir, ok: () => !SYSTEM_DIRS.some((v) => pathInside(v, dataDir)),
      accepted: "a directory of its own, not a system directory such as /var/lib or /etc" },
    { field: f("dataDir"), given: s.dataDir, ok: () => !foreign.some((v) => pathsOverlap(dataDir, v)),
      accepted: () => `a directory that neither is, contains nor lies inside ${foreign.find((v) => pathsOverlap(dataDir, v))} (another daemon's or the packaged cluster's files)` },
    { field: f("database"), given: s.database, ok: typeof s.database === "string" && ROLE.test(s.database) && !["postgres", "template0", "template1"].includes(s.database), accepted: `${ROLE_TEXT}, other than postgres/template0/template1` },
    // PgBouncer serves its admin console as the database "pgbouncer": the application could never reach its own
    { field: f("database"), given: s.database, ok: () => (s.database as string) !== "pgbouncer" && !isReservedRoleName(s.database),
      accepted: `a name other than "pgbouncer" (PgBouncer's admin console), pg_* and the pg_hba keywords all, sameuser, samerole, samegroup, replication` },
    ...(["appUser", "superuser", "replicationUser", "rewindUser"] as const).flatMap((k): Rule[] => [
      { field: f(k), given: s[k], ok: typeof s[k] === "string" && ROLE.test(s[k]), accepted: ROLE_TEXT },
      { field: f(k), given: s[k], ok: () => !isReservedRoleName(s[k]), accepted: RESERVED_TEXT },
    ]),
  ]);
  const roles: [string, string][] = [["superuser", s.superuser], ["replicationUser", s.replicationUser], ["rewindUser", s.rewindUser], ["appUser", s.appUser]];
  roles.forEach(([key, role], i) => {
    const other = roles.slice(0, i).find(([, x]) => x === role);
    if (other) invalid(f(key), role, `a role name different from ${other[0]}`);
  });
  checkRules([
    { field: f("failoverProfile"), given: s.failoverProfile, ok: Object.prototype.hasOwnProperty.call(FailoverProfiles, s.failoverProfile as string), accepted: `one of ${Object.keys(FailoverProfiles).map((k) => JSON.stringify(k)).join(", ")}` },
  ]);
  const profile = FailoverProfiles[s.failoverProfile];
  const ttl = get("ttl", profile.ttl as number);
  const loopWait = get("loopWait", profile.loopWait as number);
  const retryTimeout = get("retryTimeout", profile.retryTimeout as number);
  checkRules([
    // Patroni 3.0.2 (Debian 12) accepts any ttl; 7 = loop_wait 1 + 2 × retry_timeout 3, the floors below (later releases raise anything below 20 to 20)
    { field: f("ttl"), given: ttl, ok: isInt(ttl, 7, 3600), accepted: "whole seconds from 7 to 3600" },
    { field: f("loopWait"), given: loopWait, ok: isInt(loopWait, 1, 600), accepted: "whole seconds from 1 to 600" },
    { field: f("retryTimeout"), given: retryTimeout, ok: isInt(retryTimeout, 3, 600), accepted: "whole seconds from 3 to 600" },
  ]);
  checkRules([
    { field: f("ttl"), given: ttl, ok: ttl >= loopWait + 2 * retryTimeout, accepted: `at least loopWait + 2 × retryTimeout = ${loopWait + 2 * retryTimeout} (Patroni's rule, so a slow loop does not lose the leader key)` },
    { field: f("synchronousMode"), given: s.synchronousMode, ok: typeof s.synchronousMode === "boolean", accepted: "true or false" },
    { field: f("maxConnections"), given: s.maxConnections, ok: isInt(s.maxConnections, 10, 10000), accepted: "a whole number from 10 to 10000" },
    { field: f("maxSlotWalKeepSize"), given: s.maxSlotWalKeepSize, ok: typeof s.maxSlotWalKeepSize === "string" && /^[1-9][0-9]{0,5}(MB|GB|TB)$/.test(s.maxSlotWalKeepSize),
      accepted: "a PostgreSQL size such as \"512MB\", \"1GB\" or \"1TB\" (a slot may never hold back unlimited WAL)" },
  ]);
  const noFailover = s.noFailover as unknown;
  checkRules([{ field: f("noFailover"), given: noFailover, ok: Array.isArray(noFailover) && noFailover.every((x) => typeof x === "string"),
    accepted: "a list of member names from hastack:postgres.nodes" }]);
  const names = nodes.map((h) => h.name);
  const listed = noFailover as string[];
  checkRules([
    ...listed.map((x, i) => ({ field: f(`noFailover[${i}]`), given: x, ok: names.includes(x) && listed.indexOf(x) === i,
      accepted: `the name of a member in hastack:postgres.nodes (${names.join(", ")}), each once` })),
    { field: f("noFailover"), given: noFailover, ok: () => names.filter((x) => !listed.includes(x)).length >= 2,
      accepted: "a list that leaves at least two members able to lead (with one, its loss leaves no member to fail over to)" },
  ]);
  const timing = etcdTimings(r.etcdHeartbeatMs, r.etcdElectionMs, retryTimeout);
  return { ...s, nodes, ttl, loopWait, retryTimeout, subnet, etcdDataDir: `/var/lib/etcd/${s.clusterName}`, ...timing };
}

/** etcd's defaults (etcd 3.4): what a member runs with when the stack sets neither timing. */
export const ETCD_DEFAULT_HEARTBEAT_MS = 100;
export const ETCD_DEFAULT_ELECTION_MS = 1000;

/** etcdHeartbeatMs / etcdElectionMs: etcd's own limits, and Patroni's retryTimeout above one election. */
function etcdTimings(heartbeat: unknown, election: unknown, retryTimeout: number): { etcdHeartbeatMs?: number; etcdElectionMs?: number } {
  checkRules([
    { field: `${K}.etcdHeartbeatMs`, given: heartbeat, ok: heartbeat === undefined || isInt(heartbeat, 10, 10000), accepted: "whole milliseconds from 10 to 10000" },
    { field: `${K}.etcdElectionMs`, given: election, ok: election === undefined || isInt(election, 50, 50000), accepted: "whole milliseconds from 50 to 50000 (etcd refuses more)" },
  ]);
  const h = (heartbeat as number | undefined) ?? ETCD_DEFAULT_HEARTBEAT_MS;
  const e = (election as number | undefined) ?? ETCD_DEFAULT_ELECTION_MS;
  checkRules([
    { field: `${K}.${election === undefined ? "etcdHeartbeatMs" : "etcdElectionMs"}`, given: election === undefined ? heartbeat : election, ok: e >= 5 * h,
      accepted: `an election timeout at least 5 × the heartbeat (etcd refuses less): here heartbeat ${h} ms, election ${e} ms${election === undefined ? " (etcd's default; set etcdElectionMs too)" : ""}` },
    { field: `${K}.etcdElectionMs`, given: e, ok: e < retryTimeout * 1000,
      accepted: `less than retryTimeout (${retryTimeout} s), or one etcd election outlasts Patroni's retries and the leader demotes itself` },
  ]);
  return { ...(heartbeat === undefined ? {} : { etcdHeartbeatMs: h }), ...(election === undefined ? {} : { etcdElectionMs: e }) };
}
