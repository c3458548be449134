// `npm run bench:balancer [-- RUNS [sessions-only] [remote-address]]`: the balancer drills RUNS times each
// (default 3) on the running lab (two nginx nodes behind a VIP), and the multi-network session test with
// ip_hash (and, with `remote-address`, with `hash $remote_addr consistent`: two more `pulumi up`s).
// Writes bench/results-balancer.{json,md}. Needs root and a lab deployed with `npm run lab`.
import * as fs from "fs";
import * as path from "path";
import { changes } from "../engine/automation";
import { openLabStack } from "../lab/deploy";
import * as b from "./balancerDrills";
import { until } from "./drills";
import { layout } from "../lab/stack";
import { median } from "./stats";

const show = (x: number | null) => (x === null ? "never" : String(x));

async function up(balanceMethod: "ipHash" | "remoteAddress"): Promise<void> {
  const r = await (await openLabStack({ balanceMethod })).up();
  if (r.summary.result !== "succeeded") throw new Error(`pulumi up (balanceMethod=${balanceMethod}) ${r.summary.result}`);
  console.log(`bench: up balanceMethod=${balanceMethod}: ${JSON.stringify(changes(r.summary.resourceChanges))}`);
  await until("one nginx VIP holder", async () => (await b.nginxVipHolders()).length === 1, 60, 1000);
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const sessionsOnly = process.argv.includes("sessions-only");
  const methods = process.argv.includes("remote-address") ? ["ipHash", "remoteAddress"] as const : ["ipHash"] as const;
  const rows: (b.BalancerDrillResult & { run: number })[] = [];
  const sessions: (b.SessionsResult & { run: number })[] = [];
  await until("one nginx VIP holder", async () => (await b.nginxVipHolders()).length === 1, 60, 1000);
  const drills: [string, () => Promise<b.BalancerDrillResult>][] = sessionsOnly ? [] : [
    ["crash", b.balancerCrash], ["nginx-stop", b.balancerNginxStop], ["upstream-cut", b.balancerUpstreamCut]];
  for (let i = 1; i <= runs; i++) {
    for (const [label, fn] of drills) {
      const r = await fn();
      console.log(`bench: run ${i} ${label}: ${JSON.stringify(r)}`);
      rows.push({ ...r, run: i });
    }
  }
  for (const method of methods) {
    if (method !== "ipHash") await up(method);
    for (let i = 1; i <= runs; i++) {
      const s = await b.sessionsAcrossNetworks(method);
      console.log(`bench: run ${i} sessions ${method}: ${JSON.stringify(s)}`);
      sessions.push({ ...s, run: i });
    }
  }
  if (methods.length > 1) await up("ipHash");

  const groups = new Map<string, typeof rows>();
  for (const r of rows) groups.set(r.drill, [...(groups.get(r.drill) ?? []), r]);
  const summary = [...groups.values()].map((rs) => ({
    drill: rs[0].drill, runs: rs.length,
    medianNewRequestGapSeconds: median(rs.map((r) => r.newRequestGapSeconds)),
    maxNewRequestGapSeconds: Math.max(...rs.map((r) => r.newRequestGapSeconds)),
    medianLongGapSeconds: median(rs.map((r) => r.longGapSeconds)),
    longBrokenAfterSeconds: rs.map((r) => r.longBrokenAfterSeconds),
    longErrors: [...new Set(rs.map((r) => r.longError || "none"))],
    idle: [...new Set(rs.map((r) => (r.idleClosedAfterSeconds === null ? r.idleReason : `closed ${r.idleClosedAfterSeconds} s after (${r.idleReason})`)))],
    medianHealGapSeconds: median(rs.map((r) => r.healGapSeconds)),
    medianRecoverySeconds: median(rs.map((r) => r.recoverySeconds)),
  }));
  const sGroups = new Map<string, typeof sessions>();
  for (const s of sessions) sGroups.set(s.balanceMethod, [...(sGroups.get(s.balanceMethod) ?? []), s]);
  const sessionSummary = [...sGroups.values()].map((ss) => ({
    balanceMethod: ss[0].balanceMethod, runs: ss.length, networks: ss[0].networks,
    nodesUsedBefore: ss.map((s) => s.nodesUsedBefore),
    movedPerRun: ss.map((s) => `${s.movedClients.length}/${Object.values(s.before).filter((n) => n === s.victim).length}`),
    disturbedPerRun: ss.map((s) => s.disturbedClients.length),
    medianAllAnsweringAfterSeconds: median(ss.map((s) => s.allAnsweringAfterSeconds)),
    victimClientsReturned: ss.map((s) => s.victimClientsReturned),
  }));

  const command = `npm run bench:balancer -- ${process.argv.slice(2).join(" ") || runs}`;
  const date = new Date().toISOString();
  fs.writeFileSync(path.join(__dirname, "results-balancer.json"), JSON.stringify({ command, date, summary, sessionSummary, rows, sessions }, null, 2));
  const md = [
    "# The balancer pair on the lab", "",
    `Made by \`${command}\` on ${date} (2 cores shared with other jobs, 13 nspawn VMs; ngx1/ngx2 behind the VIP ${layout.vips.nginx}).`, "",
    "## Failing the balancer that holds the VIP", "",
    "| drill | runs | median gap, new requests (s) | max (s) | median gap, kept connection (s) | kept connection broke after (s), per run | its error | idle connection | median gap when the failed node returns (s) | median recovery (s) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...summary.map((s) => `| ${s.drill} | ${s.runs} | ${s.medianNewRequestGapSeconds} | ${s.maxNewRequestGapSeconds} | ${s.medianLongGapSeconds} | ${s.longBrokenAfterSeconds.map(show).join(", ")} | ${s.longErrors.join(", ")} | ${s.idle.join("; ")} | ${s.medianHealGapSeconds} | ${s.medianRecoverySeconds} |`),
    "",
    "New requests: from the lab host, one started every 100 ms on a new TCP+TLS connection to `https://VIP/hastack-drill` (a path WorksPad answers with 404 without its database: the drills measure the balancers), 3 s timeout each; a request succeeds when a WorksPad node answered (its `wpnode` cookie), not nginx; the gap is the longest stretch without a success that overlaps the failure (target ≤ 3 s). " +
    "Kept connection: one keep-alive HTTPS connection with a request every 200 ms (a websocket client's ping), 5 s timeout, a new connection after an error. " +
    "Idle connection: one request, then silence (a websocket waiting for a push): whether and how it learns that its balancer is gone within the run. " +
    "Recovery: from the failure until the failed balancer passes its check again as backup (nopreempt: the VIP stays where it went).", "",
    "## Sessions across client networks (a WorksPad node crashes)", "",
    "| balanceMethod | runs | client networks | app nodes used before, per run | clients of the crashed node that moved, per run | other clients that changed node, per run | median crash → every network answered (s) | crashed node's clients went back after its return, per run |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...sessionSummary.map((s) => `| ${s.balanceMethod} | ${s.runs} | ${s.networks} | ${s.nodesUsedBefore.join(", ")} | ${s.movedPerRun.join(", ")} | ${s.disturbedPerRun.join(", ")} | ${s.medianAllAnsweringAfterSeconds} | ${s.victimClientsReturned.join(", ")} |`),
    "",
    "One network namespace per client /24 (10.213.64.2 … 10.213.71.2) with a veth on the lab bridge and on-link routes both ways; each asks `https://VIP/health` which node answered (3 rounds must agree). The node serving most networks is crashed (kill -9 of its VM's init) and booted again.", "",
  ].join("\n");
  fs.writeFileSync(path.join(__dirname, "results-balancer.md"), md);
  console.log(md);
}

main().catch((e) => { console.error(e); process.exit(1); });
