// `npm run bench:partitions [-- RUNS]`: partitions, not crashes, on the running lab (VMs keep
// running, links are cut on both sides), and a hung PgBouncer seen by a client that keeps its
// connection. RUNS times each (default 3); the leader partition with synchronous_mode off and on.
// Writes bench/results-partitions.{json,md}. Needs root and a lab deployed with `npm run lab`.
import * as fs from "fs";
import * as path from "path";
import { changes } from "../engine/automation";
import { openLabStack } from "../lab/deploy";
import * as d from "./drills";
import { median } from "./stats";


async function up(sync: boolean): Promise<void> {
  const stack = await openLabStack({ synchronousMode: sync });
  const r = await stack.up();
  if (r.summary.result !== "succeeded") throw new Error(`pulumi up (synchronousMode=${sync}) ${r.summary.result}`);
  console.log(`bench: up synchronousMode=${sync}: ${JSON.stringify(changes(r.summary.resourceChanges))}`);
  if (sync) await d.until("a synchronous standby", async () => (await d.patroni()).some((m) => m.role === "sync_standby"), 90);
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  // an optional drill label runs only that drill (synchronous_mode off) and writes results-partitions-<label>.*
  const only = process.argv[3];
  const rows: (d.DrillResult & { synchronousMode: boolean; run: number })[] = [];
  for (const sync of only ? [false] : [false, true]) {
    await up(sync);
    let drills: [string, () => Promise<d.DrillResult>][] = [["leader-partition", d.leaderPartition]];
    if (!sync) drills.push(["etcd-member-partition", d.etcdMemberPartition], ["proxy-partition", d.proxyPartition], ["pgbouncer-hang", d.pgbouncerHang]);
    if (only) drills = drills.filter(([label]) => label === only);
    if (!drills.length) throw new Error(`no drill labelled ${only}`);
    for (let i = 1; i <= runs; i++) {
      for (const [label, fn] of drills) {
        const res = await fn();
        console.log(`bench: sync=${sync} run ${i} ${label}: ${JSON.stringify(res)}`);
        rows.push({ ...res, synchronousMode: sync, run: i });
        await d.until("cluster healthy between drills", () => d.patroniHealthy(), 180, 1000);
      }
    }
  }
  if (!only) await up(false);
  const groups = new Map<string, typeof rows>();
  for (const r of rows) groups.set(`${r.drill}|${r.synchronousMode}`, [...(groups.get(`${r.drill}|${r.synchronousMode}`) ?? []), r]);
  const summary = [...groups.values()].map((rs) => ({
    drill: rs[0].drill, synchronousMode: rs[0].synchronousMode, runs: rs.length,
    medianWriteOutageSeconds: median(rs.map((r) => r.writeOutageSeconds)),
    maxWriteOutageSeconds: Math.max(...rs.map((r) => r.writeOutageSeconds)),
    medianHealOutageSeconds: median(rs.map((r) => r.healOutageSeconds ?? 0)),
    lostWritesPerRun: rs.map((r) => r.lostWrites),
  }));
  const command = `npm run bench:partitions -- ${runs}${only ? ` ${only}` : ""}`;
  const out = only ? `results-partitions-${only}` : "results-partitions";
  const date = new Date().toISOString();
  fs.writeFileSync(path.join(__dirname, `${out}.json`), JSON.stringify({ command, date, summary, rows }, null, 2));
  const md = [
    "# Partitions and a hung PgBouncer on the lab", "",
    `Made by \`${command}\` on ${date} (2 cores, 12 nspawn VMs, Patroni profile "aggressive").`, "",
    "| drill | synchronous_mode | runs | median write outage (s) | max (s) | median outage after healing (s) | acknowledged writes lost, per run |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...summary.map((s) => `| ${s.drill} | ${s.synchronousMode} | ${s.runs} | ${s.medianWriteOutageSeconds} | ${s.maxWriteOutageSeconds} | ${s.medianHealOutageSeconds} | ${s.lostWritesPerRun.join(", ")} |`),
    "",
    "Partitions: nftables on both sides drops every packet between the cut VMs (VRRP included); the VMs keep running and the lab host can still reach them. " +
    "Writers go through the PgBouncer VIP, one write per 100 ms, a new connection each, except the hung-PgBouncer drill, whose writer keeps one connection with a 30 s client-side timeout (Npgsql's default). " +
    "Outage after healing: the longest stretch without an acknowledged write after the cut was healed (a healed member must not cause a second outage).",
    "",
  ].join("\n");
  fs.writeFileSync(path.join(__dirname, `${out}.md`), md);
  console.log(md);
}

main().catch((e) => { console.error(e); process.exit(1); });
