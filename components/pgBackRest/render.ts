// Pure renderers for pgBackRest: plain values in, file contents and shell out (no Outputs here).
import { HostSpec } from "../common/host";
import { shq } from "../common/shell";
import { patchConfigScript } from "../patroniCluster/render";
import { ResolvedPgBackRestSettings } from "./args";

/** Debian's pgbackrest reads this when it exists (its own default is the older /etc/pgbackrest.conf). */
export const CONFIG_PATH = "/etc/pgbackrest/pgbackrest.conf";
export const TLS_DIR = "/etc/pgbackrest/tls";
export const TLS = { ca: `${TLS_DIR}/ca.crt`, cert: `${TLS_DIR}/host.crt`, key: `${TLS_DIR}/host.key` } as const;
/** Debian's unit runs `pgbackrest server` as postgres (TLS server mode, pgBackRest ≥ 2.37). */
export const SERVER_UNIT = "pgbackrest.service";
export const TIMER_DIR = "/etc/systemd/system";
export const BACKUP_KINDS = ["full", "diff"] as const;
export type BackupKind = (typeof BACKUP_KINDS)[number];
export const unitName = (stanza: string, kind: BackupKind) => `hastack-pgbackrest-${stanza}-${kind}`;

/** An INI section: keys in the given order. Values are validated names, numbers, paths and addresses, or the passphrase. */
export type IniSection = readonly (readonly [string, string | number | boolean])[];

/**
 * pgBackRest's INI: `key=value`, no quoting at all (the whole rest of the line is the value), so a value with a
 * line break would become a second key. Refused here rather than escaped: pgBackRest has no escape.
 */
export function renderIni(header: string, sections: readonly (readonly [string, IniSection])[]): string {
  const lines = [`# ${header}`];
  for (const [name, entries] of sections) {
    lines.push("", `[${name}]`);
    for (const [k, v] of entries) {
      const text = typeof v === "boolean" ? (v ? "y" : "n") : String(v);
      if (/[\r\n\0]/.test(text) || text !== text.trim()) throw new Error(`render: pgbackrest.conf value of ${k} must be one line without surrounding spaces`);
      lines.push(`${k}=${text}`);
    }
  }
  return lines.join("\n") + "\n";
}

const HEADER = "Managed by hastack (PgBackRest); changes are overwritten on the next deploy.";

/** The TLS server options every host shares: mutual TLS with the stack CA, clients named by certificate CN. */
function tlsServer(self: HostSpec, port: number, clients: readonly string[], stanza: string): IniSection {
  return [
    ["tls-server-address", self.address], ["tls-server-port", port],
    ["tls-server-ca-file", TLS.ca], ["tls-server-cert-file", TLS.cert], ["tls-server-key-file", TLS.key],
    // only these certificate CNs, and only for this stanza: one line per client, `<cn>=<stanza>[,<stanza>]` (the comma
    // separates stanzas, not clients: a lab run found "pg1,pg2=s" admits nobody) https://pgbackrest.org/command.html#command-server
    ...clients.map((cn): [string, string] => ["tls-server-auth", `${cn}=${stanza}`]),
  ];
}

export interface DbHostConfigInput {
  readonly settings: ResolvedPgBackRestSettings;
  readonly self: HostSpec;
  readonly dataDir: string;
  readonly pgPort: number;
  readonly socketDir: string;
}

/**
 * A database host's pgbackrest.conf: archive-push/archive-get go to the repository host over TLS; its own server
 * lets the repository host reach PostgreSQL for backups. No passphrase here: the repository host encrypts.
 */
export function renderDbHostConfig(i: DbHostConfigInput): string {
  const s = i.settings;
  return renderIni(HEADER, [
    ["global", [
      ["repo1-host", s.repoHost.address], ["repo1-host-type", "tls"], ["repo1-host-port", s.tlsPort],
      ["repo1-host-ca-file", TLS.ca], ["repo1-host-cert-file", TLS.cert], ["repo1-host-key-file", TLS.key],
      ...tlsServer(i.self, s.tlsPort, [s.repoHost.name], s.stanza),
      ["archive-timeout", s.archiveTimeoutSeconds],
      ["log-level-console", "warn"], ["log-level-file", "info"],
    ]],
    [s.stanza, [["pg1-path", i.dataDir], ["pg1-port", i.pgPort], ["pg1-socket-path", i.socketDir]]],
  ]);
}

export interface RepoHostConfigInput {
  readonly settings: ResolvedPgBackRestSettings;
  readonly dbHosts: readonly HostSpec[];
  readonly dataDir: string;
  readonly pgPort: number;
  readonly socketDir: string;
  readonly cipherPass: string;
}

/** The repository host's pgbackrest.conf (secret: it holds the passphrase), 0640 postgres. */
export function renderRepoHostConfig(i: RepoHostConfigInput): string {
  const s = i.settings;
  const pgs: [string, string | number][] = i.dbHosts.flatMap((h, k): [string, string | number][] => [
    [`pg${k + 1}-host`, h.address], [`pg${k + 1}-host-type`, "tls"], [`pg${k + 1}-host-port`, s.tlsPort],
    [`pg${k + 1}-host-ca-file`, TLS.ca], [`pg${k + 1}-host-cert-file`, TLS.cert], [`pg${k + 1}-host-key-file`, TLS.key],
    [`pg${k + 1}-path`, i.dataDir], [`pg${k + 1}-port`, i.pgPort], [`pg${k + 1}-socket-path`, i.socketDir],
  ]);
  return renderIni(HEADER, [
    ["global", [
      ["repo1-path", s.repoPath],
      ["repo1-cipher-type", "aes-256-cbc"], ["repo1-cipher-pass", i.cipherPass],
      ["repo1-retention-full-type", "count"], ["repo1-retention-full", s.retentionFull], ["repo1-retention-diff", s.retentionDiff],
      // a backup starts with an immediate checkpoint instead of waiting for the next one
      ["start-fast", true],
      ["backup-standby", s.backupStandby],
      ["archive-timeout", s.archiveTimeoutSeconds],
      ...tlsServer(s.repoHost, s.tlsPort, i.dbHosts.map((h) => h.name), s.stanza),
      ["log-level-console", "warn"], ["log-level-file", "info"],
    ]],
    [s.stanza, pgs],
  ]);
}

/** The PostgreSQL settings that ship WAL to the repository and fetch it back (set through Patroni's dynamic config). */
export interface PatroniArchive {
  readonly archiveCommand: string;
  readonly restoreCommand: string;
}

export function patroniArchive(stanza: string): PatroniArchive {
  return { archiveCommand: `pgbackrest --stanza=${stanza} archive-push %p`, restoreCommand: `pgbackrest --stanza=${stanza} archive-get %f "%p"` };
}

/** One backup kind as a oneshot service and its timer; `Persistent` runs a backup missed while the host was down. */
export function renderBackupUnits(stanza: string, kind: BackupKind, schedule: string): { service: string; timer: string } {
  const service = [
    "# Managed by hastack (PgBackRest).",
    "[Unit]",
    `Description=pgBackRest ${kind} backup of stanza ${stanza}`,
    "After=network-online.target",
    "",
    "[Service]",
    "Type=oneshot",
    "User=postgres",
    "Group=postgres",
    `ExecStart=${BACKUP_SCRIPT_PATH} ${stanza} ${kind}`,
    "",
  ].join("\n");
  const timer = [
    "# Managed by hastack (PgBackRest).",
    "[Unit]",
    `Description=pgBackRest ${kind} backups of stanza ${stanza}`,
    "",
    "[Timer]",
    `OnCalendar=${schedule}`,
    "Persistent=true",
    "RandomizedDelaySec=60",
    "",
    "[Install]",
    "WantedBy=timers.target",
    "",
  ].join("\n");
  return { service, timer };
}

/**
 * Create the stanza once, by `info`'s stanza status (https://pgbackrest.org/command.html#command-info): 1 "missing
 * stanza path" is a stanza never created; 0 ok, 2 no valid backups and 6 a backup running mean it exists and is
 * left alone; anything else (a different passphrase, a database mismatch) fails the step, creating nothing. We
 * never run stanza-upgrade or stanza-delete. Runs on the repository host.
 */
export function stanzaCreateScript(stanza: string): string {
  return [
    `st=${shq(stanza)}`,
    `out=$(runuser -u postgres -- pgbackrest --stanza="$st" --output=json info) || { echo "pgbackrest info failed for stanza $st" >&2; exit 1; }`,
    // the last status in the answer is the stanza's own (each repository has one before it)
    `code=$(printf '%s' "$out" | grep -o '"status":{"code":[0-9]*' | tail -n 1 | grep -o '[0-9]*$')`,
    `case "$code" in`,
    `  0|2|6) echo "stanza $st exists"; exit 0;;`,
    `  1) ;;`,
    `  *) echo "refused: stanza $st answers status $code, not a stanza to create: $(printf '%s' "$out" | grep -o '"message":"[^"]*"' | tail -n 1)" >&2; exit 1;;`,
    `esac`,
    `runuser -u postgres -- pgbackrest --stanza="$st" --log-level-console=info stanza-create`,
  ].join("\n");
}

/** The health gate: archiving works end to end (a WAL switch on the leader reaches the repository) and the repository is readable. */
export function checkScript(stanza: string): string {
  return `runuser -u postgres -- pgbackrest --stanza=${shq(stanza)} --log-level-console=info check`;
}

/** Where the backup wrapper lives on the repository host (ours: /usr/local/lib/hastack). */
export const BACKUP_SCRIPT_PATH = "/usr/local/lib/hastack/pgbackrest-backup";

/**
 * The backup wrapper the timers run (as postgres): `backup-standby` in pgBackRest 2.45 is y or n, and with y a
 * backup fails when no replica streams ("unable to find standby cluster"). Then it backs up from the leader, so a
 * cluster down to one member still gets its backups; it says so in the journal.
 */
export function renderBackupScript(): string {
  return [
    "#!/bin/sh",
    "# Managed by hastack (PgBackRest). Usage: pgbackrest-backup STANZA full|diff",
    "set -u",
    'pgbackrest --stanza="$1" --type="$2" --log-level-console=info backup && exit 0',
    "rc=$?",
    '[ "$rc" = 56 ] || exit "$rc"',
    'echo "pgbackrest-backup: no streaming replica to back up from (error 56); backing up from the leader" >&2',
    'exec pgbackrest --stanza="$1" --type="$2" --no-backup-standby --log-level-console=info backup',
    "",
  ].join("\n");
}

/** The first full backup, only when the repository holds none yet (later ones come from the timers). */
export function firstBackupScript(stanza: string): string {
  return [
    `st=${shq(stanza)}`,
    `out=$(runuser -u postgres -- pgbackrest --stanza="$st" --output=json info) || { echo "pgbackrest info failed for stanza $st" >&2; exit 1; }`,
    `case "$out" in *'"type":"full"'*) echo "a full backup exists"; exit 0;; esac`,
    `runuser -u postgres -- ${BACKUP_SCRIPT_PATH} "$st" full`,
  ].join("\n");
}

/** The repository directory, owned by postgres (Debian's unit runs the server as postgres), never emptied. */
export function repoDirScript(repoPath: string): string {
  return `install -d -o postgres -g postgres -m 0750 ${shq(repoPath)} /var/log/pgbackrest /var/spool/pgbackrest`;
}

/** Where a restore lands: `latest` (the end of the archive) or a time PostgreSQL reads ("2026-11-29 04:10:00+00"). */
export type RestoreTarget = "latest" | { readonly time: string };

const TIME_TARGET = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}(:?\d{2})?|Z)$/;
export function isRestoreTime(s: string): boolean {
  return TIME_TARGET.test(s);
}

/**
 * Point-in-time restore into `dataDir`, which must be empty or absent: this never restores over a cluster
 * (`--delta`/`--force` are not used, and a non-empty directory is refused before pgBackRest runs). The restored
 * server promotes at the target. Runs as root on the new host; pgbackrest runs as postgres.
 */
export function restoreScript(stanza: string, dataDir: string, to: RestoreTarget): string {
  if (to !== "latest" && !isRestoreTime(to.time)) throw new Error(`render: restore time ${JSON.stringify(to.time)} is not YYYY-MM-DD HH:MM:SS[.ffffff]+TZ`);
  const target = to === "latest" ? ["--type=default"] : ["--type=time", `--target=${to.time}`, "--target-action=promote"];
  return [
    `d=${shq(dataDir)}`,
    `if [ -e "$d" ] && [ -n "$(ls -A "$d" 2>/dev/null)" ]; then echo "refused: $d is not empty; a restore goes into a new, empty data directory" >&2; exit 1; fi`,
    `install -d -o postgres -g postgres -m 0700 "$d"`,
    `runuser -u postgres -- pgbackrest --stanza=${shq(stanza)} --pg1-path="$d" ${target.map(shq).join(" ")} --log-level-console=info restore`,
  ].join("\n");
}

/** The transient systemd unit a restored PostgreSQL runs in (`systemctl stop` ends it; its data directory stays). */
export const restoredUnitName = (port: number) => `hastack-restore-${port}`;

export interface RestoredServerInput {
  readonly dataDir: string;
  readonly port: number;
  readonly socketDir: string;
  /** Seconds to wait for the end of recovery (the promotion at the target). */
  readonly timeoutSeconds: number;
}

/**
 * Start the restored data directory as a PostgreSQL of its own, beside the running cluster: its own port, the
 * socket only (no TCP listener), archiving off (a promoted copy must never push a new timeline into the cluster's
 * archive), its own pg_hba/pg_ident (Patroni's config names the original data directory's), no primary_conninfo.
 * Runs as a transient unit; waits until recovery has ended and the server is read-write. Runs as root.
 */
export function startRestoredScript(i: RestoredServerInput): string {
  const unit = restoredUnitName(i.port);
  const opts = [`port=${i.port}`, "listen_addresses=", `unix_socket_directories=${i.socketDir}`, "archive_mode=off", "archive_command=",
    "hba_file=$d/pg_hba.conf", "ident_file=$d/pg_ident.conf", "cluster_name=hastack-restore", "primary_conninfo=", "primary_slot_name="];
  return [
    `d=${shq(i.dataDir)}; port=${i.port}; unit=${shq(unit)}`,
    `v=$(cat "$d/PG_VERSION") || { echo "no PG_VERSION in $d: the restore did not complete" >&2; exit 1; }`,
    `systemd-run --quiet --unit="$unit" --uid=postgres --gid=postgres --property=Type=exec "/usr/lib/postgresql/$v/bin/postgres" -D "$d" ${opts.map((o) => `-c "${o}"`).join(" ")}`,
    `end=$(( $(date +%s) + ${i.timeoutSeconds} ))`,
    `while :; do`,
    `  r=$(runuser -u postgres -- psql -X -qAt -h ${shq(i.socketDir)} -p "$port" -d postgres -c 'select pg_is_in_recovery()' 2>/dev/null || true)`,
    `  [ "$r" = f ] && break`,
    `  systemctl is-active --quiet "$unit" || { echo "the restored PostgreSQL stopped during recovery (journalctl -u $unit):" >&2; journalctl -u "$unit" -n 20 --no-pager >&2; exit 1; }`,
    `  [ "$(date +%s)" -lt "$end" ] || { echo "recovery did not end within ${i.timeoutSeconds} s; the server runs on as $unit" >&2; exit 1; }`,
    `  sleep 1`,
    `done`,
    `echo "restored PostgreSQL read-write on port $port (socket ${i.socketDir}), unit $unit"`,
  ].join("\n");
}

/**
 * Before a restore: refuse a port something already listens on, and a host without the stack's pgBackRest
 * configuration (the restore reaches the repository through it). Runs as root on the restore host.
 */
export function restorePreflightScript(port: number): string {
  return [
    `[ -r ${CONFIG_PATH} ] || { echo "refused: ${CONFIG_PATH} is missing: this host is not a database host of a stack with hastack:backup" >&2; exit 1; }`,
    `if ss -Hltn "sport = :${port}" | grep -q .; then echo "refused: port ${port} is in use on this host; choose another with --port" >&2; exit 1; fi`,
    `if systemctl is-active --quiet ${shq(restoredUnitName(port))}; then echo "refused: ${restoredUnitName(port)} is running already" >&2; exit 1; fi`,
  ].join("\n");
}

/**
 * When hastack:backup leaves the config: archive_command becomes /bin/true through the local member's REST API
 * (credentials from its 0600 curl file), so WAL no longer piles up for an archive that is gone. Fails loudly if
 * Patroni refuses: a silent miss would fill the disk.
 */
export function archiveReleaseScript(rest: string, authFile: string): string {
  return [
    `${patchConfigScript(rest, authFile)} <<'HASTACK_JSON'`,
    JSON.stringify({ postgresql: { parameters: { archive_command: "/bin/true" } } }),
    "HASTACK_JSON",
    "echo 'hastack:backup removed: archive_command is /bin/true (WAL is no longer archived)'",
  ].join("\n");
}
