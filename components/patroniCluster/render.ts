// Pure renderers: plain values in, file contents and shell scripts out (no Outputs here).
import * as yaml from "js-yaml";
import { HostSpec, shq } from "../common";
import { scramSecret } from "../common/scram";
import { ResolvedPatroniClusterSettings } from "./args";

/** Where Debian's units read their configuration (patroni.service has ConditionPathExists on this exact path). */
export const PATRONI_CONFIG_PATH = "/etc/patroni/config.yml";
export const ETCD_ENV_PATH = "/etc/default/etcd";

/** Passwords Patroni needs in its config file (plain, already resolved). */
export interface PatroniPasswords {
  readonly superuser: string;
  readonly replication: string;
  readonly rewind: string;
  /** Basic-auth password of Patroni's REST API (its unsafe methods: PATCH, POST, PUT, DELETE). */
  readonly restApi: string;
  /** Password of Patroni's etcd user (ETCD_PATRONI_USER). */
  readonly etcd: string;
}

/** etcd user Patroni logs in as; its role may read and write Patroni's namespace only. */
export const ETCD_PATRONI_USER = "patroni";
/** Patroni's key prefix in etcd (its `namespace` setting, left at the default). */
export const PATRONI_NAMESPACE = "/service/";
/**
 * A Patroni tag that says "this member runs with its etcd credentials": Patroni publishes its tags in its
 * member key, so /cluster shows which members have loaded them before etcd starts asking for them.
 */
export const ETCD_AUTH_TAG = "etcd_user";
/** etcd root credentials for an operator's or a test's etcdctl (`. FILE` exports them), root only. */
export const ETCDCTL_ENV_PATH = "/etc/etcd/hastack-etcdctl.env";

/** User name of Patroni's REST API basic auth. */
export const REST_USER = "patroni";
/** curl config (`curl -K`) with the REST API credentials, root only: scripts never put them in argv. */
export const REST_AUTH_PATH = "/etc/patroni/hastack-rest.curl";
/** Where PostgreSQL puts its socket; Patroni and our psql steps connect through it as the superuser. */
export const SOCKET_DIR = "/var/run/postgresql";

export const binDir = (pgVersion: number): string => `/usr/lib/postgresql/${pgVersion}/bin`;
export const restUrl = (host: HostSpec, port: number): string => `http://${host.address}:${port}`;

/** Comma list of every member's client URL, for etcdctl. */
export function etcdEndpoints(nodes: readonly HostSpec[], clientPort: number): string {
  return nodes.map((n) => `http://${n.address}:${clientPort}`).join(",");
}

export interface EtcdEnvInput {
  readonly member: HostSpec;
  readonly nodes: readonly HostSpec[];
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly clusterName: string;
  /** Raft timings in ms; left out of the file when unset (etcd's defaults). */
  readonly heartbeatMs?: number;
  readonly electionMs?: number;
}

/**
 * /etc/default/etcd (the EnvironmentFile of Debian's etcd.service). Values are validated names, addresses
 * and paths, so no quoting is needed. INITIAL_* settings are read only while the data dir is empty:
 * a member that has joined keeps its membership on every later start.
 */
export function renderEtcdEnv(i: EtcdEnvInput): string {
  const a = i.member.address;
  const clientUrls = [...new Set([`http://${a}:${i.clientPort}`, `http://127.0.0.1:${i.clientPort}`])].join(",");
  const vars: [string, string][] = [
    ["ETCD_NAME", i.member.name],
    ["ETCD_DATA_DIR", i.dataDir],
    ["ETCD_LISTEN_PEER_URLS", `http://${a}:${i.peerPort}`],
    ["ETCD_INITIAL_ADVERTISE_PEER_URLS", `http://${a}:${i.peerPort}`],
    ["ETCD_LISTEN_CLIENT_URLS", clientUrls],
    ["ETCD_ADVERTISE_CLIENT_URLS", `http://${a}:${i.clientPort}`],
    ["ETCD_INITIAL_CLUSTER", i.nodes.map((n) => `${n.name}=http://${n.address}:${i.peerPort}`).join(",")],
    ["ETCD_INITIAL_CLUSTER_STATE", "new"],
    ["ETCD_INITIAL_CLUSTER_TOKEN", `${i.clusterName}-etcd`],
    // Patroni uses the v3 API only; v2 keys would be invisible to it
    ["ETCD_ENABLE_V2", "false"],
    // a member that comes back from a partition asks before it calls an election, so it cannot depose a healthy leader
    ["ETCD_PRE_VOTE", "true"],
    ...(i.heartbeatMs === undefined ? [] : [["ETCD_HEARTBEAT_INTERVAL", String(i.heartbeatMs)] as [string, string]]),
    ...(i.electionMs === undefined ? [] : [["ETCD_ELECTION_TIMEOUT", String(i.electionMs)] as [string, string]]),
  ];
  return ["# Managed by hastack (PatroniCluster); changes are overwritten on the next deploy.", ...vars.map(([k, v]) => `${k}=${v}`), ""].join("\n");
}

/** Parse an env file as rendered above (KEY=value lines). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/** A standby cluster's source: the primary site's members (Patroni follows whichever of them is read-write). */
export interface StandbySource {
  /** Addresses of every member of the primary site. */
  readonly hosts: readonly string[];
  readonly port: number;
  /** Permanent slot the primary site keeps for this site. */
  readonly slotName: string;
}

/**
 * The cluster's part in a multi-site setup (absent for one datacenter). A standby follows `standby`;
 * a primary keeps one permanent physical slot per standby site.
 */
export interface SiteRoleConfig {
  readonly standby?: StandbySource;
  readonly permanentSlots: readonly string[];
}

/** Patroni's `standby_cluster` block: a host list makes Patroni connect with target_session_attrs=read-write. */
export function standbyClusterBlock(src: StandbySource): Record<string, unknown> {
  return { host: src.hosts.join(","), port: src.port, primary_slot_name: src.slotName, create_replica_methods: ["basebackup"] };
}

/** Patroni dynamic configuration: bootstrap.dcs at first creation, PATCH /config afterwards. */
export function dynamicConfig(s: ResolvedPatroniClusterSettings, site?: SiteRoleConfig): Record<string, unknown> {
  // in a site setup the PATCH also removes what the other role set (null deletes a key in PATCH /config)
  const siteKeys = site === undefined ? {} : {
    standby_cluster: site.standby ? standbyClusterBlock(site.standby) : null,
    slots: !site.standby && site.permanentSlots.length ? Object.fromEntries(site.permanentSlots.map((n) => [n, { type: "physical" }])) : null,
  };
  return {
    ...siteKeys,
    ttl: s.ttl,
    loop_wait: s.loopWait,
    retry_timeout: s.retryTimeout,
    maximum_lag_on_failover: 1048576,
    synchronous_mode: s.synchronousMode,
    postgresql: {
      use_pg_rewind: true,
      use_slots: true,
      parameters: {
        max_connections: s.maxConnections,
        wal_level: "replica",
        hot_standby: "on",
        wal_log_hints: "on",
        password_encryption: "scram-sha-256",
        max_slot_wal_keep_size: s.maxSlotWalKeepSize,
        // every member ships its WAL (archive_mode on, not always: a replica's archiver waits until it leads)
        ...(s.archive ? { archive_mode: "on", archive_command: s.archive.archiveCommand } : {}),
      },
    },
  };
}

/** dynamicConfig for bootstrap.dcs: null values (removals in a PATCH) have no meaning there. */
export function bootstrapDcs(s: ResolvedPatroniClusterSettings, site?: SiteRoleConfig): Record<string, unknown> {
  return Object.fromEntries(Object.entries(dynamicConfig(s, site)).filter(([, v]) => v !== null));
}

/** JSON body for `PATCH /config` (stable key order, so its hash changes only when a value does). */
export function renderDynamicConfigJson(s: ResolvedPatroniClusterSettings, site?: SiteRoleConfig): string {
  return JSON.stringify(dynamicConfig(s, site)) + "\n";
}

/** Who may reach PostgreSQL over TCP besides loopback: IPv4 addresses or CIDRs. The stack subnet is not a source. */
export interface PatroniAccess {
  /** PgBouncer hosts: the application role logs in from them, to its database only. @default [] */
  readonly proxies?: readonly string[];
  /** Members of another site's cluster: replication and pg_rewind from them. @default [] */
  readonly remoteMembers?: readonly string[];
  /** Operator and monitoring machines: the application role, to its database only. @default [] */
  readonly admin?: readonly string[];
}

const hbaAddress = (a: string): string => (a.includes("/") ? a : `${a}/32`);

/**
 * pg_hba, first match wins and anything unmatched is refused. The superuser only over the socket and
 * loopback; replication and pg_rewind (database postgres) only from members; the application role only
 * from the proxies (and operators) to its database. `remoteSubnets` (other sites) replicate and log in.
 */
export function pgHba(s: ResolvedPatroniClusterSettings, remoteSubnets: readonly string[] = [], access: PatroniAccess = {}): string[] {
  const members = [...s.nodes.map((n) => n.address), ...(access.remoteMembers ?? []), ...remoteSubnets].map(hbaAddress);
  const logins = [...(access.proxies ?? []), ...(access.admin ?? []), ...remoteSubnets].map(hbaAddress);
  const uniq = (xs: string[]) => [...new Set(xs)];
  return [
    "local all postgres peer",
    "local replication postgres peer",
    // Patroni connects as the superuser through the socket (use_unix_socket) with its password
    ...(s.superuser === "postgres" ? [] : [`local all ${s.superuser} scram-sha-256`]),
    `host all ${s.superuser} 127.0.0.1/32 scram-sha-256`,
    // Patroni reads the local timeline over a loopback replication connection
    `host replication ${s.replicationUser} 127.0.0.1/32 scram-sha-256`,
    ...uniq(members).map((a) => `host replication ${s.replicationUser} ${a} scram-sha-256`),
    // pg_rewind and Patroni's checks before it connect to the leader's database postgres
    ...uniq(members).map((a) => `host postgres ${s.rewindUser} ${a} scram-sha-256`),
    ...uniq(logins).map((a) => `host ${s.database} ${s.appUser} ${a} scram-sha-256`),
  ];
}

/** /etc/patroni/config.yml for one member, serialised with js-yaml (passwords quoted by the library). */
export function renderPatroniConfig(s: ResolvedPatroniClusterSettings, member: HostSpec, pw: PatroniPasswords,
  site?: SiteRoleConfig, remoteSubnets: readonly string[] = [], access: PatroniAccess = {}): string {
  const config = {
    scope: s.clusterName,
    name: member.name,
    restapi: {
      listen: `${member.address}:${s.restApiPort}`,
      connect_address: `${member.address}:${s.restApiPort}`,
      // unsafe methods need it; GET/OPTIONS health checks (HAProxy) stay open
      authentication: { username: REST_USER, password: pw.restApi },
    },
    // with these, Patroni logs in once etcd asks for it (and works on until then): https://patroni.readthedocs.io/en/latest/yaml_configuration.html#etcdv3
    etcd3: { hosts: s.nodes.map((n) => `${n.address}:${s.etcdClientPort}`), username: ETCD_PATRONI_USER, password: pw.etcd },
    bootstrap: {
      dcs: bootstrapDcs(s, site),
      initdb: [{ encoding: "UTF8" }, { locale: "C.UTF-8" }, "data-checksums"],
      pg_hba: pgHba(s, remoteSubnets, access),
    },
    postgresql: {
      // one port after the host list: https://patroni.readthedocs.io/en/latest/yaml_configuration.html#postgresql
      listen: `${[...new Set([member.address, "127.0.0.1"])].join(",")}:${s.pgPort}`,
      connect_address: `${member.address}:${s.pgPort}`,
      data_dir: s.dataDir,
      bin_dir: binDir(s.pgVersion),
      // Patroni's own superuser connection through the socket, so the superuser needs no TCP entry but loopback
      use_unix_socket: true,
      pgpass: "/var/lib/postgresql/.pgpass.patroni",
      authentication: {
        superuser: { username: s.superuser, password: pw.superuser },
        replication: { username: s.replicationUser, password: pw.replication },
        rewind: { username: s.rewindUser, password: pw.rewind },
      },
      parameters: { unix_socket_directories: SOCKET_DIR },
      pg_hba: pgHba(s, remoteSubnets, access),
      // a replica that fell behind what the leader keeps catches up from the archive
      ...(s.archive ? { recovery_conf: { restore_command: s.archive.restoreCommand } } : {}),
    },
    tags: { nofailover: s.noFailover.includes(member.name), noloadbalance: false, clonefrom: false, nosync: s.noFailover.includes(member.name), [ETCD_AUTH_TAG]: ETCD_PATRONI_USER },
  };
  return "# Managed by hastack (PatroniCluster); changes are overwritten on the next deploy.\n" +
    yaml.dump(config, { lineWidth: -1, noRefs: true, quotingType: '"' });
}

/**
 * Validation run on the host with $NEW staged. Patroni 3.0.2 also reports its own running ports as
 * "already in use", so while patroni.service is active exactly those lines are tolerated.
 */
export function patroniValidateScript(): string {
  return [
    `if out=$(patroni --validate-config "$NEW" 2>&1); then exit 0; fi`,
    `if ! systemctl is-active --quiet patroni.service; then printf '%s\\n' "$out"; exit 1; fi`,
    `left=$(printf '%s\\n' "$out" | grep -Ev '^(restapi|postgresql)\\.listen .*Port [0-9]+ is already in use' || true)`,
    `if [ -n "$left" ]; then printf '%s\\n' "$left"; exit 1; fi`,
  ].join("\n");
}

/** Stop the packaged `main` cluster for good (data kept) and keep future installs from creating one. */
export function disablePackagedClusterScript(pgVersion: number): string {
  const v = pgVersion;
  return [
    `systemctl disable --now postgresql@${v}-main.service >/dev/null 2>&1 || true`,
    // postgresql.service starts every cluster whose start.conf says "auto", disabled unit or not
    `if [ -f /etc/postgresql/${v}/main/start.conf ]; then printf '%s\\n' '# hastack: Patroni runs PostgreSQL; the packaged cluster stays stopped' manual > /etc/postgresql/${v}/main/start.conf; fi`,
    "conf=/etc/postgresql-common/createcluster.conf",
    `mkdir -p /etc/postgresql-common && touch "$conf"`,
    `if grep -Eq '^[[:space:]#]*create_main_cluster[[:space:]]*=' "$conf"; then`,
    `  sed -i -E 's/^[[:space:]#]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' "$conf"`,
    "else",
    `  echo 'create_main_cluster = false' >> "$conf"`,
    "fi",
  ].join("\n");
}

/** Data directories: created with the right owner and mode, never emptied. */
export function dataDirsScript(s: ResolvedPatroniClusterSettings): string {
  return [
    `install -d -o postgres -g postgres -m 0700 ${shq(s.dataDir)}`,
    `install -d -o etcd -g etcd -m 0700 ${shq(s.etcdDataDir)}`,
  ].join("\n");
}

/** Start etcd without blocking: a member of a new cluster reports ready only once a quorum has started. */
export function etcdStartScript(): string {
  return "systemctl enable etcd.service >/dev/null 2>&1\nsystemctl is-active --quiet etcd.service || systemctl start --no-block etcd.service";
}

/**
 * Restart etcd to read a changed /etc/default/etcd (also replaces an etcd apt started with the
 * packaged defaults). In a running cluster (this member answers healthy: it is a member and there
 * is a quorum) the restart blocks until the member is healthy again, and the next member's step
 * runs only after this one (the wiring chains them), so a quorum is never lost to a deploy. In a
 * cluster still forming there is no quorum to wait for: restart without blocking.
 *
 * A running member whose settings are those of the file, apart from ETCD_INITIAL_* (read only while
 * the data dir is empty), is not restarted: a change of the member list rewrites every member's file,
 * and restarting the old members for nothing costs an etcd election each; under load one of those
 * outlasted Patroni's retry_timeout and the leader demoted itself (a 13 s write pause in a scale-out).
 * The running settings are read from the process's own environment (systemd passes the env file there).
 */
export function etcdRestartScript(self: HostSpec, clientPort: number): string {
  const own = etcdMemberHealthy(`http://${self.address}:${clientPort}`, 3);
  const settings = `grep -E '^ETCD_[A-Z0-9_]+=' | grep -v '^ETCD_INITIAL_' | sort`;
  return [
    "pid=$(systemctl show -p MainPID --value etcd.service 2>/dev/null || echo 0)",
    `if [ "\${pid:-0}" != 0 ] && [ -r "/proc/$pid/environ" ] && ${own} >/dev/null 2>&1 \\`,
    `  && [ "$(tr '\\0' '\\n' < "/proc/$pid/environ" | ${settings})" = "$({ ${settings}; } < ${ETCD_ENV_PATH})" ]; then`,
    "  echo running-settings-unchanged",
    "  exit 0",
    "fi",
    `if ${own} >/dev/null 2>&1; then`,
    "  timeout 120 systemctl restart etcd.service",
    "  deadline=$(( $(date +%s) + 120 ))",
    `  until ${own} >/dev/null 2>&1; do`,
    `    if [ "$(date +%s)" -ge "$deadline" ]; then echo "etcd on ${self.name} not healthy 120 s after its restart" >&2; exit 1; fi`,
    "    sleep 1",
    "  done",
    "  echo restarted-rolling",
    "else",
    "  systemctl restart --no-block etcd.service",
    "fi",
  ].join("\n");
}

/**
 * etcd's /health: true only when the member has a leader and a linearizable read went through the quorum.
 * It needs no credentials with auth on (a refused read still proves the quorum), so no probe holds a password.
 */
function etcdMemberHealthy(url: string, timeoutSeconds: number): string {
  return `curl -sf --max-time ${timeoutSeconds} ${shq(`${url}/health`)} | grep -q '"health":"true"'`;
}

/** Every member healthy (see etcdMemberHealthy). */
export function etcdHealthProbe(nodes: readonly HostSpec[], clientPort: number): string {
  return nodes.map((n) => etcdMemberHealthy(`http://${n.address}:${clientPort}`, 5)).join(" && ");
}

/**
 * /etc/etcd/hastack-etcdctl.env: etcdctl's root login in its own environment variables (never in argv).
 * No ETCDCTL_ENDPOINTS: etcdctl refuses to run when that variable and an --endpoints flag are both given.
 */
export function renderEtcdctlEnv(rootPassword: string): string {
  return [
    "# Managed by hastack (PatroniCluster): etcd root credentials for etcdctl; `. this file` then run etcdctl.",
    "export ETCDCTL_API=3 ETCDCTL_USER=root",
    `export ETCDCTL_PASSWORD=${shq(rootPassword)}`,
    "",
  ].join("\n");
}

/** Stdin of etcdAuthScript: root's and Patroni's etcd passwords, one a line. */
export function renderEtcdAuthStdin(rootPassword: string, patroniPassword: string): string {
  if (/\s/.test(rootPassword + patroniPassword) || !rootPassword || !patroniPassword) throw new Error("render: etcd passwords must be one word");
  return `${rootPassword}\n${patroniPassword}\n`;
}

/**
 * Probe: every member's key shows the ETCD_AUTH_TAG, so every Patroni has read a config with its etcd
 * login (a reload takes effect at its next loop, not at SIGHUP).
 */
export function patroniEtcdCredentialsProbe(rest: string, members: number | readonly string[]): string {
  const py = [
    "import json, sys",
    "m = json.load(sys.stdin).get('members', [])",
    ...PY_MEMBERS,
    `ok = ok_set and all(x.get('tags', {}).get(${JSON.stringify(ETCD_AUTH_TAG)}) == ${JSON.stringify(ETCD_PATRONI_USER)} for x in m)`,
    "sys.exit(0 if ok else 1)",
  ].join("\n");
  return `curl -sf --max-time 5 ${shq(`${rest}/cluster`)} | python3 -c ${shq(py)} ${membersArg(members)}`;
}

/**
 * etcd authentication, from one member, passwords on stdin (etcdctl reads each as one word: --interactive=false).
 * With auth off: the root user, the patroni user and role (read-write on Patroni's namespace only), then
 * `auth enable`. With auth on: logs in as root (its password cannot be changed from here: a refused login
 * fails with what to do) and refreshes the patroni user. Logins travel in ETCDCTL_USER/ETCDCTL_PASSWORD.
 */
export function etcdAuthScript(nodes: readonly HostSpec[], clientPort: number, namespace: string = PATRONI_NAMESPACE): string {
  const u = ETCD_PATRONI_USER;
  return [
    "IFS= read -r root_pw",
    "IFS= read -r patroni_pw",
    `ctl() { ETCDCTL_API=3 etcdctl --endpoints=${shq(etcdEndpoints(nodes, clientPort))} --command-timeout=10s "$@"; }`,
    // without a login: answers only while auth is off
    `if users=$(ctl user list 2>/dev/null); then auth=off; else`,
    "  auth=on",
    `  export ETCDCTL_USER=root ETCDCTL_PASSWORD="$root_pw"`,
    "  if ! users=$(ctl user list 2>&1); then",
    `    case "$users" in *"authentication failed"*)`,
    `      echo "etcd refuses user root with hastack:passwords.etcdRoot: it was changed after etcd authentication was enabled. Set the previous value back, or first change it on the cluster (on a member: . ${ETCDCTL_ENV_PATH}; etcdctl user passwd root), then deploy." >&2;;`,
    `    *) printf '%s\\n' "$users" >&2;;`,
    "    esac",
    "    exit 1",
    "  fi",
    "fi",
    `has() { printf '%s\\n' "$users" | grep -qx "$1"; }`,
    `if [ "$auth" = off ]; then`,
    `  if has root; then printf '%s\\n' "$root_pw" | ctl user passwd root --interactive=false >/dev/null; else printf '%s\\n' "$root_pw" | ctl user add root --interactive=false >/dev/null; fi`,
    // auth enable requires root to hold the root role
    "  ctl role list | grep -qx root || ctl role add root >/dev/null",
    "  ctl user grant-role root root >/dev/null",
    "fi",
    `if has ${u}; then printf '%s\\n' "$patroni_pw" | ctl user passwd ${u} --interactive=false >/dev/null; else printf '%s\\n' "$patroni_pw" | ctl user add ${u} --interactive=false >/dev/null; fi`,
    `ctl role list | grep -qx ${u} || ctl role add ${u} >/dev/null`,
    `ctl role grant-permission ${u} --prefix=true readwrite ${shq(namespace)} >/dev/null`,
    `ctl user grant-role ${u} ${u} >/dev/null`,
    `if [ "$auth" = off ]; then ctl auth enable >/dev/null; echo "etcd authentication enabled"; else echo "etcd authentication on; user ${u} refreshed"; fi`,
  ].join("\n");
}

/**
 * Before anything derived from the cluster name is written: refuse a changed `clusterName` on a host whose
 * Patroni config names another scope (Patroni would start a new, empty cluster; etcd a new data directory).
 */
export function clusterNameGuardScript(clusterName: string, allowRename: boolean, configPath: string = PATRONI_CONFIG_PATH): string {
  const py = "import sys, yaml\nc = yaml.safe_load(open(sys.argv[1])) or {}\nprint(c.get('scope', '') if isinstance(c, dict) else '')";
  const forced = `echo "hastack:postgres.clusterName changes from '$old' to '${clusterName}' (allowClusterRename: true): Patroni starts the cluster again under the new name" >&2`;
  const refused = `echo "hastack:postgres.clusterName: got '${clusterName}', but $(hostname) already runs cluster '$old' (${configPath}). ` +
    "Renaming a running cluster is refused: Patroni would find no state under the new name, the members would race for leadership as an uninitialised cluster " +
    "(a lagging replica can win and drop acknowledged writes) and etcd would start on an empty data directory. Keep clusterName '$old'; " +
    'a rename is safe only by re-bootstrapping (a new cluster restored from a backup). To force it anyway set hastack:postgres.allowClusterRename: true." >&2';
  return [
    `if [ ! -s ${shq(configPath)} ]; then echo "no cluster yet"; exit 0; fi`,
    `old=$(python3 -c ${shq(py)} ${shq(configPath)})`,
    `if [ -z "$old" ] || [ "$old" = ${shq(clusterName)} ]; then echo "cluster name unchanged"; exit 0; fi`,
    allowRename ? forced : `${refused}\nexit 1`,
  ].join("\n");
}

/**
 * Reload Patroni when its config changed after the running process started; start it when stopped.
 * Never sends SIGHUP to a just-started Patroni (before its handler exists SIGHUP would end it cleanly).
 */
export function patroniReloadScript(): string {
  return [
    "u=patroni.service",
    `if ! systemctl is-active --quiet "$u"; then systemctl start "$u"; exit 0; fi`,
    `started=$(date -d "$(systemctl show -p ActiveEnterTimestamp --value "$u")" +%s)`,
    `changed=$(stat -c %Y ${PATRONI_CONFIG_PATH})`,
    `if [ "$changed" -gt "$started" ]; then systemctl reload "$u"; echo reloaded; fi`,
  ].join("\n");
}

// argv: a count (exactly that many members) or the member names (each of them present; a member the stack is
// removing may still be listed until its delete runs, and is not judged; `every` keeps all members listed)
const PY_MEMBERS = [
  "every = m",
  "want = sys.argv[1:]",
  "if len(want) == 1 and want[0].isdigit(): ok_set = len(m) == int(want[0])",
  "else: ok_set = set(want) <= set(x.get('name') for x in m); m = [x for x in m if x.get('name') in want]",
];

const PY_HEALTHY = [
  "import json, sys",
  "m = json.load(sys.stdin).get('members', [])",
  ...PY_MEMBERS,
  // the leader may be a member on its way out: it hands over (switchover) only when its delete runs, after this gate
  "lead = [x for x in every if x.get('role') in ('leader', 'standby_leader') and x.get('state') == 'running']",
  "rest = [x for x in m if x not in lead]",
  "ok = ok_set and len(lead) == 1 and all(x.get('state') in ('running', 'streaming') and isinstance(x.get('lag'), int) for x in rest)",
  "sys.exit(0 if ok else 1)",
].join("\n");

const PY_LEADER = [
  "import json, sys",
  "m = [x for x in json.load(sys.stdin).get('members', []) if x.get('role') in ('leader', 'standby_leader')]",
  "if not m: sys.exit('no leader in /cluster')",
  "print(json.dumps({'name': m[0]['name'], 'host': m[0].get('host', ''), 'port': m[0].get('port', 0)}))",
].join("\n");

/** argv of the member checks: a count, or names (validated node names: no quoting needed, but quoted anyway). */
const membersArg = (members: number | readonly string[]): string => typeof members === "number" ? String(members) : members.map(shq).join(" ");

/**
 * Probe: exactly one running leader and every other member running with a known lag (replaying WAL), among
 * exactly `members` members (a count) or among the named members (names: others may be listed, as while one leaves).
 */
export function clusterHealthyProbe(rest: string, members: number | readonly string[]): string {
  return `curl -sf --max-time 5 ${shq(`${rest}/cluster`)} | python3 -c ${shq(PY_HEALTHY)} ${membersArg(members)}`;
}

/** Prints the current leader as one JSON line {name, host, port}. */
export function leaderQueryScript(rest: string): string {
  return `curl -sf --max-time 5 ${shq(`${rest}/cluster`)} | python3 -c ${shq(PY_LEADER)}`;
}

export interface LeaderInfo { readonly name: string; readonly host: string; readonly port: number }

/** Parse the leader line printed by leaderQueryScript (empty values while unknown, e.g. in a preview). */
export function parseLeader(stdout: string | undefined): LeaderInfo {
  const line = (stdout ?? "").trim().split("\n").pop() ?? "";
  try {
    const v = JSON.parse(line);
    return { name: String(v.name ?? ""), host: String(v.host ?? ""), port: Number(v.port ?? 0) };
  } catch {
    return { name: "", host: "", port: 0 };
  }
}

/**
 * The REST credentials as a curl config file (`curl -K FILE`): a quoted value where `\\` and `"` are
 * escaped with a backslash. https://curl.se/docs/manpage.html#-K
 */
export function renderRestCurlConfig(password: string, user: string = REST_USER): string {
  if (/[\r\n\0]/.test(user + password)) throw new Error("render: REST API credentials must be one line");
  const q = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
  return `# Managed by hastack (PatroniCluster): Patroni REST API credentials for curl -K.\nuser = "${q(user)}:${q(password)}"\n`;
}

/** Dynamic settings applied to an existing cluster through the local member's REST API (JSON on stdin, credentials from a 0600 file). */
export function patchConfigScript(rest: string, authFile: string = REST_AUTH_PATH): string {
  return `curl -sf --max-time 30 -K ${shq(authFile)} -XPATCH -H 'Content-Type: application/json' -d @- ${shq(`${rest}/config`)} >/dev/null`;
}

/** A psql backslash-command argument in single quotes: '' for a quote, \\ for a backslash. */
export function psqlQuote(v: string): string {
  return `'${v.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** A ~/.pgpass field: ':' and '\' escaped with a backslash. */
export function pgpassField(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
}

/**
 * Stdin of the app-database step: line 1 is the superuser's .pgpass line, the rest a psql script that
 * creates the role and database once and (re)sets the password, with values passed as psql variables
 * so psql quotes them (`:'var'` literal, `:"var"` identifier). The role gets the stack's own SCRAM
 * secret of `appPassword` (scramSecret), which PostgreSQL stores as given.
 */
export function renderAppDbStdin(superuser: string, superuserPassword: string, database: string, appUser: string, appPassword: string): string {
  return [
    `*:*:*:${pgpassField(superuser)}:${pgpassField(superuserPassword)}`,
    `\\set app_user ${psqlQuote(appUser)}`,
    // the role's SCRAM secret, not the password: PgBouncer holds the identical one (components/common/scram.ts)
    `\\set app_password ${psqlQuote(scramSecret(appUser, appPassword) ?? appPassword)}`,
    `\\set app_db ${psqlQuote(database)}`,
    `SELECT format('CREATE ROLE %I LOGIN', :'app_user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \\gexec`,
    `ALTER ROLE :"app_user" WITH LOGIN PASSWORD :'app_password';`,
    `SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \\gexec`,
    `ALTER DATABASE :"app_db" OWNER TO :"app_user";`,
    "",
  ].join("\n");
}

/**
 * Runs the stdin above on this member if it is the read-write leader (its own REST API answers 200 on
 * /primary), through the local socket as the superuser; elsewhere it does nothing. The superuser thus never
 * needs a TCP login; secrets live only in a 0700 temp dir of the postgres user.
 */
export function appDbScript(rest: string, pgPort: number, superuser: string, socketDir: string = SOCKET_DIR): string {
  return [
    `code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 ${shq(`${rest}/primary`)} || true)`,
    `if [ "$code" != 200 ]; then cat >/dev/null; echo "not the leader ($code): nothing to do"; exit 0; fi`,
    "umask 077",
    `tmp=$(mktemp -d)`,
    `trap 'rm -rf "$tmp"' EXIT`,
    `IFS= read -r line`,
    `printf '%s\\n' "$line" > "$tmp/pgpass"`,
    `cat > "$tmp/setup.sql"`,
    `chown -R postgres:postgres "$tmp"`,
    `cd "$tmp"`,
    `runuser -u postgres -- env PGPASSFILE="$tmp/pgpass" PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 -h ${shq(socketDir)} -p ${pgPort} -U ${shq(superuser)} -d postgres -f "$tmp/setup.sql"`,
  ].join("\n");
}
