// `npm run bench:converge -- [RUNS]` (default 3): issue 12's converge figures alone, on the one-site lab. Each run
// boots fresh VMs, runs a first `pulumi up` (wall time, and the critical path through the host steps: see
// converge.ts), then a second, no-op `up` of the same stack. Medians over the runs, each ratio from its own run;
// writes bench/results-converge.{json,md}. Needs root; removes and re-creates the lab (bridge hsbr0).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { changes } from "../engine/automation";
import { openLabStack } from "../lab/deploy";
import { freshConverge } from "./converge";
import { median } from "./stats";

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const started = new Date().toISOString();
  const rows: { run: number; loadAtStart: string; firstUpSeconds: number; criticalPathSeconds: number; ratio: number; hostSteps: number;
    longestSteps: string[]; noopUpSeconds: number; noopChanges: Record<string, number>; noopShare: number }[] = [];
  for (let i = 1; i <= runs; i++) {
    const load = os.loadavg().map((x) => x.toFixed(1)).join(" ");
    const fresh = await freshConverge();
    const stack = await openLabStack();
    const t0 = Date.now();
    const again = await stack.up();
    const noop = (Date.now() - t0) / 1000;
    const row = { run: i, loadAtStart: load, firstUpSeconds: fresh.wallSeconds, criticalPathSeconds: fresh.criticalPathSeconds, ratio: fresh.ratio,
      hostSteps: fresh.steps, longestSteps: fresh.longestSteps, noopUpSeconds: round(noop), noopChanges: changes(again.summary.resourceChanges),
      noopShare: round(noop / fresh.wallSeconds, 3) };
    console.log(`bench:converge ${JSON.stringify(row)}`);
    rows.push(row);
  }
  const m = (k: "firstUpSeconds" | "criticalPathSeconds" | "ratio" | "noopUpSeconds" | "noopShare") => median(rows.map((r) => r[k]));
  const out = path.join(__dirname, "results-converge");
  fs.writeFileSync(`${out}.json`, JSON.stringify({ command: `npm run bench:converge -- ${runs}`, started, rows }, null, 1) + "\n");
  fs.writeFileSync(`${out}.md`, [
    "# Converge: first `pulumi up` against its critical path, and a no-op `up` (issue 12)",
    "",
    `\`npm run bench:converge -- ${runs}\`, started ${started}, on the one-site lab (13 nspawn VMs, 2 cores). Each run: fresh VMs, a first up, then the same up again.`,
    "Critical path: the longest chain of host steps through the dependencies in state, each step's own duration from engine events (1 s resolution). Targets: first up ≤ 1.5 × critical path; no-op ≤ 10 % of a first up.",
    "",
    "| run | load at start | first up (s) | critical path (s) | wall / critical path | host steps | no-op up (s) | no-op / first | no-op changes | longest steps |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.run} | ${r.loadAtStart} | ${r.firstUpSeconds} | ${r.criticalPathSeconds} | ${r.ratio} | ${r.hostSteps} | ${r.noopUpSeconds} | ${r.noopShare} | ${JSON.stringify(r.noopChanges)} | ${r.longestSteps.join(", ")} |`),
    "",
    `**Medians:** first up ${m("firstUpSeconds")} s, critical path ${m("criticalPathSeconds")} s, ratio ${m("ratio")} (target ≤ 1.5); no-op up ${m("noopUpSeconds")} s, ${round(m("noopShare") * 100)} % of a first up (target ≤ 10 %).`,
    "",
  ].join("\n"));
}

main().catch((e) => { console.error(e); process.exit(1); });
