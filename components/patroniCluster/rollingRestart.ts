// Rolling restart of PostgreSQL after a dynamic setting that needs one changed (pure rendering): the
// shipped script `pg-rolling-restart.py`, the command that runs it, and the trigger `pulumi preview` shows.
import * as fs from "fs";
import * as path from "path";
import { shq } from "../common";
import { ResolvedPatroniClusterSettings } from "./args";
import { REST_AUTH_PATH, dynamicConfig } from "./render";

/**
 * PostgreSQL parameters of context `postmaster`: a new value reaches a running server only through a
 * restart. https://www.postgresql.org/docs/15/view-pg-settings.html (context)
 */
export const RESTART_PARAMETERS: readonly string[] = [
  "max_connections", "shared_buffers", "max_worker_processes", "max_prepared_transactions", "max_locks_per_transaction",
  "max_pred_locks_per_transaction", "max_wal_senders", "max_replication_slots", "wal_level", "wal_log_hints", "hot_standby",
  "track_commit_timestamp", "shared_preload_libraries", "wal_buffers", "huge_pages", "max_files_per_process", "archive_mode",
];

/** The restart-only parameters of the dynamic configuration, by name (sorted, so the trigger is stable). */
export function restartParameters(s: ResolvedPatroniClusterSettings): [string, string][] {
  const pg = dynamicConfig(s).postgresql as { parameters: Record<string, string | number> };
  return Object.entries(pg.parameters).filter(([k]) => RESTART_PARAMETERS.includes(k)).map(([k, v]): [string, string] => [k, String(v)])
    .sort(([a], [b]) => a.localeCompare(b));
}

/**
 * The rolling-restart step's trigger: readable on purpose, so that `pulumi preview --diff` shows the step's
 * replacement as e.g. `max_connections=200 … => max_connections=300 …` under "rolling restart of PostgreSQL".
 */
export function rollingRestartTrigger(s: ResolvedPatroniClusterSettings): string {
  return `rolling restart of PostgreSQL (replicas one at a time, switchover, old leader) wherever a member runs other values than: ${
    restartParameters(s).map(([k, v]) => `${k}=${v}`).join(", ")}`;
}

export interface RollingRestartParams {
  /** Every member's REST API URL. */
  readonly restUrls: readonly string[];
  /** Patroni's loop_wait: members load a PATCHed config within a loop or two. */
  readonly loopWaitSeconds: number;
  /** Limit for each restart and for the switchover. @default 300 */
  readonly waitSeconds?: number;
  /** curl config with the REST credentials. @default REST_AUTH_PATH */
  readonly authFile?: string;
}

const HEREDOC_END = "HASTACK_ROLLING_RESTART_PY";

/** The script itself, as shipped in this folder. */
export function rollingRestartPython(): string {
  return fs.readFileSync(path.join(__dirname, "pg-rolling-restart.py"), "utf8");
}

/**
 * The command run on one member: the script travels in a quoted here-document (no expansion), so it stays
 * readable in a diff and needs no file on the host; its arguments are URLs, numbers and a path, all quoted.
 */
export function rollingRestartCommand(p: RollingRestartParams): string {
  const py = rollingRestartPython();
  if (py.split("\n").includes(HEREDOC_END)) throw new Error("render: the rolling-restart script contains its here-document delimiter");
  const args = ["--auth", p.authFile ?? REST_AUTH_PATH, "--settle-s", String(2 * p.loopWaitSeconds + 5), "--wait-s", String(p.waitSeconds ?? 300), ...p.restUrls];
  return `python3 - ${args.map(shq).join(" ")} <<'${HEREDOC_END}'\n${py}${py.endsWith("\n") ? "" : "\n"}${HEREDOC_END}`;
}
