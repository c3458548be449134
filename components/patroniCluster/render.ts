// Pure renderers: plain values in, file contents and shell scripts out (no Outputs here).
import * as yaml from "js-yaml";
import { HostSpec, shq } from "../common";
import { ResolvedPatroniClusterSettings } from "./args";

/** Where Debian's units read their configuration (patroni.service has ConditionPathExists on this exact path). */
export const PATRONI_CONFIG_PATH = "/etc/patroni/config.yml";
export const ETCD_ENV_PATH = "/etc/default/etcd";

/** Passwords Patroni needs in its config file (plain, already resolved). */
export interface PatroniPasswords {
  readonly superuser: string;
  readonly replication: string;
  readonly rewind: string;
}

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

/** Patroni dynamic configuration: bootstrap.dcs at first creation, PATCH /config afterwards. */
export function dynamicConfig(s: ResolvedPatroniClusterSettings): Record<string, unknown> {
  return {
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
      },
    },
  };
}

/** JSON body for `PATCH /config` (stable key order, so its hash changes only when a value does). */
export function renderDynamicConfigJson(s: ResolvedPatroniClusterSettings): string {
  return JSON.stringify(dynamicConfig(s)) + "\n";
}

/** pg_hba: local peer for postgres, SCRAM over TCP from loopback and the stack subnet only. */
export function pgHba(s: ResolvedPatroniClusterSettings): string[] {
  return [
    "local all postgres peer",
    "local replication postgres peer",
    `host replication ${s.replicationUser} 127.0.0.1/32 scram-sha-256`,
    `host replication ${s.replicationUser} ${s.subnet} scram-sha-256`,
    "host all all 127.0.0.1/32 scram-sha-256",
    `host all all ${s.subnet} scram-sha-256`,
  ];
}

/** /etc/patroni/config.yml for one member, serialised with js-yaml (passwords quoted by the library). */
export function renderPatroniConfig(s: ResolvedPatroniClusterSettings, member: HostSpec, pw: PatroniPasswords): string {
  const config = {
    scope: s.clusterName,
    name: member.name,
    restapi: {
      listen: `${member.address}:${s.restApiPort}`,
      connect_address: `${member.address}:${s.restApiPort}`,
    },
    etcd3: { hosts: s.nodes.map((n) => `${n.address}:${s.etcdClientPort}`) },
    bootstrap: {
      dcs: dynamicConfig(s),
      initdb: [{ encoding: "UTF8" }, { locale: "C.UTF-8" }, "data-checksums"],
      pg_hba: pgHba(s),
    },
    postgresql: {
      // one port after the host list: https://patroni.readthedocs.io/en/latest/yaml_configuration.html#postgresql
      listen: `${[...new Set([member.address, "127.0.0.1"])].join(",")}:${s.pgPort}`,
      connect_address: `${member.address}:${s.pgPort}`,
      data_dir: s.dataDir,
      bin_dir: binDir(s.pgVersion),
      pgpass: "/var/lib/postgresql/.pgpass.patroni",
      authentication: {
        superuser: { username: s.superuser, password: pw.superuser },
        replication: { username: s.replicationUser, password: pw.replication },
        rewind: { username: s.rewindUser, password: pw.rewind },
      },
      parameters: { unix_socket_directories: "/var/run/postgresql" },
      pg_hba: pgHba(s),
    },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
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

/** Restart etcd to read a changed /etc/default/etcd (also replaces an etcd apt started with the packaged defaults). */
export function etcdRestartScript(): string {
  return "systemctl restart --no-block etcd.service";
}

export function etcdHealthProbe(nodes: readonly HostSpec[], clientPort: number): string {
  return `ETCDCTL_API=3 etcdctl --endpoints=${etcdEndpoints(nodes, clientPort)} --command-timeout=5s endpoint health`;
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

const PY_HEALTHY = [
  "import json, sys",
  "m = json.load(sys.stdin).get('members', [])",
  "lead = [x for x in m if x.get('role') in ('leader', 'standby_leader') and x.get('state') == 'running']",
  "rest = [x for x in m if x not in lead]",
  "ok = len(m) == int(sys.argv[1]) and len(lead) == 1 and all(x.get('state') in ('running', 'streaming') and isinstance(x.get('lag'), int) for x in rest)",
  "sys.exit(0 if ok else 1)",
].join("\n");

const PY_LEADER = [
  "import json, sys",
  "m = [x for x in json.load(sys.stdin).get('members', []) if x.get('role') in ('leader', 'standby_leader')]",
  "if not m: sys.exit('no leader in /cluster')",
  "print(json.dumps({'name': m[0]['name'], 'host': m[0].get('host', ''), 'port': m[0].get('port', 0)}))",
].join("\n");

/** Probe: exactly one running leader and every other member running with a known lag (replaying WAL). */
export function clusterHealthyProbe(rest: string, memberCount: number): string {
  return `curl -sf --max-time 5 ${shq(`${rest}/cluster`)} | python3 -c ${shq(PY_HEALTHY)} ${memberCount}`;
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

/** Dynamic settings applied to an existing cluster through the local member's REST API (JSON on stdin). */
export function patchConfigScript(rest: string): string {
  return `curl -sf --max-time 30 -XPATCH -H 'Content-Type: application/json' -d @- ${shq(`${rest}/config`)} >/dev/null`;
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
 * so psql quotes them (`:'var'` literal, `:"var"` identifier).
 */
export function renderAppDbStdin(superuser: string, superuserPassword: string, database: string, appUser: string, appPassword: string): string {
  return [
    `*:*:*:${pgpassField(superuser)}:${pgpassField(superuserPassword)}`,
    `\\set app_user ${psqlQuote(appUser)}`,
    `\\set app_password ${psqlQuote(appPassword)}`,
    `\\set app_db ${psqlQuote(database)}`,
    `SELECT format('CREATE ROLE %I LOGIN', :'app_user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \\gexec`,
    `ALTER ROLE :"app_user" WITH LOGIN PASSWORD :'app_password';`,
    `SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \\gexec`,
    `ALTER DATABASE :"app_db" OWNER TO :"app_user";`,
    "",
  ].join("\n");
}

/** Runs the stdin above against whichever member leads now (found in /cluster), secrets only in a 0600 temp dir. */
export function appDbScript(rest: string, pgPortFallback: number, superuser: string): string {
  return [
    "umask 077",
    `tmp=$(mktemp -d)`,
    `trap 'rm -rf "$tmp"' EXIT`,
    `IFS= read -r line`,
    `printf '%s\\n' "$line" > "$tmp/pgpass"`,
    `cat > "$tmp/setup.sql"`,
    `leader=$(${leaderQueryScript(rest)})`,
    `host=$(printf '%s' "$leader" | python3 -c 'import json, sys; print(json.load(sys.stdin)["host"])')`,
    `port=$(printf '%s' "$leader" | python3 -c 'import json, sys; print(json.load(sys.stdin)["port"] or ${pgPortFallback})')`,
    `PGPASSFILE="$tmp/pgpass" PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U ${shq(superuser)} -d postgres -f "$tmp/setup.sql"`,
  ].join("\n");
}
