// `npm run bench:scale [-- --runs N]`: the day-2 drills of the scale lab, N times, with medians. Each run is one
// pass of tests/e2e/scale.test.ts on fresh VMs (own bridge hssc0; needs root): scale out 3 → 5, scale in 5 → 3 with
// the leader among the removed, and the superuser/replication/rewind password rotation, each a `pulumi up` under a
// writer through the PgBouncer VIP. The test file records each drill's figures (HASTACK_SCALE_RECORD); a run whose
// test failed still counts its recorded drills and is reported as failed. Writes bench/results-scale.{md,json}.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const REPO = path.join(__dirname, "..");

interface Row { drill: string; acknowledged: number; failed: number; lost: number; pauseSeconds: number; upSeconds: number; at: string; run: number }

function runsArg(): number {
  const i = process.argv.indexOf("--runs");
  const v = i < 0 ? 3 : Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--runs: got ${JSON.stringify(process.argv[i + 1])}; expected a whole number ≥ 1`);
  return v;
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

function main(): void {
  if (process.getuid?.() !== 0) throw new Error("needs root (nspawn VMs)");
  const runs = runsArg();
  const command = `npm run bench:scale -- --runs ${runs}`;
  const started = new Date().toISOString();
  const rows: Row[] = [];
  const outcomes: { run: number; exitCode: number | null; seconds: number }[] = [];
  for (let run = 1; run <= runs; run++) {
    const file = path.join(os.tmpdir(), `hastack-scale-record-${process.pid}-${run}.jsonl`);
    fs.rmSync(file, { force: true });
    const t0 = Date.now();
    const r = spawnSync("npx", ["jest", "--runInBand", "--ci", "tests/e2e/scale.test.ts"], {
      cwd: REPO, stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, HASTACK_SCALE_RECORD: file } });
    outcomes.push({ run, exitCode: r.status, seconds: Math.round((Date.now() - t0) / 1000) });
    if (fs.existsSync(file)) {
      for (const line of fs.readFileSync(file, "utf8").split("\n").filter(Boolean)) rows.push({ ...JSON.parse(line), run });
      fs.rmSync(file);
    }
    console.log(`bench:scale run ${run}/${runs}: exit ${r.status}, ${rows.filter((x) => x.run === run).length} drills recorded`);
  }
  const drills = [...new Set(rows.map((r) => r.drill))];
  const summary = drills.map((d) => {
    const rs = rows.filter((r) => r.drill === d);
    return { drill: d, runs: rs.length, medianPauseSeconds: median(rs.map((r) => r.pauseSeconds)), maxPauseSeconds: Math.max(...rs.map((r) => r.pauseSeconds)),
      lost: rs.reduce((a, r) => a + r.lost, 0), acknowledged: rs.reduce((a, r) => a + r.acknowledged, 0), medianUpSeconds: median(rs.map((r) => r.upSeconds)) };
  });
  const finished = new Date().toISOString();
  const load = fs.readFileSync("/proc/loadavg", "utf8").trim();
  fs.writeFileSync(path.join(__dirname, "results-scale.json"), JSON.stringify({ command, started, finished, load, outcomes, rows, summary }, null, 2) + "\n");
  fs.writeFileSync(path.join(__dirname, "results-scale.md"), [
    "# Day-2 drills on the scale lab: scale out, scale in, password rotation",
    "",
    `Command: \`${command}\` (as root). Started ${started}, finished ${finished}; load at the end: ${load} (2 cores, shared).`,
    "Each run is one pass of `tests/e2e/scale.test.ts` on fresh VMs (3 → 5 → 3 PostgreSQL members, aggressive failover profile,",
    "asynchronous replication, a PgBouncer pair behind a VIP); a writer through the VIP, one new connection per write every 0.1 s.",
    "Pause: the longest stretch without an acknowledged write from the `pulumi up`'s start until its end. Lost: acknowledged",
    "writes missing afterwards. Up: the `pulumi up`'s own duration.",
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
  console.log(fs.readFileSync(path.join(__dirname, "results-scale.md"), "utf8"));
  if (outcomes.some((o) => o.exitCode !== 0)) process.exitCode = 1;
}

main();
