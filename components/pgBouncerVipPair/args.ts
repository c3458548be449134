import { HostSpec } from "../common/host";
import { VRRP_TIMING_DEFAULTS, vrrpTimingRules } from "../keepalived/timing";
import {
  INTERFACE_TEXT, checkHosts, checkRules, checkSection, invalid, inSubnet, isInterfaceName, isPort, vipRules,
} from "../common/validate";

/** Stack config under `hastack:proxy`: the PgBouncer pair behind a keepalived VIP. */
export interface PgBouncerVipPairSettings {
  /** Proxy hosts; keepalived priorities descend in this order (the first node is preferred for the VIP). Usually 2. */
  readonly nodes: HostSpec[];
  /** Floating IPv4 address clients connect to; inside the stack subnet and not any host's address. */
  readonly vip: string;
  /** PgBouncer listen port (on all addresses, so the VIP works wherever it lands). @default 6432 */
  readonly port?: number;
  /** Local HAProxy port (127.0.0.1 only) that forwards to the current Patroni primary. @default 5000 */
  readonly haproxyPort?: number;
  /**
   * PgBouncer pool mode. WorksPad is .NET/Npgsql, which relies on session state (prepared statements,
   * session settings), so session pooling is the safe default.
   * @default "session"
   */
  readonly poolMode?: "session" | "transaction" | "statement";
  /** Server connections per (database, user) pair. @default 20 */
  readonly defaultPoolSize?: number;
  /** Client connections PgBouncer accepts in total. @default 500 */
  readonly maxClientConn?: number;
  /** Client authentication method; SCRAM end to end is preferred. @default "scram-sha-256" */
  readonly authType?: "scram-sha-256" | "md5";
  /** Network interface that carries the VIP (`host0` in the nspawn lab). @default "eth0" */
  readonly interface?: string;
  /** VRRP virtual router id, unique per L2 segment. @default 51 */
  readonly virtualRouterId?: number;
  /** Use unicast VRRP (peers = the other nodes) instead of multicast. @default false */
  readonly unicast?: boolean;
  /** Seconds between PgBouncer login checks; with checkFall 2 a dead PgBouncer loses the VIP in about 2–3 s. @default 1 */
  readonly checkIntervalSeconds?: number;
  /** Failed checks before the node gives up the VIP (FAULT). @default 2 */
  readonly checkFall?: number;
  /** Passed checks before the node may hold the VIP again. @default 2 */
  readonly checkRise?: number;
  /** VRRP protocol version of the VIP pair: 3 (sub-second adverts, no authentication) or 2 (whole seconds, clear-text auth_pass). @default 3 */
  readonly vrrpVersion?: 2 | 3;
  /** Seconds between the VIP holder's adverts; a crashed holder is replaced after 3 × this + skew. 0.1..40.95 in 0.01 steps (VRRPv3), whole 1..255 (VRRPv2). @default 0.3 */
  readonly advertIntervalSeconds?: number;
}

export const PgBouncerVipPairDefaults = {
  port: 6432,
  haproxyPort: 5000,
  poolMode: "session",
  defaultPoolSize: 20,
  maxClientConn: 500,
  authType: "scram-sha-256",
  interface: "eth0",
  virtualRouterId: 51,
  unicast: false,
  checkIntervalSeconds: 1,
  checkFall: 2,
  checkRise: 2,
  vrrpVersion: VRRP_TIMING_DEFAULTS.vrrpVersion,
  advertIntervalSeconds: VRRP_TIMING_DEFAULTS.advertIntervalSeconds,
} as const;

export interface ResolvedPgBouncerVipPairSettings {
  readonly nodes: HostSpec[];
  readonly vip: string;
  /** Prefix length of the stack subnet, used for the VIP address. */
  readonly vipPrefix: number;
  /** keepalived priority per node, same order as `nodes`, strictly descending. */
  readonly priorities: number[];
  readonly port: number;
  readonly haproxyPort: number;
  readonly poolMode: "session" | "transaction" | "statement";
  readonly defaultPoolSize: number;
  readonly maxClientConn: number;
  readonly authType: "scram-sha-256" | "md5";
  readonly interface: string;
  readonly virtualRouterId: number;
  readonly unicast: boolean;
  readonly checkIntervalSeconds: number;
  readonly checkFall: number;
  readonly checkRise: number;
  readonly vrrpVersion: 2 | 3;
  readonly advertIntervalSeconds: number;
}

/** A port another daemon on the stack already uses (e.g. Patroni's PostgreSQL and REST ports). */
export interface ReservedPort {
  readonly name: string;
  readonly port: number;
}

const KEY = "hastack:proxy";
/** Client plus server connections one PgBouncer may hold under pgbouncer.service's 1024 open files, less sockets and logs. */
export const PGBOUNCER_MAX_FDS = 1000;
export const MAX_NODES = 10;
const KNOWN = new Set(["nodes", "vip", ...Object.keys(PgBouncerVipPairDefaults)]);

const isInt = (n: unknown, min: number, max: number): n is number =>
  typeof n === "number" && Number.isInteger(n) && n >= min && n <= max;


/**
 * Apply defaults and validate `hastack:proxy`. Pure; throws ConfigError before any resource exists.
 * `allHostAddresses` are the addresses of every host of the stack (the VIP must be none of them);
 * `reservedPorts` are ports other daemons use (PgBouncer and HAProxy must not clash with them).
 */
export function resolvePgBouncerVipPairSettings(raw: unknown, subnet: string, allHostAddresses: string[] = [],
  reservedPorts: ReservedPort[] = []): ResolvedPgBouncerVipPairSettings {
  const r = checkSection(KEY, raw, subnet, KNOWN, "an object with at least nodes and vip");
  checkHosts(`${KEY}.nodes`, r.nodes, 1);
  const nodes = (r.nodes as HostSpec[]).map((h) => ({ name: h.name, address: h.address }));
  const s = { ...PgBouncerVipPairDefaults, ...r } as Record<string, any>;

  checkRules([
    { field: `${KEY}.nodes`, given: nodes.length, ok: nodes.length <= MAX_NODES, accepted: `at most ${MAX_NODES} nodes` },
    ...nodes.map((h, i) => ({ field: `${KEY}.nodes[${i}].name`, given: h.name, ok: nodes.findIndex((o) => o.name === h.name) === i,
      accepted: "a name no other proxy node has" })),
    ...nodes.map((h, i) => ({ field: `${KEY}.nodes[${i}].address`, given: h.address,
      ok: nodes.findIndex((o) => o.address === h.address) === i, accepted: "an address no other proxy node has" })),
    ...nodes.map((h, i) => ({ field: `${KEY}.nodes[${i}].address`, given: h.address, ok: inSubnet(h.address, subnet),
      accepted: `an address inside the stack subnet ${subnet} (VRRP needs one L2 segment)` })),
    ...vipRules(`${KEY}.vip`, s.vip, subnet, [...allHostAddresses, ...nodes.map((n) => n.address)], "10.213.7.50"),
  ]);
  checkRules([
    { field: `${KEY}.port`, given: s.port, ok: isPort(s.port), accepted: "a TCP port 1..65535" },
    { field: `${KEY}.haproxyPort`, given: s.haproxyPort, ok: isPort(s.haproxyPort), accepted: "a TCP port 1..65535" },
  ]);
  checkRules([
    { field: `${KEY}.haproxyPort`, given: s.haproxyPort, ok: s.haproxyPort !== s.port, accepted: `a port other than ${KEY}.port (${s.port})` },
    ...reservedPorts.flatMap((rp) => [
      { field: `${KEY}.port`, given: s.port, ok: s.port !== rp.port, accepted: `a port other than ${rp.name} (${rp.port})` },
      { field: `${KEY}.haproxyPort`, given: s.haproxyPort, ok: s.haproxyPort !== rp.port, accepted: `a port other than ${rp.name} (${rp.port})` },
    ]),
    { field: `${KEY}.poolMode`, given: s.poolMode, ok: ["session", "transaction", "statement"].includes(s.poolMode),
      accepted: `one of "session", "transaction", "statement"` },
    { field: `${KEY}.defaultPoolSize`, given: s.defaultPoolSize, ok: isInt(s.defaultPoolSize, 1, 10000), accepted: "an integer 1..10000" },
    { field: `${KEY}.maxClientConn`, given: s.maxClientConn, ok: isInt(s.maxClientConn, 1, 100000), accepted: "an integer 1..100000" },
  ]);
  checkRules([
    { field: `${KEY}.maxClientConn`, given: s.maxClientConn, ok: s.maxClientConn >= s.defaultPoolSize,
      accepted: `at least ${KEY}.defaultPoolSize (${s.defaultPoolSize})` },
    // every client and server connection is a file descriptor; Debian's pgbouncer.service keeps systemd's
    // soft limit of 1024 and PgBouncer 1.18 only reads it (getrlimit, no setrlimit), so more would fail with EMFILE
    { field: `${KEY}.maxClientConn`, given: s.maxClientConn, ok: () => s.maxClientConn + s.defaultPoolSize <= PGBOUNCER_MAX_FDS,
      accepted: () => `at most ${PGBOUNCER_MAX_FDS - s.defaultPoolSize} (${PGBOUNCER_MAX_FDS} file descriptors for clients and the ${s.defaultPoolSize} server connections of defaultPoolSize: systemd's open-file limit of 1024 for pgbouncer.service, less a margin for its own files)` },
    { field: `${KEY}.authType`, given: s.authType, ok: ["scram-sha-256", "md5"].includes(s.authType), accepted: `"scram-sha-256" or "md5"` },
    { field: `${KEY}.interface`, given: s.interface, ok: isInterfaceName(s.interface),
      accepted: INTERFACE_TEXT },
    { field: `${KEY}.virtualRouterId`, given: s.virtualRouterId, ok: isInt(s.virtualRouterId, 1, 255), accepted: "an integer 1..255" },
    { field: `${KEY}.unicast`, given: s.unicast, ok: typeof s.unicast === "boolean", accepted: "true or false" },
    { field: `${KEY}.checkIntervalSeconds`, given: s.checkIntervalSeconds, ok: isInt(s.checkIntervalSeconds, 1, 60), accepted: "an integer 1..60" },
    { field: `${KEY}.checkFall`, given: s.checkFall, ok: isInt(s.checkFall, 1, 10), accepted: "an integer 1..10" },
    { field: `${KEY}.checkRise`, given: s.checkRise, ok: isInt(s.checkRise, 1, 10), accepted: "an integer 1..10" },
  ]);
  checkRules(vrrpTimingRules(KEY, s.vrrpVersion, s.advertIntervalSeconds));

  return {
    nodes,
    vip: s.vip,
    vipPrefix: Number(subnet.split("/")[1]),
    // first node preferred; steps of 10 leave room for manual tuning
    priorities: nodes.map((_, i) => 200 - 10 * i),
    port: s.port,
    haproxyPort: s.haproxyPort,
    poolMode: s.poolMode,
    defaultPoolSize: s.defaultPoolSize,
    maxClientConn: s.maxClientConn,
    authType: s.authType,
    interface: s.interface,
    virtualRouterId: s.virtualRouterId,
    unicast: s.unicast,
    checkIntervalSeconds: s.checkIntervalSeconds,
    checkFall: s.checkFall,
    checkRise: s.checkRise,
    vrrpVersion: s.vrrpVersion,
    advertIntervalSeconds: s.advertIntervalSeconds,
  };
}

/**
 * PgBouncer 1.18 (Debian 12) keeps an auth_file password in a 2048-byte buffer with its NUL
 * (MAX_PASSWORD in include/bouncer.h) and skips a longer entry: "password too long in auth file".
 */
export const PGBOUNCER_MAX_PASSWORD_BYTES = 2047;

/**
 * The application password as PgBouncer's userlist and the WorksPad preseed take it; checked when the
 * secret resolves (it may be generated or come from another stack). The message never shows it.
 */
export function checkAppPassword(pass: string): void {
  if (typeof pass !== "string" || pass.length === 0 || /[\r\n\0]/.test(pass) || Buffer.byteLength(pass, "utf8") > PGBOUNCER_MAX_PASSWORD_BYTES) {
    invalid("hastack:passwords.postgresApp", `<secret of ${typeof pass === "string" ? pass.length : 0} characters>`,
      `a non-empty password on one line of at most ${PGBOUNCER_MAX_PASSWORD_BYTES} bytes (PgBouncer's auth_file limit)`);
  }
}

/**
 * keepalived reads `auth_pass` as one quoted word and uses only its first 8 characters; a `"` or `\`
 * cannot be quoted. Checked when the secret resolves; the message never shows the value.
 */
export function checkKeepalivedAuthPass(pass: string): void {
  if (typeof pass !== "string" || pass.length < 1 || pass.length > 8 || !/^[\x21-\x7e]+$/.test(pass) || /["\\]/.test(pass)) {
    invalid("hastack:passwords.proxyKeepalived", `<secret of ${typeof pass === "string" ? pass.length : 0} characters>`,
      "1..8 printable ASCII characters without spaces, '\"' or '\\' (e.g. RandomPassword { length: 8, special: false })");
  }
}

/** Names PgBouncer and PostgreSQL see: database and user names are written unquoted into pgbouncer.ini and .pgpass. */
export function checkPgName(field: string, v: unknown): void {
  if (typeof v !== "string" || !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(v)) {
    invalid(field, v, "a PostgreSQL identifier of letters, digits and '_', not starting with a digit, at most 63 characters");
  }
}

/** Patroni members HAProxy follows; checked when the upstream value resolves. */
export function checkPatroniMembers(v: unknown): void {
  checkHosts("patroniMembers", v, 1);
}
