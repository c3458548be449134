// `npm run bench:vip [-- RUNS [switch]]` or `npm run bench:vip -- switch-only`: the PgBouncer VIP holder crash drill RUNS times (default 3), what
// the VRRP adverts cost on the VIP nodes (keepalived CPU, VRRP packets per second), and with `switch` a
// VRRP version change of both pairs on the running lab (v3 → v2 → v3, two `pulumi up`s) watched from the
// nodes: how long both members held a VIP, or neither. Writes bench/results-vip.{json,md}.
// Needs root and a lab deployed with `npm run lab`.
import * as fs from "fs";
import * as path from "path";
import { changes } from "../engine/automation";
import { openLabStack } from "../lab/deploy";
import { byRole, layout } from "../lab/stack";
import * as d from "./drills";
import { median } from "./stats";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pairs = [
  { pair: "pgbouncer", vip: layout.vips.proxy, nodes: byRole("proxy").map((n) => n.name) },
  { pair: "nginx", vip: layout.vips.nginx, nodes: byRole("nginx").map((n) => n.name) },
];

/** keepalived's CPU time so far on `node` (every keepalived process, user + system), in seconds. */
async function keepalivedCpu(node: string): Promise<number> {
  const ticks = await d.ssh(node, "for p in $(pidof keepalived); do cut -d' ' -f14,15 /proc/$p/stat; done | awk '{s+=$1+$2} END {print s+0}'");
  const hz = Number(await d.ssh(node, "getconf CLK_TCK"));
  return Number(ticks) / hz;
}

/** VRRP packets (IP protocol 112) `node` receives and sends in `seconds`, counted by a temporary nftables table. */
async function vrrpPackets(nodes: string[], seconds: number): Promise<Record<string, { in: number; out: number }>> {
  const T = "hastack_vrrp_count";
  await Promise.all(nodes.map((n) => d.ssh(n, [
    `nft delete table inet ${T} 2>/dev/null || true`,
    `nft -f - <<'EOF'`,
    `table inet ${T} {`,
    `  chain in { type filter hook input priority -20; ip protocol vrrp counter; }`,
    `  chain out { type filter hook output priority -20; ip protocol vrrp counter; }`,
    `}`,
    `EOF`,
  ].join("\n"))));
  await sleep(seconds * 1000);
  const out: Record<string, { in: number; out: number }> = {};
  await Promise.all(nodes.map(async (n) => {
    const listing = await d.ssh(n, `nft list table inet ${T}; nft delete table inet ${T}`);
    const counts = [...listing.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
    out[n] = { in: counts[0] ?? 0, out: counts[1] ?? 0 };
  }));
  return out;
}

/** Start a 10 Hz log of "does this node hold the VIP" on every node of both pairs, for `seconds`. */
async function startVipLogs(seconds: number): Promise<void> {
  await Promise.all(pairs.flatMap((p) => p.nodes.map((n) => d.ssh(n,
    `setsid sh -c 'echo $$ > /tmp/hastack-vip.pid; end=$(( $(date +%s) + ${seconds} )); while [ $(date +%s) -lt $end ]; do ` +
    `printf "%s %s\\n" "$(date +%s.%N)" "$(ip -o -4 addr show | grep -c " ${p.vip}/")"; sleep 0.1; done' ` +
    `> /tmp/hastack-vip.log 2>&1 < /dev/null &`))));
}

/** From the nodes' logs: seconds during which both nodes of a pair held its VIP, and seconds during which neither did. */
async function vipLogSummary(): Promise<Record<string, { bothSeconds: number; noneSeconds: number; samples: number }>> {
  const out: Record<string, { bothSeconds: number; noneSeconds: number; samples: number }> = {};
  for (const p of pairs) {
    const logs = await Promise.all(p.nodes.map(async (n) => (await d.ssh(n, "cat /tmp/hastack-vip.log; rm -f /tmp/hastack-vip.log"))
      .split("\n").map((l) => l.trim().split(" ")).filter((f) => f.length === 2).map(([t, c]) => [Number(t), Number(c)] as [number, number])));
    // every node's state at each instant any node sampled (its last sample before it): the VMs share the host's clock
    const times = [...new Set(logs.flat().map(([t]) => t))].sort((a, b) => a - b)
      .filter((t) => logs.every((l) => l.length && l[0][0] <= t && t <= l[l.length - 1][0]));
    let both = 0, none = 0;
    for (let i = 1; i < times.length; i++) {
      const states = logs.map((l) => { let s = 0; for (const [t, c] of l) { if (t > times[i - 1]) break; s = c; } return s; });
      const dt = times[i] - times[i - 1];
      if (states.filter((s) => s > 0).length > 1) both += dt;
      if (states.every((s) => s === 0)) none += dt;
    }
    out[p.pair] = { bothSeconds: Math.round(both * 10) / 10, noneSeconds: Math.round(none * 10) / 10, samples: times.length };
  }
  return out;
}

async function switchVersion(vrrpV2: boolean) {
  await startVipLogs(300);
  await sleep(2000);
  const t0 = Date.now();
  const r = await (await openLabStack({ vrrpV2 })).up();
  const upSeconds = (Date.now() - t0) / 1000;
  await sleep(5000);
  // stop the loggers (by the pid each wrote) before reading what they logged
  await Promise.all(pairs.flatMap((p) => p.nodes.map((n) =>
    d.ssh(n, "kill $(cat /tmp/hastack-vip.pid) 2>/dev/null; rm -f /tmp/hastack-vip.pid; true").catch(() => undefined))));
  const summary = await vipLogSummary();
  return { to: vrrpV2 ? "VRRPv2, 1 s adverts" : "VRRPv3, 0.3 s adverts (default)", result: r.summary.result, upSeconds,
    changes: changes(r.summary.resourceChanges), pgbouncer: summary.pgbouncer, nginx: summary.nginx };
}

/** `switch-only`: just the version switch, written to bench/results-vip-switch.{json,md}. */
async function switchOnly(): Promise<void> {
  const switches = [];
  for (const v2 of [true, false]) {
    const s = await switchVersion(v2);
    console.log(`bench: switch ${JSON.stringify(s)}`);
    switches.push(s);
  }
  const command = "npm run bench:vip -- switch-only";
  const date = new Date().toISOString();
  fs.writeFileSync(path.join(__dirname, "results-vip-switch.json"), JSON.stringify({ command, date, switches }, null, 2));
  fs.writeFileSync(path.join(__dirname, "results-vip-switch.md"), ["# Changing the VRRP version of both running pairs", "",
    `Made by \`${command}\` on ${date} (the lab as deployed by \`npm run lab\`, VRRPv3 defaults; one \`pulumi up\` to VRRPv2 with 1 s adverts, one back).`, "",
    ...switchTable(switches)].join("\n"));
}

function switchTable(switches: Awaited<ReturnType<typeof switchVersion>>[]): string[] {
  return [
    "| to | up result | up (s) | pgbouncer: both held the VIP (s) | pgbouncer: nobody held it (s) | nginx: both (s) | nginx: nobody (s) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...switches.map((s) => `| ${s.to} | ${s.result} | ${s.upSeconds.toFixed(1)} | ${s.pgbouncer.bothSeconds} | ${s.pgbouncer.noneSeconds} | ${s.nginx.bothSeconds} | ${s.nginx.noneSeconds} |`),
    "", "Each node logged whether it held its pair's VIP every 100 ms from 2 s before the up until 5 s after it. VRRPv2 and VRRPv3 adverts do not understand each other, so while one node runs the new version and the other the old one, each thinks the other is gone.", "",
  ];
}

async function main(): Promise<void> {
  if (process.argv.includes("switch-only")) return switchOnly();
  const runs = Number(process.argv[2] ?? 3);
  const doSwitch = process.argv.includes("switch");
  const rows: (d.DrillResult & { run: number })[] = [];
  for (let i = 1; i <= runs; i++) {
    const r = await d.vipHolderCrash();
    console.log(`bench: run ${i} vip-holder-crash: ${JSON.stringify(r)}`);
    rows.push({ ...r, run: i });
    await d.until("cluster healthy between drills", () => d.patroniHealthy(), 180, 1000);
  }
  const vipNodes = pairs.flatMap((p) => p.nodes);
  const cpu0 = await Promise.all(vipNodes.map(keepalivedCpu));
  const t0 = Date.now();
  const packets = await vrrpPackets(vipNodes, 20);
  await sleep(Math.max(0, 60000 - (Date.now() - t0)));
  const cpu1 = await Promise.all(vipNodes.map(keepalivedCpu));
  const window = (Date.now() - t0) / 1000;
  const cost = vipNodes.map((n, i) => ({
    node: n, cpuMsPerMinute: Math.round(((cpu1[i] - cpu0[i]) / window) * 60000),
    vrrpPacketsPerSecondIn: Math.round((packets[n].in / 20) * 10) / 10, vrrpPacketsPerSecondOut: Math.round((packets[n].out / 20) * 10) / 10,
  }));
  console.log(`bench: cost ${JSON.stringify(cost)}`);
  const switches = [];
  if (doSwitch) {
    for (const v2 of [true, false]) {
      const s = await switchVersion(v2);
      console.log(`bench: switch ${JSON.stringify(s)}`);
      switches.push(s);
    }
  }

  const summary = {
    drill: "vip-holder-crash", runs: rows.length,
    medianWriteOutageSeconds: median(rows.map((r) => r.writeOutageSeconds)), maxWriteOutageSeconds: Math.max(...rows.map((r) => r.writeOutageSeconds)),
    lostWrites: rows.reduce((a, r) => a + r.lostWrites, 0), medianRecoverySeconds: median(rows.map((r) => r.recoverySeconds)),
  };
  const command = `npm run bench:vip -- ${process.argv.slice(2).join(" ") || runs}`;
  const date = new Date().toISOString();
  fs.writeFileSync(path.join(__dirname, "results-vip.json"), JSON.stringify({ command, date, summary, cost, switches, rows }, null, 2));
  const md = [
    "# VRRP timing on the lab", "",
    `Made by \`${command}\` on ${date} (2 cores shared with other jobs, 13 nspawn VMs; PgBouncer VIP ${layout.vips.proxy} on px1/px2, nginx VIP ${layout.vips.nginx} on ngx1/ngx2; the lab's VRRP settings are the defaults unless a row says otherwise).`, "",
    "## The PgBouncer VIP holder's VM crashes", "",
    "| drill | runs | median write outage (s) | max (s) | per run (s) | acknowledged writes lost | median recovery (s) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    `| ${summary.drill} | ${summary.runs} | ${summary.medianWriteOutageSeconds} | ${summary.maxWriteOutageSeconds} | ${rows.map((r) => r.writeOutageSeconds).join(", ")} | ${summary.lostWrites} | ${summary.medianRecoverySeconds} |`,
    "", "Write outage: longest stretch without an acknowledged write through the VIP (one write per 100 ms, a new connection each) that overlaps the crash (target ≤ 2 s, issue 12).", "",
    "## What the adverts cost", "",
    "| node | keepalived CPU (ms per minute) | VRRP packets/s received | VRRP packets/s sent |", "| --- | --- | --- | --- |",
    ...cost.map((c) => `| ${c.node} | ${c.cpuMsPerMinute} | ${c.vrrpPacketsPerSecondIn} | ${c.vrrpPacketsPerSecondOut} |`),
    "", `CPU: keepalived's user+system time over ${Math.round(window)} s of an idle lab (the check scripts keepalived forks are not included: they are children). Packets: an nftables counter for IP protocol 112 over 20 s (the pgbouncer pair uses multicast, the nginx pair unicast).`, "",
    ...(switches.length ? [
      "## Changing the VRRP version of a running pair (`pulumi up`)", "", ...switchTable(switches),
    ] : []),
  ].join("\n");
  fs.writeFileSync(path.join(__dirname, "results-vip.md"), md);
  console.log(md);
}

main().catch((e) => { console.error(e); process.exit(1); });
