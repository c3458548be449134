import { HostSpec } from "../common/host";
import { checkRules, invalid, isHostName, isIPv4, isPort, normalizePath, pathInside, FOREIGN_DIRS, SYSTEM_DIRS, VOLATILE_DIRS } from "../common/validate";

/**
 * Stack config `hastack:backup`: pgBackRest with a dedicated repository host. Absent (or `{}`) means no
 * backups at all, and the database hosts' configuration stays exactly as without this section.
 */
export interface PgBackRestSettings {
  /** The repository host: its own VM, in this stack's subnet or another site's (reached by routing). Required. */
  readonly repoHost: { readonly name: string; readonly address: string };
  /** The stanza name (the backup set of one cluster). @default the cluster name (`hastack:postgres.clusterName`) */
  readonly stanza?: string;
  /** Where the repository lives on the repository host. @default "/var/lib/pgbackrest" (the Debian package's) */
  readonly repoPath?: string;
  /** TCP port of every `pgbackrest server` (TLS, mutual certificates from the stack CA). @default 8432 */
  readonly tlsPort?: number;
  /** systemd OnCalendar expression of the full backups. @default "Sun *-*-* 01:00:00" */
  readonly fullSchedule?: string;
  /** systemd OnCalendar expression of the differential backups. @default "Mon..Sat *-*-* 01:00:00" */
  readonly diffSchedule?: string;
  /** Full backups kept (`repo1-retention-full`); older ones and the WAL they need are expired. @default 2 */
  readonly retentionFull?: number;
  /** Differential backups kept (`repo1-retention-diff`). @default 6 */
  readonly retentionDiff?: number;
  /** Take backups from a replica when one is streaming (`backup-standby`), so the leader only streams WAL. @default true */
  readonly backupStandby?: boolean;
  /** Seconds a WAL segment may wait for the archive before `pgbackrest check` fails (`archive-timeout`). @default 60 */
  readonly archiveTimeoutSeconds?: number;
}

export const PgBackRestDefaults = {
  repoPath: "/var/lib/pgbackrest",
  tlsPort: 8432,
  fullSchedule: "Sun *-*-* 01:00:00",
  diffSchedule: "Mon..Sat *-*-* 01:00:00",
  retentionFull: 2,
  retentionDiff: 6,
  backupStandby: true,
  archiveTimeoutSeconds: 60,
} as const;

export interface ResolvedPgBackRestSettings {
  readonly repoHost: HostSpec;
  readonly stanza: string;
  readonly repoPath: string;
  readonly tlsPort: number;
  readonly fullSchedule: string;
  readonly diffSchedule: string;
  readonly retentionFull: number;
  readonly retentionDiff: number;
  readonly backupStandby: boolean;
  readonly archiveTimeoutSeconds: number;
}

/** What the database layer tells the resolver: the stanza default, and the hosts the repository may not share. */
export interface BackupContext {
  readonly clusterName: string;
  readonly dbHosts: readonly HostSpec[];
  /** Ports already taken on the database hosts (PostgreSQL, REST API, etcd), by setting. */
  readonly dbPorts: readonly { name: string; port: number }[];
}

const KEY = "hastack:backup";
const KNOWN = new Set(["repoHost", ...Object.keys(PgBackRestDefaults), "stanza"]);
export const RETENTION_MAX = 99;

const DAY = "(Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const DAYS = `${DAY}((\\.\\.|,)${DAY})*`;
const NUM = "(\\*|\\d{1,4}(\\.\\.\\d{1,4})?(/\\d{1,3})?)(,(\\d{1,4}(\\.\\.\\d{1,4})?(/\\d{1,3})?))*";
const DATE = `${NUM}-${NUM}-${NUM}`;
const TIME = `${NUM}:${NUM}(:${NUM})?`;
/**
 * The subset of systemd.time(7) calendar expressions accepted here: the shorthands, or `[weekdays] [date] time`
 * with numbers, `*`, ranges `a..b`, lists and `/step`. Everything it accepts `systemd-analyze calendar` accepts
 * too (tests/unit/pgBackRest.args.test.ts runs both on a table when systemd-analyze is there).
 */
const CALENDAR = new RegExp(`^((minutely|hourly|daily|weekly|monthly|yearly|quarterly|semiannually)|(${DAYS} )?(${DATE} )?${TIME})$`);
const STANZA = /^[a-z][a-z0-9_-]{0,62}$/;

export function isCalendarExpression(s: unknown): s is string {
  if (typeof s !== "string" || !CALENDAR.test(s)) return false;
  // numeric fields within calendar bounds: hours < 24, minutes and seconds < 60 (systemd refuses 25:00)
  const time = s.split(" ").pop()!;
  if (!/:/.test(time)) return true;
  const [h, m, sec] = time.split(":");
  const within = (field: string | undefined, max: number) => field === undefined || (field.match(/\d+/g) ?? []).every((n) => Number(n) <= max);
  return within(h, 23) && within(m, 59) && within(sec, 59);
}

/** Apply defaults and validate `hastack:backup`; undefined when absent or `{}` (backups off). Throws ConfigError. */
export function resolvePgBackRestSettings(raw: unknown, ctx: BackupContext): ResolvedPgBackRestSettings | undefined {
  if (raw === undefined || (typeof raw === "object" && raw !== null && !Array.isArray(raw) && Object.keys(raw).length === 0)) return undefined;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    invalid(KEY, raw, "an object such as {\"repoHost\": {\"name\": \"repo1\", \"address\": \"10.0.1.60\"}}");
  }
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!KNOWN.has(k)) invalid(`${KEY}.${k}`, r[k], `no such key; known keys are ${[...KNOWN].join(", ")}`);
  }
  const d = PgBackRestDefaults;
  const host = r.repoHost as Record<string, unknown> | undefined;
  const s = {
    stanza: r.stanza ?? ctx.clusterName, repoPath: r.repoPath ?? d.repoPath, tlsPort: r.tlsPort ?? d.tlsPort,
    fullSchedule: r.fullSchedule ?? d.fullSchedule, diffSchedule: r.diffSchedule ?? d.diffSchedule,
    retentionFull: r.retentionFull ?? d.retentionFull, retentionDiff: r.retentionDiff ?? d.retentionDiff,
    backupStandby: r.backupStandby ?? d.backupStandby, archiveTimeoutSeconds: r.archiveTimeoutSeconds ?? d.archiveTimeoutSeconds,
  };
  const count = (v: unknown, lo: number, hi: number) => typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi;
  const repoPath = typeof s.repoPath === "string" ? normalizePath(s.repoPath) : "";
  checkRules([
    { field: `${KEY}.repoHost`, given: host, ok: typeof host === "object" && host !== null && !Array.isArray(host), accepted: "a {name, address} object: the repository host" },
    { field: `${KEY}.repoHost.name`, given: host?.name, ok: () => isHostName(host!.name), accepted: "a lower-case name of letters, digits and '-', starting with a letter" },
    { field: `${KEY}.repoHost.address`, given: host?.address, ok: () => isIPv4(host!.address), accepted: "an IPv4 address such as 192.168.1.60" },
    // the repository must outlive the database hosts: on one of them it would die with it
    { field: `${KEY}.repoHost`, given: host, ok: () => !ctx.dbHosts.some((h) => h.name === host!.name || h.address === host!.address),
      accepted: () => `a host of its own, not one of the database hosts (${ctx.dbHosts.map((h) => `${h.name} ${h.address}`).join(", ")})` },
    { field: `${KEY}.stanza`, given: s.stanza, ok: typeof s.stanza === "string" && STANZA.test(s.stanza), accepted: "a stanza name of lower-case letters, digits, '-' and '_', starting with a letter" },
    { field: `${KEY}.repoPath`, given: s.repoPath, ok: typeof s.repoPath === "string" && s.repoPath.startsWith("/") && !/[\s'"\\$`]/.test(s.repoPath),
      accepted: "an absolute path without spaces, quotes, '$', '`' or backslashes" },
    { field: `${KEY}.repoPath`, given: s.repoPath, ok: () => repoPath === "/var/lib/pgbackrest" || pathInside(repoPath, "/var/lib/pgbackrest")
      || (![...SYSTEM_DIRS].includes(repoPath as never) && !FOREIGN_DIRS.some((f) => pathInside(repoPath, f) || pathInside(f, repoPath))
        && !VOLATILE_DIRS.some((v) => pathInside(repoPath, v))),
      accepted: "a directory of its own (not a system directory, not inside another daemon's or a volatile one such as /tmp)" },
    { field: `${KEY}.tlsPort`, given: s.tlsPort, ok: isPort(s.tlsPort), accepted: "a TCP port 1–65535" },
    { field: `${KEY}.tlsPort`, given: s.tlsPort, ok: () => !ctx.dbPorts.some((p) => p.port === s.tlsPort),
      accepted: () => `a port the database hosts do not use already (${ctx.dbPorts.map((p) => `${p.name} ${p.port}`).join(", ")})` },
    ...(["fullSchedule", "diffSchedule"] as const).map((k) => ({ field: `${KEY}.${k}`, given: s[k], ok: isCalendarExpression(s[k]),
      accepted: "a systemd OnCalendar expression such as \"Sun *-*-* 01:00:00\", \"Mon..Sat *-*-* 01:00\" or \"daily\" (systemd.time(7); try it with `systemd-analyze calendar`)" })),
    { field: `${KEY}.retentionFull`, given: s.retentionFull, ok: count(s.retentionFull, 1, RETENTION_MAX), accepted: `a whole number of full backups from 1 to ${RETENTION_MAX}` },
    { field: `${KEY}.retentionDiff`, given: s.retentionDiff, ok: count(s.retentionDiff, 1, RETENTION_MAX), accepted: `a whole number of differential backups from 1 to ${RETENTION_MAX}` },
    { field: `${KEY}.backupStandby`, given: s.backupStandby, ok: typeof s.backupStandby === "boolean", accepted: "true or false" },
    { field: `${KEY}.archiveTimeoutSeconds`, given: s.archiveTimeoutSeconds, ok: count(s.archiveTimeoutSeconds, 5, 3600), accepted: "a whole number of seconds from 5 to 3600" },
  ]);
  return {
    repoHost: { name: host!.name as string, address: host!.address as string }, stanza: s.stanza as string, repoPath,
    tlsPort: s.tlsPort as number, fullSchedule: s.fullSchedule as string, diffSchedule: s.diffSchedule as string,
    retentionFull: s.retentionFull as number, retentionDiff: s.retentionDiff as number, backupStandby: s.backupStandby as boolean,
    archiveTimeoutSeconds: s.archiveTimeoutSeconds as number,
  };
}
