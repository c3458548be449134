// `npm run bench [-- RUNS]`: every failure drill RUNS times (default 3) on the running lab, with
// synchronous_mode off and on, plus converge figures; writes bench/results.{json,md}.
import * as fs from "fs";
import * as path from "path";
import { changes } from "../engine/automation";
import { openLabStack } from "../lab/deploy";

import * as d from "./drills";
import { freshConverge } from "./converge";
import { labConfig } from "../lab/stack";
import { median } from "./stats";


async function up(sync: boolean) {
  const stack = await openLabStack({ synchronousMode: sync });
  const t0 = Date.now();
  const r = await stack.up();
  return { seconds: (Date.now() - t0) / 1000, changes: changes(r.summary.resourceChanges), endpoint: r.outputs.endpoint.value as string };
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const rows: (d.DrillResult & { synchronousMode: boolean | null; run: number })[] = [];
  const fresh = await freshConverge();
  console.log(`bench: fresh converge ${JSON.stringify(fresh)}`);
  const converge: { what: string; seconds: number; changes: Record<string, number> }[] = [
    { what: "first up onto fresh VMs", seconds: fresh.wallSeconds, changes: fresh.changes }];
  for (const sync of [false, true]) {
    const first = await up(sync);
    const again = await up(sync);
    converge.push({ what: `up with synchronousMode=${sync}`, seconds: first.seconds, changes: first.changes },
      { what: "the same up again", seconds: again.seconds, changes: again.changes });
    const drills: [string, () => Promise<d.DrillResult>][] = [["leader", d.leaderCrash], ["pgbouncer", d.pgbouncerStop], ["vip", d.vipHolderCrash]];
    if (!sync) drills.push(["redis", d.redisMasterCrash], ["workspad", () => d.worksPadCrash(first.endpoint)]);
    for (let i = 1; i <= runs; i++) {
      for (const [label, fn] of drills) {
        const res = await fn();
        console.log(`bench: sync=${sync} run ${i} ${label}: ${JSON.stringify(res)}`);
        rows.push({ ...res, synchronousMode: label === "redis" || label === "workspad" ? null : sync, run: i });
        await d.until("cluster healthy between drills", () => d.patroniHealthy(), 180, 1000);
      }
    }
  }
  await up(false);
  const groups = new Map<string, typeof rows>();
  for (const r of rows) {
    const k = `${r.drill}|${r.synchronousMode}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const summary = [...groups.entries()].map(([k, rs]) => ({
    drill: k.split("|")[0], synchronousMode: rs[0].synchronousMode, runs: rs.length,
    medianWriteOutageSeconds: median(rs.map((r) => r.writeOutageSeconds)),
    maxWriteOutageSeconds: Math.max(...rs.map((r) => r.writeOutageSeconds)),
    totalLostWrites: rs.reduce((a, r) => a + r.lostWrites, 0),
    medianRecoverySeconds: median(rs.map((r) => r.recoverySeconds)),
  }));
  const command = `npm run bench -- ${runs}`;
  const profile = JSON.parse(String(labConfig()["hastack:postgres"].value)).failoverProfile;
  const date = new Date().toISOString();
  const dir = __dirname;
  fs.writeFileSync(path.join(dir, "results.json"), JSON.stringify({ command, date, summary, fresh, converge, rows }, null, 2));
  const md = [
    `# Failure drills on the lab`, ``, `Made by \`${command}\` on ${date} (2 cores, 12 nspawn VMs, Patroni profile "${profile}").`, ``,
    `| drill | synchronous_mode | runs | median write outage (s) | max (s) | acknowledged writes lost | median recovery (s) |`,
    `| --- | --- | --- | --- | --- | --- | --- |`,
    ...summary.map((s) => `| ${s.drill} | ${s.synchronousMode ?? "n/a"} | ${s.runs} | ${s.medianWriteOutageSeconds} | ${s.maxWriteOutageSeconds} | ${s.totalLostWrites} | ${s.medianRecoverySeconds} |`),
    ``, `Write outage: longest stretch without an acknowledged write (one write per 100 ms, a new connection each) that overlaps the failure. Lost: writes acknowledged to the client but missing afterwards. Recovery: from the failure until the failed part is back in its role (replica streaming, backup proxy, Redis replica linked), the VM being rebooted once the others took over.`,
    ``, `Converge (\`pulumi up\` of the lab stack, real engine):`, ``,
    `| run | wall time (s) | changes |`, `| --- | --- | --- |`,
    ...converge.map((c) => `| ${c.what} | ${c.seconds.toFixed(1)} | ${JSON.stringify(c.changes)} |`),
    ``, `First up onto fresh VMs: ${fresh.steps} host steps, critical path through them ${fresh.criticalPathSeconds} s, wall ${fresh.wallSeconds} s, ratio wall/critical path ${fresh.ratio}. Longest steps: ${fresh.longestSteps.join(", ")}.`,
    ``,
  ].join("\n");
  fs.writeFileSync(path.join(dir, "results.md"), md);
  console.log(md);
}

main().catch((e) => { console.error(e); process.exit(1); });
