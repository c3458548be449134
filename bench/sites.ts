// `npm run bench:sites [-- RUNS]`: the two-site lab (lab/sites.ts) from nothing, then RUNS planned switchovers
// each way (a client writing through the old primary site's VIP, one kept connection) and RUNS unplanned losses
// of the leading site (every VM crashed, a forced failover, the lost site back as a standby with its own
// `pulumi up`). Writes bench/results-sites.{json,md}. Needs root; removes the sites lab at the end.
// The switchovers measure the data path (`npm run switchover` before its `pulumi up`s); that the stacks then
// converge with nothing left to change is proven by tests/e2e/sites.test.ts.
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { changes } from "../engine/automation";
import { openSiteStack, recordedRole, sitesDown, sitesUp, SITES_ENV, siteOf } from "../lab/sites";
import { bootSite, failoverDrill, switchoverDrill } from "./sitesDrills";
import { shq } from "../components/common";
import { median as exactMedian } from "./stats";
/** Medians to one decimal, as this benchmark reports them. */
const median = (xs: number[]) => Math.round(exactMedian(xs) * 10) / 10;

const run = promisify(execFile);
const log = (l: string) => console.log(`bench: ${l}`);

async function up(site: string): Promise<void> {
  const t0 = Date.now();
  const r = await (await openSiteStack(site)).up();
  if (r.summary.result !== "succeeded") throw new Error(`pulumi up ${site}: ${r.summary.result}`);
  log(`up ${site} in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(changes(r.summary.resourceChanges))}`);
}

/** Seconds until the leading site's slot for `site` is active again (it streams). */
async function untilStreaming(leaderSite: string, site: string, t0: number): Promise<number> {
  const q = `select active from pg_replication_slots where slot_name = 'standby_${site}'`;
  for (;;) {
    for (const v of siteOf(leaderSite).vms.filter((x) => x.role === "postgres")) {
      try {
        const { stdout } = await run("bash", [path.join(__dirname, "..", "lab", "ssh.sh"), v.name, `cd / && runuser -u postgres -- psql -X -qAt -h /var/run/postgresql -d postgres -c ${shq(q)}`], { env: SITES_ENV, timeout: 10000 });
        if (stdout.trim() === "t") return (Date.now() - t0) / 1000;
      } catch { /* not yet */ }
    }
    if (Date.now() - t0 > 600000) throw new Error(`${site} does not stream from ${leaderSite} after 600 s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** bench/results-sites.{json,md}; `date` defaults to now (bench/sites-from-log.ts passes the run's own). */
export interface BenchOptions { readonly poolMode?: string; readonly switchoversOnly?: boolean }

/** `npm run bench:sites -- N [--pool-mode session|transaction] [--switchovers-only]` */
export function parseArgs(argv: readonly string[]): { runs: number } & BenchOptions {
  const i = argv.indexOf("--pool-mode");
  const poolMode = i >= 0 ? argv[i + 1] : undefined;
  if (i >= 0 && !["session", "transaction"].includes(poolMode ?? "")) throw new Error(`--pool-mode ${poolMode ?? ""}: expected session or transaction`);
  const n = argv.find((a, k) => /^\d+$/.test(a) && argv[k - 1] !== "--pool-mode");
  return { runs: Number(n ?? 3), poolMode, switchoversOnly: argv.includes("--switchovers-only") };
}

export function write(runs: number, switches: Record<string, unknown>[], failovers: Record<string, unknown>[], error?: string, at?: string, o: BenchOptions = {}): void {
  const num = (rows: Record<string, unknown>[], k: string) => rows.map((r) => Number(r[k]));
  const summary = {
    switchoverToolPauseSeconds: median(num(switches, "toolPauseSeconds")),
    switchoverClientGapSeconds: median(num(switches, "clientGapSeconds")),
    switchoverLostPerRun: num(switches, "lost"),
    switchoverClientErrorsPerRun: num(switches, "clientErrors"),
    switchoverStreamsAgainSeconds: median(num(switches, "streamsAgainSeconds")),
    failoverDecisionToWritesSeconds: median(num(failovers, "decisionToWritesSeconds")),
    failoverLostWritesPerRun: num(failovers, "lostWrites"),
    returnUntilStreamingSeconds: median(num(failovers, "returnUntilStreamingSeconds")),
  };
  const command = `npm run bench:sites -- ${runs}${o.poolMode ? ` --pool-mode ${o.poolMode}` : ""}${o.switchoversOnly ? " --switchovers-only" : ""}`;
  // a run with another pool mode gets its own files: the session-pooling figures stay the reference
  const base = o.poolMode && o.poolMode !== "session" ? `results-sites-${o.poolMode}` : "results-sites";
  const date = at ?? new Date().toISOString();
  fs.writeFileSync(path.join(__dirname, `${base}.json`), JSON.stringify({ command, date, ...(error ? { error } : {}), summary, switches, failovers }, null, 2));
  const md = [
    "# Two sites: planned switchover and unplanned loss of the leading site", "",
    `Made by \`${command}\` on ${date} (2 cores, the routed two-site lab: 2 × (3 PostgreSQL + 2 proxies), Patroni profile "aggressive", synchronous_mode off, PgBouncer pool_mode ${o.poolMode ?? "session"}${o.switchoversOnly ? "; planned switchovers only" : ""}).`, "",
    ...(error ? [`**The run stopped early** (${switches.length} switchovers, ${failovers.length} failovers done): ${error}`, ""] : []),
    "| figure | median | per run | target |", "| --- | --- | --- | --- |",
    `| planned switchover: writes paused (PgBouncer pause → resume, the tool's clock) | ${summary.switchoverToolPauseSeconds} s | ${num(switches, "toolPauseSeconds").map((x) => x.toFixed(1)).join(", ")} | ≤ 30 s (by hand: 10–15 min) |`,
    `| planned switchover: longest gap between a client's acknowledged writes (one kept connection) | ${summary.switchoverClientGapSeconds} s | ${num(switches, "clientGapSeconds").join(", ")} | ≤ 30 s |`,
    `| planned switchover: acknowledged writes lost | — | ${summary.switchoverLostPerRun.join(", ")} | 0 |`,
    `| planned switchover: failed writes the client saw | — | ${summary.switchoverClientErrorsPerRun.join(", ")} | 0 (clients wait) |`,
    `| planned switchover: old site streams again after the resume | ${summary.switchoverStreamsAgainSeconds} s | ${num(switches, "streamsAgainSeconds").map((x) => x.toFixed(1)).join(", ")} | |`,
    ...(o.switchoversOnly ? [] : [
      `| unplanned loss: from \`failover --force\` to the first accepted write | ${summary.failoverDecisionToWritesSeconds} s | ${num(failovers, "decisionToWritesSeconds").join(", ")} | |`,
      `| unplanned loss: acknowledged writes lost (async replication) | — | ${summary.failoverLostWritesPerRun.join(", ")} | reported |`,
      `| unplanned loss: lost site booted → its \`pulumi up\` → streaming as a standby | ${Number(summary.returnUntilStreamingSeconds).toFixed(1)} s | ${num(failovers, "returnUntilStreamingSeconds").map((x) => x.toFixed(1)).join(", ")} | |`,
    ]),
    "",
    "Switchovers alternate dc1→dc2 (client on dc1's VIP) and dc2→dc1 (client on dc2's VIP), RUNS each way. The client writes every 100 ms on one kept " +
    "connection with a 30 s timeout (as an application's pool). Unplanned loss: every VM of the leading site is killed (kill -9 of its init), a client of the other " +
    "site writes with a new connection per attempt, `failover --force` promotes, then the lost site boots and its own `pulumi up` turns it into a standby " +
    "(pg_rewind where its timeline went further). Lost writes: acknowledged ids missing afterwards.",
    "",
  ].join("\n");
  fs.writeFileSync(path.join(__dirname, `${base}.md`), md);
  console.log(md);
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const runs = o.runs;
  if (o.poolMode) process.env.HASTACK_SITES_POOL_MODE = o.poolMode;
  let switches: Record<string, unknown>[] = [], failovers: Record<string, unknown>[] = [];
  sitesUp();
  try {
    await openSiteStack("dc1"); await openSiteStack("dc2");
    // dc1 twice: its first up runs before dc2 exists
    await up("dc1"); await up("dc2"); await up("dc1");
    switches = [];
    for (let i = 1; i <= runs; i++) {
      for (const [to, client] of [["dc2", "dc1"], ["dc1", "dc2"]]) {
        const d = await switchoverDrill(to, client, log);
        const row = { run: i, to, clientSite: client, toolPauseSeconds: d.report.writePauseSeconds, clientGapSeconds: d.clientGapSeconds, acked: d.acked, lost: d.lost,
          clientErrors: d.errors, streamsAgainSeconds: d.report.streamsAgainSeconds, phases: d.report.phases };
        log(`switchover ${JSON.stringify(row)}`);
        switches.push(row);
      }
    }
    failovers = [];
    for (let i = 1; i <= (o.switchoversOnly ? 0 : runs); i++) {
      const lost = recordedRole().primarySite ?? "dc1";
      const to = lost === "dc1" ? "dc2" : "dc1";
      const d = await failoverDrill(lost, to, log);
      await up(to);
      const t0 = Date.now();
      await bootSite(lost);
      await up(lost);
      const returnSeconds = await untilStreaming(to, lost, t0);
      const row = { run: i, lost, to, decisionToWritesSeconds: d.decisionToWritesSeconds, acked: d.acked, lostWrites: d.lost,
        promotedAt: d.report.promotedAt, returnUntilStreamingSeconds: returnSeconds, phases: d.report.phases };
      log(`failover ${JSON.stringify(row)}`);
      failovers.push(row);
    }
    write(runs, switches, failovers, undefined, undefined, o);
  } catch (e) {
    // what was measured stays, with the error that stopped the run; the lab stays up for a look
    write(runs, switches, failovers, e instanceof Error ? e.message.split("\n").slice(0, 3).join(" / ") : String(e), undefined, o);
    process.env.HASTACK_KEEP_LAB = "1";
    throw e;
  } finally {
    if (!process.env.HASTACK_KEEP_LAB) sitesDown();
  }
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
