// `npm run bench:scale [-- --runs N]` and `npm run bench:redis-day2 [-- --runs N]`: a lab test file's day-2 drills, N
// times on fresh VMs, with medians. The file records each drill's figures (a writer's acknowledged, failed and lost
// writes, its longest pause, the up's duration) when HASTACK_DRILL_RECORD names a file; a run whose test failed still
// counts the drills it recorded and is reported as failed. Needs root (nspawn VMs). Writes bench/results-<name>.{md,json}.
//   --file tests/e2e/scale.test.ts (default) → results-scale: scale out 3 → 5, scale in with the leader, password rotation
//   --file tests/e2e/redisGroups.test.ts      → results-redis-day2: kv scale-in without its master, kv secret rotation,
//                                                kv application password rotated with the previous one kept, then dropped
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { median } from "./stats";

const REPO = path.join(__dirname, "..");

interface Row { drill: string; acknowledged: number; failed: number; lost: number; pauseSeconds: number; upSeconds: number; at: string; run: number }

function runsArg(): number {
  const i = process.argv.indexOf("--runs");
  const v = i < 0 ? 3 : Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--runs: got ${JSON.stringify(process.argv[i + 1])}; expected a whole number ≥ 1`);
  return v;
}

/** What each known file's runs are, for the results' header. */
const FILES: Record<string, { name: string; about: string[] }> = {
  "tests/e2e/scale.test.ts": { name: "scale", about: [
    "# Day-2 drills on the scale lab: scale out, scale in, password rotation", "",
    "Each run is one pass of `tests/e2e/scale.test.ts` on fresh VMs (3 → 5 → 3 PostgreSQL members, aggressive failover profile,",
    "asynchronous replication, a PgBouncer pair behind a VIP); a writer through the VIP, one new connection per write every 0.1 s.",
    "Pause: the longest stretch without an acknowledged write from the `pulumi up`'s start until its end. Lost: acknowledged",
    "writes missing afterwards. Up: the `pulumi up`'s own duration."] },
  "tests/e2e/redisGroups.test.ts": { name: "redis-day2", about: [
    "# Day-2 drills on the Redis groups lab: scale-in without the master, secret rotation", "",
    "Each run is one pass of `tests/e2e/redisGroups.test.ts` on fresh VMs (groups pubsub and kv, each with its HAProxy and VIP;",
    "kv grows to 4 nodes, then shrinks without its master's node; then kv's own password and its VIP's auth_pass are rotated;",
    "then kv's application password is rotated with the previous one kept, the writer still on the old one, and in a",
    "second up the previous one is dropped; since 2026-11-29 16:30 a password change reaches Redis at runtime, no restart);",
    "a writer through kv's VIP, a SET every 50 ms on a new connection each (bench/redis_writer.py), from 3 s before the `up`",
    "until 3 s after it. Pause: the longest gap between acknowledged writes. Lost: acknowledged keys missing afterwards.",
    "Up: the `pulumi up` with its set-up (the stack's config)."] },
};

function fileArg(): string {
  const i = process.argv.indexOf("--file");
  const f = i < 0 ? "tests/e2e/scale.test.ts" : process.argv[i + 1];
  if (!FILES[f]) throw new Error(`--file: got ${JSON.stringify(f)}; expected one of ${Object.keys(FILES).join(", ")}`);
  return f;
}


function main(): void {
  if (process.getuid?.() !== 0) throw new Error("needs root (nspawn VMs)");
  const runs = runsArg();
  const file = fileArg();
  const { name, about } = FILES[file];
  const command = `npm run bench:${name} -- --runs ${runs}`;
  const started = new Date().toISOString();
  const rows: Row[] = [];
  const outcomes: { run: number; exitCode: number | null; seconds: number }[] = [];
  for (let run = 1; run <= runs; run++) {
    const record = path.join(os.tmpdir(), `hastack-drill-record-${process.pid}-${run}.jsonl`);
    fs.rmSync(record, { force: true });
    const t0 = Date.now();
    const r = spawnSync("npx", ["jest", "--runInBand", "--ci", file], {
      cwd: REPO, stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, HASTACK_DRILL_RECORD: record } });
    outcomes.push({ run, exitCode: r.status, seconds: Math.round((Date.now() - t0) / 1000) });
    if (fs.existsSync(record)) {
      for (const line of fs.readFileSync(record, "utf8").split("\n").filter(Boolean)) rows.push({ ...JSON.parse(line), run });
      fs.rmSync(record);
    }
    console.log(`bench:${name} run ${run}/${runs}: exit ${r.status}, ${rows.filter((x) => x.run === run).length} drills recorded`);
  }
  const drills = [...new Set(rows.map((r) => r.drill))];
  const summary = drills.map((d) => {
    const rs = rows.filter((r) => r.drill === d);
    return { drill: d, runs: rs.length, medianPauseSeconds: median(rs.map((r) => r.pauseSeconds)), maxPauseSeconds: Math.max(...rs.map((r) => r.pauseSeconds)),
      lost: rs.reduce((a, r) => a + r.lost, 0), acknowledged: rs.reduce((a, r) => a + r.acknowledged, 0), medianUpSeconds: median(rs.map((r) => r.upSeconds)) };
  });
  const finished = new Date().toISOString();
  const load = fs.readFileSync("/proc/loadavg", "utf8").trim();
  fs.writeFileSync(path.join(__dirname, `results-${name}.json`), JSON.stringify({ command, started, finished, load, outcomes, rows, summary }, null, 2) + "\n");
  fs.writeFileSync(path.join(__dirname, `results-${name}.md`), [
    about[0], "",
    `Command: \`${command}\` (as root). Started ${started}, finished ${finished}; load at the end: ${load} (2 cores, shared).`,
    ...about.slice(2),
    "",
    `Runs: ${outcomes.map((o) => `${o.run}: exit ${o.exitCode} in ${o.seconds} s`).join("; ")}.`,
    "",
    "| drill | runs | median pause (s) | max pause (s) | acknowledged (sum) | lost (sum) | median up (s) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...summary.map((s) => `| ${s.drill} | ${s.runs} | ${s.medianPauseSeconds} | ${s.maxPauseSeconds} | ${s.acknowledged} | ${s.lost} | ${s.medianUpSeconds} |`),
    "",
    "Per run:",
    "",
    "| run | drill | pause (s) | acknowledged | failed attempts | lost | up (s) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.run} | ${r.drill} | ${r.pauseSeconds} | ${r.acknowledged} | ${r.failed} | ${r.lost} | ${r.upSeconds} |`),
    "",
  ].join("\n"));
  console.log(fs.readFileSync(path.join(__dirname, `results-${name}.md`), "utf8"));
  if (outcomes.some((o) => o.exitCode !== 0)) process.exitCode = 1;
}

main();
