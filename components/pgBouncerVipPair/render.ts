import * as crypto from "crypto";
import { HostSpec } from "../common/host";
import { scramSecret } from "../common/scram";
import { VrrpTiming, renderVrrpTimingLines } from "../keepalived/timing";

/** Where the component writes things on a proxy host. */
export const PATHS = {
  haproxyCfg: "/etc/haproxy/haproxy.cfg",
  pgbouncerIni: "/etc/pgbouncer/pgbouncer.ini",
  userlist: "/etc/pgbouncer/userlist.txt",
  keepalivedConf: "/etc/keepalived/keepalived.conf",
  /** keepalived's enable_script_security wants the script and every parent directory writable by root only. */
  checkScript: "/usr/local/lib/hastack/check-pgbouncer",
  /** Run by keepalived (as root) when the node stops holding the VIP. */
  resetScript: "/usr/local/lib/hastack/reset-vip-sessions",
  checkDir: "/var/lib/hastack-pgbouncer-check",
  checkPgpass: "/var/lib/hastack-pgbouncer-check/pgpass",
  unixSocketDir: "/var/run/postgresql",
} as const;

/** keepalived's conventional unprivileged script user. */
export const SCRIPT_USER = "keepalived_script";
/** PgBouncer stats-only user the keepalived check logs in as (admin console, `SHOW VERSION`). */
export const CHECK_USER = "hastack_check";
/** Debian's pgbouncer.service runs as postgres; it must read the ini and the userlist. */
export const PGBOUNCER_USER = "postgres";

/** Reject values that would end an ini/config line or start a comment. */
function plain(what: string, v: string | number): string {
  const s = String(v);
  if (/[\r\n;#"'\\]/.test(s) || s.trim() !== s) throw new Error(`render: ${what} ${JSON.stringify(s)} cannot be written unquoted`);
  return s;
}

export interface HaproxyCfgParams {
  readonly members: readonly HostSpec[];
  readonly pgPort: number;
  readonly restApiPort: number;
  readonly haproxyPort: number;
  /**
   * Another site's members, used only while no local member answers /primary (HAProxy `backup`): a standby
   * site's clients then write through their own VIP to the leading site. Each has its own ports. @default []
   */
  readonly backupMembers?: readonly { name: string; address: string; pgPort: number; restApiPort: number }[];
  /** Overridable so the daemon test can run HAProxy unprivileged in a temp dir. */
  readonly chrootDir?: string;
  readonly statsSocket?: string;
}

/** Local HAProxy that sends PgBouncer's server connections to whichever Patroni member answers 200 on /primary. */
export function renderHaproxyCfg(p: HaproxyCfgParams): string {
  const chroot = plain("chroot", p.chrootDir ?? "/var/lib/haproxy");
  const sock = plain("stats socket", p.statsSocket ?? "/run/haproxy/admin.sock");
  return [
    "# Managed by hastack (PgBouncerVipPair); local edits are overwritten.",
    "global",
    "    log /dev/log local0",
    `    chroot ${chroot}`,
    `    stats socket ${sock} mode 660 level admin`,
    "    user haproxy",
    "    group haproxy",
    "    maxconn 4096",
    "",
    "defaults",
    "    log global",
    "    mode tcp",
    "    option tcplog",
    "    retries 2",
    // the members are on the proxies' own LAN: a connect takes a millisecond. A longer timeout made a
    // PgBouncer login that started as the leader crashed hang on it (× 3 tries: 12 s, issue 12), and
    // PgBouncer opens no other server connection while one is in progress
    "    timeout connect 1s",
    // long idle sessions are normal for pooled DB connections; PgBouncer recycles them itself
    "    timeout client 30m",
    "    timeout server 30m",
    "    timeout check 3s",
    "",
    // never a fixed leader: Patroni's REST answers 200 on /primary only on the current leader
    "listen postgres_primary",
    `    bind 127.0.0.1:${p.haproxyPort}`,
    "    mode tcp",
    "    option httpchk OPTIONS /primary",
    "    http-check expect status 200",
    // clients of a demoted primary are cut off instead of writing into a replica-to-be
    // fastinter: while a server changes state it is checked every 250 ms, so a new leader is used within ~0.5 s
    // downinter: a DOWN member (a replica, or the leader-to-be) is checked every 500 ms, so a promotion is seen sooner
    "    default-server inter 1s downinter 500ms fastinter 250ms fall 2 rise 2 on-marked-down shutdown-sessions",
    ...p.members.map((m) => `    server ${plain("member name", m.name)} ${plain("member address", m.address)}:${p.pgPort} check port ${p.restApiPort}`),
    ...(p.backupMembers ?? []).map((m) =>
      `    server ${plain("member name", m.name)} ${plain("member address", m.address)}:${m.pgPort} check port ${m.restApiPort} backup`),
    "",
  ].join("\n");
}

export interface PgbouncerIniParams {
  readonly database: string;
  readonly haproxyPort: number;
  readonly port: number;
  /** @default "*" (the VIP may land on this node at any time) */
  readonly listenAddr?: string;
  readonly authType: string;
  readonly poolMode: string;
  readonly defaultPoolSize: number;
  readonly maxClientConn: number;
  /** @default PATHS.userlist */
  readonly authFile?: string;
  /** @default PATHS.unixSocketDir */
  readonly unixSocketDir?: string;
}

/** pgbouncer.ini: one database routed to the local HAProxy; no secrets (those live in the userlist). */
export function renderPgbouncerIni(p: PgbouncerIniParams): string {
  const db = plain("database", p.database);
  return [
    "; Managed by hastack (PgBouncerVipPair); local edits are overwritten.",
    "[databases]",
    `${db} = host=127.0.0.1 port=${p.haproxyPort} dbname=${db}`,
    "",
    "[pgbouncer]",
    `listen_addr = ${plain("listen_addr", p.listenAddr ?? "*")}`,
    `listen_port = ${p.port}`,
    `unix_socket_dir = ${plain("unix_socket_dir", p.unixSocketDir ?? PATHS.unixSocketDir)}`,
    `auth_type = ${plain("auth_type", p.authType)}`,
    `auth_file = ${plain("auth_file", p.authFile ?? PATHS.userlist)}`,
    // nobody administers PgBouncer over the network; the check user may only run SHOW commands
    "admin_users =",
    `stats_users = ${CHECK_USER}`,
    `pool_mode = ${plain("pool_mode", p.poolMode)}`,
    `default_pool_size = ${p.defaultPoolSize}`,
    `max_client_conn = ${p.maxClientConn}`,
    "server_reset_query = DISCARD ALL",
    "server_check_query = select 1",
    "server_check_delay = 10",
    // Npgsql (and JDBC) send extra_float_digits at startup, which PgBouncer would otherwise refuse
    "ignore_startup_parameters = extra_float_digits",
    // after a failed login to the backend (a failover in progress) retry soon, not after the default 15 s
    "server_login_retry = 0.5",
    "log_connections = 0",
    "log_disconnections = 0",
    "",
  ].join("\n");
}

/** One PgBouncer auth_file entry; `"` inside a quoted field is doubled (PgBouncer's userlist format). */
export function userlistLine(user: string, password: string): string {
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  if (/[\r\n]/.test(user + password)) throw new Error("render: userlist values cannot contain line breaks");
  return `${q(user)} ${q(password)}`;
}

/**
 * userlist.txt. With SCRAM, each entry is the role's SCRAM secret (scramSecret, the one PostgreSQL
 * stores for the app role): PgBouncer verifies a login with two HMACs instead of 4096 PBKDF2 rounds
 * on its single thread, and logs in to PostgreSQL with the client's proven keys. With md5 (or a
 * password scramSecret cannot hash) the entry is the plain password, which PgBouncer can use both ways.
 * The check user exists only in PgBouncer.
 */
export function renderUserlist(entries: readonly { user: string; password: string }[], authType: "scram-sha-256" | "md5"): string {
  return entries.map((e) => userlistLine(e.user, (authType === "scram-sha-256" ? scramSecret(e.user, e.password) : undefined) ?? e.password))
    .join("\n") + "\n";
}

/** A libpq password file line; `:` and `\` are escaped with `\`. */
export function pgpassLine(host: string, port: number | "*", database: string, user: string, password: string): string {
  const e = (s: string) => s.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
  if (/[\r\n]/.test(password)) throw new Error("render: pgpass values cannot contain line breaks");
  return [host, String(port), database, user, password].map(e).join(":");
}

/** The check user's password: derived from the app password so no extra secret has to be threaded through the stack. */
export function checkUserPassword(appPassword: string): string {
  return crypto.createHmac("sha256", appPassword).update("hastack pgbouncer keepalived check").digest("hex").slice(0, 32);
}

/** The check user's pgpass: any host (local address or the VIP), PgBouncer's admin console only. */
export function renderCheckPgpass(port: number, password: string): string {
  return pgpassLine("*", port, "pgbouncer", CHECK_USER, password) + "\n";
}

export interface CheckScriptParams {
  readonly port: number;
  /** @default PATHS.checkPgpass */
  readonly pgpassFile?: string;
  /** @default 2 */
  readonly connectTimeoutSeconds?: number;
}

/**
 * keepalived's vrrp_script. A real SCRAM login to PgBouncer (not a process check), but to its admin console
 * as a stats-only user running `SHOW VERSION`: that login does not depend on the Patroni primary, so during a
 * database failover (when every proxy's backend is briefly gone) the proxies do not all go to FAULT at once.
 */
export function renderCheckScript(p: CheckScriptParams): string {
  // the host defaults to the local PgBouncer; the deploy passes the VIP as $1 to check it end to end
  const conninfo = `host=\${1:-127.0.0.1} port=${p.port} dbname=pgbouncer user=${CHECK_USER}` +
    ` connect_timeout=${p.connectTimeoutSeconds ?? 2} sslmode=disable`;
  return [
    "#!/bin/sh",
    "# Managed by hastack (PgBouncerVipPair): keepalived check, a real login to PgBouncer's admin console.",
    `PGPASSFILE='${plain("pgpass file", p.pgpassFile ?? PATHS.checkPgpass)}'`,
    "export PGPASSFILE",
    `exec /usr/bin/psql -X -A -t -q -w -d "${conninfo}" -c 'SHOW VERSION' >/dev/null 2>&1`,
    "",
  ].join("\n");
}

/**
 * keepalived's notify script for leaving MASTER (BACKUP or FAULT): resets every client session of
 * PgBouncer still open on this node (clients reach it only through the VIP). Without it a client
 * of a hung PgBouncer waits for its own timeout (Npgsql: 30 s; forever without one), because the
 * new VIP holder never hears from a client that is only waiting for an answer. keepalived has
 * already removed the VIP when this runs, and the kernel routes no packet from an address that is
 * not local, so the RSTs of `ss -K` would be dropped: the VIP is put on `lo` (/32) for the moment
 * of the reset and removed again.
 */
export function renderResetScript(p: { vip: string; port: number }): string {
  const vip = plain("vip", p.vip);
  return [
    "#!/bin/sh",
    "# Managed by hastack (PgBouncerVipPair): keepalived notify_backup/notify_fault.",
    `if ip -4 addr add ${vip}/32 dev lo 2>/dev/null; then added=1; else added=; fi`,
    // by port, not by VIP: every PgBouncer client session arrived through the VIP
    `/usr/bin/ss -t -n -K state established '( sport = :${p.port} )' >/dev/null 2>&1`,
    `if [ -n "$added" ]; then ip -4 addr del ${vip}/32 dev lo; fi`,
    "exit 0",
    "",
  ].join("\n");
}

export interface KeepalivedConfParams {
  readonly routerId: string;
  readonly interface: string;
  readonly virtualRouterId: number;
  readonly priority: number;
  readonly authPass: string;
  readonly vip: string;
  readonly vipPrefix: number;
  /** Own address; with unicast, the other nodes are the peers. */
  readonly self: string;
  readonly peers: readonly string[];
  readonly unicast: boolean;
  readonly checkIntervalSeconds: number;
  readonly checkFall: number;
  readonly checkRise: number;
  /** VRRP version and advert interval; auth_pass is written only with VRRPv2. */
  readonly timing: VrrpTiming;
  /** @default PATHS.checkScript */
  readonly checkScript?: string;
  /** @default SCRIPT_USER */
  readonly scriptUser?: string;
  /** @default PATHS.resetScript */
  readonly resetScript?: string;
}

/** keepalived.conf (secret: holds auth_pass with VRRPv2). */
export function renderKeepalivedConf(p: KeepalivedConfParams): string {
  if (/["\\\s]/.test(p.authPass)) throw new Error("render: auth_pass cannot hold '\"', '\\' or whitespace");
  const iface = plain("interface", p.interface);
  return [
    "# Managed by hastack (PgBouncerVipPair); local edits are overwritten.",
    "global_defs {",
    `    router_id ${plain("router_id", p.routerId)}`,
    // scripts run unprivileged; without this keepalived runs them as root with a warning
    "    enable_script_security",
    `    script_user ${plain("script_user", p.scriptUser ?? SCRIPT_USER)}`,
    "}",
    "",
    // weight 0 (the default): after `fall` failed logins the instance goes to FAULT and gives up the VIP
    "vrrp_script chk_pgbouncer {",
    `    script "${plain("check script", p.checkScript ?? PATHS.checkScript)}"`,
    `    interval ${p.checkIntervalSeconds}`,
    "    timeout 3",
    `    fall ${p.checkFall}`,
    `    rise ${p.checkRise}`,
    "}",
    "",
    "vrrp_instance hastack_pgbouncer {",
    "    state BACKUP",
    `    interface ${iface}`,
    `    virtual_router_id ${p.virtualRouterId}`,
    `    priority ${p.priority}`,
    ...renderVrrpTimingLines(p.timing, p.authPass, true),
    // every VIP move drops all client sessions: do not move it back when a preferred node recovers
    "    nopreempt",
    // re-announce the VIP every 5 s: after a healed split both nodes were MASTER, and the survivor
    // sends no gratuitous ARP of its own, so clients could keep the loser's MAC (seen in a CI run)
    "    garp_master_refresh 5",
    ...(p.unicast && p.peers.length > 0
      ? [`    unicast_src_ip ${plain("address", p.self)}`, "    unicast_peer {", ...p.peers.map((a) => `        ${plain("address", a)}`), "    }"]
      : []),
    "    virtual_ipaddress {",
    `        ${plain("vip", p.vip)}/${p.vipPrefix} dev ${iface}`,
    "    }",
    "    track_script {",
    "        chk_pgbouncer",
    "    }",
    // aborting sockets needs CAP_NET_ADMIN: these two run as root (the script is root-owned, 0755)
    `    notify_backup "${plain("reset script", p.resetScript ?? PATHS.resetScript)}" root`,
    `    notify_fault "${plain("reset script", p.resetScript ?? PATHS.resetScript)}" root`,
    "}",
    "",
  ].join("\n");
}

/** A value in an ADO.NET/Npgsql connection string: quoted with `"` (inner `"` doubled) when it holds anything special. */
export function npgsqlValue(v: string): string {
  return v === "" || /[;="'{}\s]/.test(v) || v.trim() !== v ? `"${v.replace(/"/g, '""')}"` : v;
}

export function npgsqlConnectionString(p: { host: string; port: number; database: string; username: string; password: string }): string {
  return [
    ["Host", p.host], ["Port", String(p.port)], ["Database", p.database], ["Username", p.username], ["Password", p.password],
  ].map(([k, v]) => `${k}=${npgsqlValue(v)}`).join(";");
}

// the one keepalived config check, shared with the nginx and Redis pairs
export { keepalivedValidateCommand } from "../keepalived/render";
