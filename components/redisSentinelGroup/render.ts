import { createHash, createHmac } from "crypto";
import { HostSpec } from "../common/host";
import { shq } from "../common/shell";
import { VRRP_V2_TIMING, renderKeepalivedConf } from "../common/vrrp";
import { ResolvedRedisSentinelGroupSettings } from "./args";

/** Where the files live on a Redis node. */
export const REDIS_PATHS = {
  /** Written once (include + replicaof); Redis and Sentinel rewrite it on failover. */
  main: "/etc/redis/redis.conf",
  mainMarker: "/etc/redis/.hastack-redis-conf",
  /** Settings hastack owns and may change; included by the main file. */
  managed: "/etc/redis/hastack.conf",
  /** Redis users (default, the application's, Sentinel's, HAProxy's check) with hashed passwords; an aclfile keeps CONFIG REWRITE from copying users into redis.conf. */
  acl: "/etc/redis/hastack-users.acl",
  /** Written once; Sentinel rewrites it itself. */
  sentinel: "/etc/redis/sentinel.conf",
  sentinelMarker: "/etc/redis/.hastack-sentinel-conf",
  /**
   * hastack's own password (hastack:passwords.redisSentinel) alone, no newline, 0600 root: Sentinel's requirepass and
   * Redis' `default` user; REDISCLI_AUTH and `redis-cli -x` read it, never the command line. The application's password is on no host in clear.
   */
  cliPass: "/etc/redis/hastack-cli.pass",
  health: "/etc/redis/hastack-health.sh",
  haproxy: "/etc/haproxy/haproxy.cfg",
  keepalived: "/etc/keepalived/keepalived.conf",
  keepalivedCheck: "/etc/keepalived/hastack-redis-check.sh",
} as const;

/** Daemon-side paths, overridable so the daemon tests run the same files in a temp dir. */
export interface RedisRuntimePaths {
  readonly dir: string;
  readonly pidfile: string;
  readonly logfile: string;
}
export const REDIS_RUNTIME: RedisRuntimePaths = { dir: "/var/lib/redis", pidfile: "/run/redis/redis-server.pid", logfile: "/var/log/redis/redis-server.log" };
export const SENTINEL_RUNTIME: RedisRuntimePaths = { dir: "/var/lib/redis", pidfile: "/run/sentinel/redis-sentinel.pid", logfile: "/var/log/redis/redis-sentinel.log" };

/** Where one group's files, runtime paths and units are: what a host runs for it. */
export interface RedisLayout {
  readonly paths: { readonly [K in keyof typeof REDIS_PATHS]: string };
  readonly redisRuntime: RedisRuntimePaths;
  readonly sentinelRuntime: RedisRuntimePaths;
  /** systemd units: Redis, Sentinel, the group's HAProxy and keepalived. */
  readonly units: { readonly redis: string; readonly sentinel: string; readonly haproxy: string; readonly keepalived: string };
  /** Unit files hastack writes for a named group (its own HAProxy and keepalived); none in the single-object form. */
  readonly unitFiles?: { readonly haproxy: string; readonly keepalived: string };
}

/**
 * The single-object form keeps Debian's packaged units and paths (deployed stacks see no change); a named group
 * gets Debian's instance units (redis-server@NAME reads /etc/redis/redis-NAME.conf, redis-sentinel@NAME
 * /etc/redis/sentinel-NAME.conf), a data dir of its own under /var/lib/redis (the units may write there), and its
 * own HAProxy and keepalived processes, so several groups on one host share no file, port or process.
 */
export function redisLayout(group?: string): RedisLayout {
  if (group === undefined) {
    return { paths: REDIS_PATHS, redisRuntime: REDIS_RUNTIME, sentinelRuntime: SENTINEL_RUNTIME,
      units: { redis: "redis-server", sentinel: "redis-sentinel", haproxy: "haproxy", keepalived: "keepalived" } };
  }
  const g = group;
  const dir = `/var/lib/redis/${g}`;
  return {
    paths: {
      main: `/etc/redis/redis-${g}.conf`,
      mainMarker: `/etc/redis/.hastack-redis-${g}-conf`,
      managed: `/etc/redis/hastack-${g}.conf`,
      acl: `/etc/redis/hastack-${g}-users.acl`,
      sentinel: `/etc/redis/sentinel-${g}.conf`,
      sentinelMarker: `/etc/redis/.hastack-sentinel-${g}-conf`,
      cliPass: `/etc/redis/hastack-${g}-cli.pass`,
      health: `/etc/redis/hastack-${g}-health.sh`,
      haproxy: `/etc/haproxy/redis-${g}.cfg`,
      keepalived: `/etc/keepalived/redis-${g}.conf`,
      keepalivedCheck: `/etc/keepalived/hastack-redis-${g}-check.sh`,
    },
    // the instance units' RuntimeDirectory (redis-NAME, sentinel-NAME) holds the pid files
    redisRuntime: { dir, pidfile: `/run/redis-${g}/redis-server.pid`, logfile: `/var/log/redis/redis-server-${g}.log` },
    sentinelRuntime: { dir, pidfile: `/run/sentinel-${g}/redis-sentinel.pid`, logfile: `/var/log/redis/redis-sentinel-${g}.log` },
    units: { redis: `redis-server@${g}`, sentinel: `redis-sentinel@${g}`, haproxy: `hastack-redis-haproxy-${g}`, keepalived: `hastack-redis-keepalived-${g}` },
    unitFiles: {
      haproxy: `/etc/systemd/system/hastack-redis-haproxy-${g}.service`,
      keepalived: `/etc/systemd/system/hastack-redis-keepalived-${g}.service`,
    },
  };
}

const layoutOf = (s: { readonly group?: string }) => redisLayout(s.group);

/**
 * A named group's HAProxy unit: Debian's haproxy.service runs /etc/haproxy/haproxy.cfg only, and one process
 * per group keeps a group's reload from touching another's connections.
 */
export function renderHaproxyUnit(group: string): string {
  const L = redisLayout(group);
  const cfg = L.paths.haproxy;
  return [
    "# Managed by hastack (RedisSentinelGroup); changes are overwritten.",
    "[Unit]",
    `Description=HAProxy to the master of hastack Redis group ${group}`,
    "After=network-online.target",
    "Wants=network-online.target",
    "",
    "[Service]",
    // the chroot has no /dev/log of its own
    "BindReadOnlyPaths=-/dev/log:/var/lib/haproxy/dev/log",
    `ExecStartPre=/usr/sbin/haproxy -c -q -f ${cfg}`,
    // -Ws: master-worker with systemd notify; a reload (USR2) starts new workers, old connections finish on the old ones
    `ExecStart=/usr/sbin/haproxy -Ws -f ${cfg} -p /run/${L.units.haproxy}.pid`,
    `ExecReload=/usr/sbin/haproxy -c -q -f ${cfg}`,
    "ExecReload=/bin/kill -USR2 $MAINPID",
    "KillMode=mixed",
    "Restart=always",
    "SuccessExitStatus=143",
    "Type=notify",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/**
 * A named group's keepalived unit: its own process (own pid files, VRRP only) reading only the group's file, so
 * each group's VIP has its own configuration, reload and failure; virtual_router_ids still differ per L2 segment.
 */
export function renderKeepalivedUnit(group: string): string {
  const L = redisLayout(group);
  const pid = `/run/${L.units.keepalived}`;
  return [
    "# Managed by hastack (RedisSentinelGroup); changes are overwritten.",
    "[Unit]",
    `Description=keepalived VIP of hastack Redis group ${group}`,
    "After=network-online.target",
    "Wants=network-online.target",
    `ConditionFileNotEmpty=${L.paths.keepalived}`,
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=/usr/sbin/keepalived --dont-fork --vrrp --use-file=${L.paths.keepalived} --pid=${pid}.pid --vrrp_pid=${pid}-vrrp.pid --checkers_pid=${pid}-checkers.pid`,
    "ExecReload=/bin/kill -HUP $MAINPID",
    "Restart=always",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** Placeholder in the staged sentinel.conf that the host replaces with the master it discovered. */
export const MASTER_PLACEHOLDER = "@MASTER@";

/**
 * A value quoted for redis.conf/sentinel.conf: double quotes, with backslash escapes for `\` and `"`
 * and \xHH for anything not printable ASCII (Redis' sdssplitargs reads these back verbatim).
 */
export function redisQuote(v: string): string {
  let out = "";
  for (const b of Buffer.from(v, "utf8")) {
    const c = String.fromCharCode(b);
    if (c === "\\" || c === "\"") out += `\\${c}`;
    else if (b >= 0x20 && b < 0x7f) out += c;
    else out += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return `"${out}"`;
}

/** Directives hastack.conf owns; CONFIG REWRITE copies them into redis.conf, where they would override the include. */
export const MANAGED_DIRECTIVES = ["bind", "protected-mode", "port", "pidfile", "logfile", "dir", "requirepass", "aclfile", "masterauth",
  "replica-announce-ip", "appendonly", "maxmemory", "min-replicas-to-write", "min-replicas-max-lag"] as const;

/**
 * Sentinel logs in to Redis as its own ACL user with a password derived from hastack's own secret
 * (64 hex digits; the application's password cannot derive it). Redis 7.0's Sentinel writes
 * `sentinel auth-pass` back to sentinel.conf unquoted, so a password with quotes would leave a file
 * Sentinel cannot read after its next restart (seen in the lab: "Unbalanced quotes in configuration line").
 */
export const SENTINEL_USER = "hastack-sentinel";
/** HAProxy's health check logs in as this user, which may only PING and read INFO. */
export const CHECK_USER = "hastack-check";

export function sentinelAuthPass(internalPassword: string): string {
  return createHmac("sha256", internalPassword).update(SENTINEL_USER).digest("hex");
}
export function checkAuthPass(internalPassword: string): string {
  return createHmac("sha256", internalPassword).update(CHECK_USER).digest("hex");
}

/** The commands Sentinel needs on a monitored Redis (Redis' Sentinel ACL guidance). */
const SENTINEL_ACL = "allchannels +multi +slaveof +ping +exec +subscribe +config|rewrite +role +publish +info +client|setname +client|kill +script|kill";

const sha256hex = (v: string) => createHash("sha256").update(v).digest("hex");

export interface RedisAclParams {
  readonly appUser: string;
  /** Validated command rules (args.ts), written as given after "~* &*". */
  readonly appCommands: readonly string[];
}

/**
 * The ACL file, passwords as sha256 (`#…`), so no quoting is involved and no password is stored in clear:
 * `default` is hastack's own login (replication, scripts, operators) with the internal password; the
 * application gets its own user and only its command rules; Sentinel and HAProxy's check get what they use.
 * With an aclfile, Redis' CONFIG REWRITE (run by Sentinel on every failover) no longer writes `user` lines
 * into redis.conf, where they would duplicate and break the next start. A previous application password (given while
 * clients move to a rotated one) opens the application's user too, until a later up leaves it out.
 */
/** The application user's password hashes as ACL rules (`#…`): the password, and the previous one while it is given. */
export function appPasswordHashes(appPassword: string, appPrevious?: string): string {
  return [appPassword, ...(appPrevious === undefined || appPrevious === appPassword ? [] : [appPrevious])].map((pw) => `#${sha256hex(pw)}`).join(" ");
}

export function renderRedisAcl(p: RedisAclParams, appPassword: string, internalPassword: string, appPrevious?: string): string {
  return [
    `user default on #${sha256hex(internalPassword)} ~* &* +@all`,
    `user ${p.appUser} on ${appPasswordHashes(appPassword, appPrevious)} ~* &* ${p.appCommands.join(" ")}`,
    `user ${SENTINEL_USER} on #${sha256hex(sentinelAuthPass(internalPassword))} ${SENTINEL_ACL}`,
    `user ${CHECK_USER} on #${sha256hex(checkAuthPass(internalPassword))} -@all +ping +info`,
    "",
  ].join("\n");
}

/** /etc/redis/hastack.conf: the settings hastack owns (never replicaof: that is Redis' and Sentinel's). */
export function renderRedisManaged(s: ResolvedRedisSentinelGroupSettings, self: HostSpec, internalPassword: string,
  rt: RedisRuntimePaths = layoutOf(s).redisRuntime, bind: string[] = [self.address, "127.0.0.1"], aclPath: string = layoutOf(s).paths.acl): string {
  const priority = s.replicaPriorities?.[s.nodes.findIndex((n) => n.name === self.name)];
  return [
    "# Managed by hastack (RedisSentinelGroup); changes are overwritten. Included by redis.conf.",
    `bind ${bind.join(" ")}`,
    // a password is always set, so protected mode would change nothing
    "protected-mode yes",
    `port ${s.port}`,
    `pidfile ${rt.pidfile}`,
    `logfile ${rt.logfile}`,
    `dir ${rt.dir}`,
    // users and their passwords live in the ACL file; replicas log in to the master as `default`
    `aclfile ${aclPath}`,
    `masterauth ${redisQuote(internalPassword)}`,
    `replica-announce-ip ${self.address}`,
    "appendonly yes",
    `min-replicas-to-write ${s.minReplicasToWrite}`,
    `min-replicas-max-lag ${s.minReplicasMaxLagSeconds}`,
    ...(s.maxmemory ? [`maxmemory ${s.maxmemory}`] : []),
    // lower is promoted first; 0: Sentinel never makes this node master (keeps the master in a preferred site)
    ...(priority === undefined ? [] : [`replica-priority ${priority}`]),
    "",
  ].join("\n");
}

/** The once-written redis.conf: the include, plus replicaof unless this node is the master. */
export function renderRedisMain(master: string | undefined, port: number, managedPath: string = REDIS_PATHS.managed): string {
  return [
    "# Written once by hastack; Redis and Sentinel own this file from now on (CONFIG REWRITE on failover).",
    "# Settings hastack manages live in the included file.",
    `include ${managedPath}`,
    ...(master ? [`replicaof ${master} ${port}`] : []),
    "",
  ].join("\n");
}

/** sentinel.conf as first written; `master` is MASTER_PLACEHOLDER when the host fills it in. */
export function renderSentinelConf(s: ResolvedRedisSentinelGroupSettings, self: HostSpec, internalPassword: string, master: string,
  rt: RedisRuntimePaths = layoutOf(s).sentinelRuntime, bind: string[] = [self.address, "127.0.0.1"], port: number = s.sentinelPort): string {
  const m = s.masterName;
  return [
    "# Written once by hastack; Sentinel rewrites this file itself. Later setting changes go through SENTINEL SET.",
    `port ${port}`,
    `bind ${bind.join(" ")}`,
    `pidfile ${rt.pidfile}`,
    `logfile ${rt.logfile}`,
    `dir ${rt.dir}`,
    // all Sentinels share hastack's own password, not the application's: they log in to each other with their own requirepass
    `requirepass ${redisQuote(internalPassword)}`,
    "sentinel resolve-hostnames no",
    "sentinel announce-hostnames no",
    `sentinel announce-ip ${self.address}`,
    "sentinel deny-scripts-reconfig yes",
    `sentinel monitor ${m} ${master} ${s.port} ${s.quorum}`,
    `sentinel auth-user ${m} ${SENTINEL_USER}`,
    `sentinel auth-pass ${m} ${sentinelAuthPass(internalPassword)}`,
    `sentinel down-after-milliseconds ${m} ${s.downAfterMs}`,
    `sentinel failover-timeout ${m} ${s.failoverTimeoutMs}`,
    `sentinel parallel-syncs ${m} ${s.parallelSyncs}`,
    "",
  ].join("\n");
}

/**
 * Shell: sets $master to the group's master. In order: what a running Sentinel reports; else a peer Redis that
 * is a master with replicas (a group whose Sentinels are all down); else `fallback`, the node chooseInitialMaster
 * picked from every node's data (initialMaster.ts): after `pulumi destroy` no Sentinel runs, and the first node
 * must not become master over newer data elsewhere.
 */
export function renderDiscoverMaster(s: ResolvedRedisSentinelGroupSettings, fallback: string, passFile: string = layoutOf(s).paths.cliPass): string {
  const peers = s.nodes.map((n) => n.address).join(" ");
  return [
    `REDISCLI_AUTH=$(cat ${passFile}); export REDISCLI_AUTH`,
    "ipv4() { printf '%s' \"$1\" | grep -Eqx '[0-9]{1,3}(\\.[0-9]{1,3}){3}'; }",
    "master=''",
    `for peer in ${peers}; do`,
    `  a=$(timeout 3 redis-cli -h "$peer" -p ${s.sentinelPort} SENTINEL get-master-addr-by-name ${s.masterName} 2>/dev/null | head -n 1 | tr -d '\\r') || a=''`,
    "  if ipv4 \"$a\"; then master=$a; echo \"master $master reported by the Sentinel on $peer\" >&2; break; fi",
    "done",
    `if [ -z "$master" ]; then for peer in ${peers}; do`,
    `  i=$(timeout 3 redis-cli -h "$peer" -p ${s.port} INFO replication 2>/dev/null | tr -d '\\r') || i=''`,
    "  if printf '%s\\n' \"$i\" | grep -qx 'role:master' && ! printf '%s\\n' \"$i\" | grep -qx 'connected_slaves:0' && printf '%s\\n' \"$i\" | grep -q '^connected_slaves:'; then",
    "    master=$peer; echo \"master $master: a running master with replicas\" >&2; break",
    "  fi",
    "done; fi",
    `[ -n "$master" ] || { master=${fallback}; echo "master $master: the node with the newest data (no Sentinel or master answers)" >&2; }`,
  ].join("\n");
}

/**
 * Survey run before anything is written: the replication offset this node's dump.rdb was saved with
 * (Redis saves it on every stop, so also on the one `pulumi destroy` makes), read from the AUX fields at
 * the file's start without loading the data. One line, parsed by parseSurvey.
 */
export function renderSurveyScript(rt: RedisRuntimePaths = REDIS_RUNTIME): string {
  const rdb = shq(`${rt.dir}/dump.rdb`);
  return [
    "offset=''",
    // the AUX fields come first; awk stops at the first line after them, so a large file is not read through
    `if [ -s ${rdb} ]; then offset=$(timeout 60 redis-check-rdb ${rdb} 2>/dev/null | ` +
      `awk -F"'" '/AUX FIELD repl-offset = / { print $2; exit } /AUX FIELD/ || NR == 1 { next } { exit }') || offset=''; fi`,
    "printf '%s' \"$offset\" | grep -Eqx '[0-9]{1,20}' || offset=none",
    "echo \"hastack-redis-survey offset=$offset\"",
  ].join("\n");
}

/**
 * Write redis.conf only if hastack never wrote it (the packaged file does not count), pointing a new
 * replica at the master the Sentinels report: a redeploy never undoes a failover.
 */
export function renderRedisMainScript(s: ResolvedRedisSentinelGroupSettings, self: HostSpec, fallback: string): string {
  const L = layoutOf(s);
  const P = L.paths;
  return [
    `if [ -e ${P.main} ] && [ -e ${P.mainMarker} ]; then echo kept; exit 0; fi`,
    renderDiscoverMaster(s, fallback),
    // the packaged instance runs on the packaged file; it must not outlive it
    `systemctl stop ${L.units.redis} 2>/dev/null || true`,
    `if [ -e ${P.main} ] && [ ! -e ${P.main}.dpkg-hastack ]; then cp -p ${P.main} ${P.main}.dpkg-hastack; fi`,
    `NEW=$(mktemp /etc/redis/.hastack.XXXXXX)`,
    `trap 'rm -f "$NEW"' EXIT`,
    "{",
    ...renderRedisMain(undefined, s.port, P.managed).trimEnd().split("\n").map((l) => `  printf '%s\\n' ${shq(l)}`),
    `  if [ "$master" != ${self.address} ]; then printf 'replicaof %s %s\\n' "$master" ${s.port}; fi`,
    `} > "$NEW"`,
    `chmod 0640 "$NEW"`,
    `chown redis:redis "$NEW"`,
    `mv -f "$NEW" ${P.main}`,
    `touch ${P.mainMarker}`,
    `echo "written; master $master"`,
  ].join("\n");
}

/** Write sentinel.conf (staged on stdin with MASTER_PLACEHOLDER) only if hastack never wrote it. */
export function renderSentinelScript(s: ResolvedRedisSentinelGroupSettings, fallback: string): string {
  const L = layoutOf(s);
  const P = L.paths;
  return [
    `if [ -e ${P.sentinel} ] && [ -e ${P.sentinelMarker} ]; then cat >/dev/null; echo kept; exit 0; fi`,
    renderDiscoverMaster(s, fallback),
    `NEW=$(mktemp /etc/redis/.hastack.XXXXXX)`,
    `trap 'rm -f "$NEW"' EXIT`,
    `chmod 0640 "$NEW"`,
    `sed "/^sentinel monitor /s/${MASTER_PLACEHOLDER}/$master/" > "$NEW"`,
    `grep -q "^sentinel monitor ${s.masterName} $master ${s.port} " "$NEW"`,
    `chown redis:redis "$NEW"`,
    // the packaged Sentinel rewrites its file on events; stop it before replacing the file
    `systemctl stop ${L.units.sentinel} 2>/dev/null || true`,
    `if [ -e ${P.sentinel} ] && [ ! -e ${P.sentinel}.dpkg-hastack ]; then cp -p ${P.sentinel} ${P.sentinel}.dpkg-hastack; fi`,
    `mv -f "$NEW" ${P.sentinel}`,
    `touch ${P.sentinelMarker}`,
    `echo "written; master $master"`,
  ].join("\n");
}

/** Apply the changeable Sentinel settings at runtime (Sentinel persists them itself); idempotent. */
export function renderSentinelSetScript(s: ResolvedRedisSentinelGroupSettings, host = "127.0.0.1", port: number = s.sentinelPort,
  passFile: string = layoutOf(s).paths.cliPass): string {
  const cli = `redis-cli -h ${host} -p ${port}`;
  return [
    `REDISCLI_AUTH=$(cat ${passFile}); export REDISCLI_AUTH`,
    "i=0",
    `until [ "$(${cli} ping 2>/dev/null | tr -d '\\r')" = PONG ]; do i=$((i+1)); [ $i -lt 30 ] || { echo 'Sentinel does not answer' >&2; exit 1; }; sleep 1; done`,
    "check() { [ \"$(printf '%s' \"$2\" | tr -d '\\r')\" = OK ] || { echo \"SENTINEL SET $1 failed: $2\" >&2; exit 1; }; }",
    ...([["quorum", s.quorum], ["down-after-milliseconds", s.downAfterMs], ["failover-timeout", s.failoverTimeoutMs],
      ["parallel-syncs", s.parallelSyncs]] as const)
      .map(([k, v]) => `check ${k} "$(${cli} SENTINEL SET ${s.masterName} ${k} ${v})"`),
    `check auth-user "$(${cli} SENTINEL SET ${s.masterName} auth-user ${SENTINEL_USER})"`,
    // -x takes the last argument from stdin: the (derived) password never appears in argv
    `check auth-pass "$(${cli} -x SENTINEL SET ${s.masterName} auth-pass < ${passFile}.sentinel)"`,
  ].join("\n");
}

/**
 * Strip what CONFIG REWRITE copied from hastack.conf into redis.conf, then apply the new files: at runtime when
 * hastack.conf changed in nothing but masterauth (`ACL LOAD` and `CONFIG SET masterauth`: a password rotation, a
 * previous application password dropped, new command rules), else by a restart. A restart of the master costs the
 * clients a failover's pause; a runtime change costs them nothing but the reconnect of sessions whose user changed
 * (Redis 7.0's ACL LOAD closes those).
 *
 * The node remembers in `<hastack.conf>.applied` the hash of the hastack.conf (without masterauth) its Redis last
 * started on, with that start's systemd InvocationID: a Redis started since by anything else (an operator, a
 * reboot, systemd after a crash) may run other settings, so without a matching record it restarts, as before.
 */
export function renderRedisApplyScript(s: { readonly group?: string; readonly replicaPriorities?: readonly unknown[]; readonly port?: number } = {}): string {
  const L = layoutOf(s);
  const unit = L.units.redis;
  // users belong to the ACL file only; a `user` line in redis.conf next to an aclfile stops Redis from starting
  const names = [...MANAGED_DIRECTIVES, ...(s.replicaPriorities ? ["replica-priority"] : []), "user"].join("|");
  const cli = `timeout 30 redis-cli -h 127.0.0.1 -p ${s.port ?? 6379}`;
  return [
    ...appliedRecord(L),
    `sed -i -E '/^[[:space:]]*(${names})([[:space:]]|$)/d' ${L.paths.main}`,
    `chown redis:redis ${L.paths.main}`,
    `if systemctl is-active --quiet ${unit} && [ "$(cat "$record" 2>/dev/null)" = "$(applied)" ]; then`,
    `  REDISCLI_AUTH=$(cat ${shq(L.paths.cliPass)}); export REDISCLI_AUTH`,
    // masterauth on stdin (never argv), in the file's own quoting, which redis-cli reads as Redis does
    `  a=$(sed -n 's/^masterauth[[:space:]]\\{1,\\}/CONFIG SET masterauth /p' ${shq(L.paths.managed)} | ${cli} 2>&1 | tr -d '\\r')`,
    "  if [ \"$a\" = OK ]; then",
    `    l=$(echo 'ACL LOAD' | ${cli} 2>&1 | tr -d '\\r')`,
    "    if [ \"$l\" = OK ]; then echo 'settings unchanged: users and masterauth applied at runtime, no restart'; exit 0; fi",
    // never restart on an ACL file Redis refuses: it would not start again
    "    echo \"Redis refuses the new ACL file: $l\" >&2; exit 1",
    "  fi",
    "  echo \"CONFIG SET masterauth answered: $a; restarting instead\" >&2",
    "fi",
    // Redis drops a SIGTERM that lands while it writes its initial AOF (just after a replica's full sync:
    // "Writing initial AOF, can't exit") and never retries, and Debian's unit waits forever for the stop
    // (TimeoutStopSec=0): a first deploy hung 14 min on that. So the restart runs in the background and,
    // while the stop is pending, the main process gets SIGTERM again every 5 s (its AOF is written by then).
    // (the job's end is read from a file: a finished job stays a zombie for `kill -0` until waited for)
    "done_file=$(mktemp -u /tmp/hastack-redis-restart.XXXXXX)",
    `( set +e; systemctl restart ${unit}; echo "$?" > "$done_file" ) &`,
    "n=0",
    "while [ ! -s \"$done_file\" ]; do",
    "  sleep 1; n=$((n + 1))",
    `  if [ $((n % 5)) -eq 0 ] && [ "$(systemctl show -p ActiveState --value ${unit})" = deactivating ]; then`,
    `    pid=$(systemctl show -p MainPID --value ${unit})`,
    "    if [ \"${pid:-0}\" -gt 0 ]; then echo \"redis-server still stopping after ${n}s: SIGTERM again\" >&2; kill -TERM \"$pid\" 2>/dev/null || true; fi",
    "  fi",
    "done",
    "wait",
    "rc=$(cat \"$done_file\"); rm -f \"$done_file\"",
    "[ \"$rc\" -eq 0 ] || exit \"$rc\"",
    "applied > \"$record\"",
  ].join("\n");
}

/** Shell lines defining $record and `applied` (what the record holds when the running Redis started on the current hastack.conf). */
function appliedRecord(L: RedisLayout): string[] {
  return [
    `record=${shq(`${L.paths.managed}.applied`)}`,
    `applied() { printf '%s %s\\n' "$(sed '/^masterauth[[:space:]]/d' ${shq(L.paths.managed)} | sha256sum | cut -d' ' -f1)" `
      + `"$(systemctl show -p InvocationID --value ${L.units.redis})"; }`,
  ];
}

/**
 * The same step's update. Pulumi runs it instead of the create when the step's inputs but not its triggers (the
 * files' hashes) changed: an upgrade of hastack that changed the script, or the drift probe after a file was put
 * back. A Redis with no record yet (deployed before the record existed) that started after hastack.conf and the ACL
 * file were last written runs them as they are: it is recorded, not restarted, so an upgrade restarts nothing.
 * Otherwise the create's logic decides.
 */
export function renderRedisApplyUpdateScript(s: { readonly group?: string; readonly replicaPriorities?: readonly unknown[]; readonly port?: number } = {}): string {
  const L = layoutOf(s);
  const unit = L.units.redis;
  return [
    ...appliedRecord(L),
    `pid=$(systemctl show -p MainPID --value ${unit})`,
    `if [ ! -s "$record" ] && systemctl is-active --quiet ${unit} && [ "\${pid:-0}" -gt 0 ]; then`,
    "  started=$(( $(date +%s) - $(ps -o etimes= -p \"$pid\") ))",
    `  newest=$(stat -c %Y ${shq(L.paths.managed)} ${shq(L.paths.acl)} | sort -n | tail -n 1)`,
    "  if [ \"$started\" -gt \"$newest\" ]; then applied > \"$record\"; echo 'Redis started on these files: recorded them as applied, no restart'; exit 0; fi",
    "fi",
    renderRedisApplyScript(s),
  ].join("\n");
}

/** Validation of a staged hastack.conf: Redis has no -t, so run it briefly on a unix socket only; a bad file exits at once. */
export function renderRedisManagedCheck(): string {
  return [
    "T=$(mktemp -d /tmp/hastack-redis.XXXXXX)",
    "trap 'rm -rf \"$T\"' EXIT",
    "cp \"$NEW\" \"$T/test.conf\"",
    "rc=0",
    "timeout 2 redis-server \"$T/test.conf\" --port 0 --unixsocket \"$T/redis.sock\" --dir \"$T\" --logfile '' --pidfile \"$T/pid\" " +
      "--daemonize no --supervised no >\"$T/out\" 2>&1 || rc=$?",
    "if [ \"$rc\" -ne 124 ]; then cat \"$T/out\" >&2; exit 1; fi",
  ].join("\n");
}

/** RESP encoding of AUTH [user] <password> as hex, for `tcp-check send-binary`. */
export function respAuthHex(password: string, user?: string): string {
  const args = [Buffer.from("AUTH"), ...(user === undefined ? [] : [Buffer.from(user, "utf8")]), Buffer.from(password, "utf8")];
  return Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap((a) => [Buffer.from(`$${a.length}\r\n`), a, Buffer.from("\r\n")])])
    .toString("hex");
}

export interface HaproxyOverrides {
  /** Replace the global section's lines (daemon tests run without chroot and privilege drop). */
  readonly global?: string[];
  readonly bind?: string;
  readonly servers?: { name: string; address: string; port: number }[];
}

/** haproxy.cfg: one TCP frontend that always reaches the current Redis master. Secret (the check logs in as CHECK_USER). */
export function renderHaproxyCfg(s: ResolvedRedisSentinelGroupSettings, internalPassword: string, o: HaproxyOverrides = {}): string {
  const servers = o.servers ?? s.nodes.map((n) => ({ name: n.name, address: n.address, port: s.port }));
  // a named group's HAProxy runs in the foreground under its own unit (-Ws) and has no admin socket: one per host is Debian's
  const global = s.group === undefined ? ["log /dev/log local0", "chroot /var/lib/haproxy", "stats socket /run/haproxy/admin.sock mode 660 level admin",
    "user haproxy", "group haproxy", "daemon"] : ["log /dev/log local0", "chroot /var/lib/haproxy", "user haproxy", "group haproxy"];
  return [
    "# Managed by hastack (RedisSentinelGroup); changes are overwritten.",
    "global",
    ...(o.global ?? global).map((l) => `    ${l}`),
    "",
    "defaults",
    "    mode tcp",
    "    log global",
    "    option tcplog",
    "    timeout connect 3s",
    // clients hold connections open (pub/sub, blocking pops)
    "    timeout client 1h",
    "    timeout server 1h",
    "    timeout check 2s",
    "",
    "frontend redis",
    `    bind ${o.bind ?? ""}:${s.haproxyPort}`,
    "    default_backend redis_master",
    "",
    "backend redis_master",
    "    option tcp-check",
    "    tcp-check connect",
    // AUTH <user> <password>\r\n, sent as RESP: the inline protocol would split a password on quotes and spaces
    `    tcp-check send-binary ${respAuthHex(checkAuthPass(internalPassword), CHECK_USER)}`,
    "    tcp-check expect string +OK",
    "    tcp-check send PING\\r\\n",
    "    tcp-check expect string +PONG",
    "    tcp-check send info\\ replication\\r\\n",
    "    tcp-check expect string role:master",
    "    tcp-check send QUIT\\r\\n",
    "    tcp-check expect string +OK",
    ...servers.map((v) => `    server ${v.name} ${v.address}:${v.port} check inter 1s fastinter 250ms fall 2 rise 2 on-marked-down shutdown-sessions`),
    "",
  ].join("\n");
}

/** Script keepalived runs: an authenticated PING through the local HAProxy. */
export function renderKeepalivedCheck(s: ResolvedRedisSentinelGroupSettings): string {
  return [
    "#!/bin/sh",
    "# Managed by hastack: the VIP stays only where the local HAProxy reaches a Redis master.",
    `REDISCLI_AUTH=$(cat ${layoutOf(s).paths.cliPass}) || exit 1`,
    "export REDISCLI_AUTH",
    `[ "$(timeout 2 redis-cli -h 127.0.0.1 -p ${s.haproxyPort} ping 2>/dev/null | tr -d '\\r')" = PONG ]`,
    "",
  ].join("\n");
}

export function renderRedisKeepalived(s: ResolvedRedisSentinelGroupSettings, index: number, authPass: string): string {
  if (!s.vip) throw new Error("renderRedisKeepalived needs a vip");
  const self = s.nodes[index];
  return renderKeepalivedConf({
    instance: s.group === undefined ? "hastack_redis" : `hastack_redis_${s.group.replace(/-/g, "_")}`,
    interface: s.interface,
    virtualRouterId: s.virtualRouterId,
    priority: Math.max(1, 150 - 10 * index),
    selfAddress: self.address,
    peers: s.nodes.filter((_, i) => i !== index).map((n) => n.address),
    vip: s.vip,
    vipPrefix: s.vipPrefix,
    authPass,
    // the Redis VIP keeps VRRPv2 with 1 s adverts: its failover is bounded by Sentinel's downAfterMs (5 s), and
    // its timing has not been measured with VRRPv3 (the nginx and PgBouncer pairs have; see README "keepalived")
    timing: VRRP_V2_TIMING,
    checkScript: layoutOf(s).paths.keepalivedCheck,
  });
}

/**
 * Health script: `local` = this Redis answers PING; `group` = Sentinel quorum reachable, every other Sentinel
 * known, the master has every replica, and the local HAProxy reaches the master. No secret in its text.
 */
export function renderHealthScript(s: ResolvedRedisSentinelGroupSettings): string {
  const n = s.nodes.length;
  return [
    "#!/bin/sh",
    "# Managed by hastack (RedisSentinelGroup).",
    "set -eu",
    `REDISCLI_AUTH=$(cat ${layoutOf(s).paths.cliPass}); export REDISCLI_AUTH`,
    "r() { timeout 3 redis-cli \"$@\" 2>/dev/null | tr -d '\\r'; }",
    // local (the rolling restart's gate): a master answers; a replica has its link up and no full sync in progress
    `if [ "\${1:-group}" = local ]; then`,
    `  info=$(r -h 127.0.0.1 -p ${s.port} info replication)`,
    `  if printf '%s\\n' "$info" | grep -qx 'role:master'; then exit 0; fi`,
    `  printf '%s\\n' "$info" | grep -qx 'master_link_status:up' && printf '%s\\n' "$info" | grep -qx 'master_sync_in_progress:0'; exit`,
    "fi",
    `r -h 127.0.0.1 -p ${s.sentinelPort} SENTINEL ckquorum ${s.masterName} | grep -q '^OK'`,
    `others=$(r -h 127.0.0.1 -p ${s.sentinelPort} SENTINEL master ${s.masterName} | awk 'p { print; exit } $0 == "num-other-sentinels" { p = 1 }')`,
    `[ "$others" = ${n - 1} ]`,
    `master=$(r -h 127.0.0.1 -p ${s.sentinelPort} SENTINEL get-master-addr-by-name ${s.masterName} | head -n 1)`,
    `[ "$(r -h "$master" -p ${s.port} info replication | sed -n 's/^connected_slaves://p')" = ${n - 1} ]`,
    `[ "$(r -h 127.0.0.1 -p ${s.haproxyPort} ping)" = PONG ]`,
    "",
  ].join("\n");
}
