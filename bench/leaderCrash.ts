// `npm run bench:leader-crash -- up | N [--soak-minutes M] [--label L] | soak M | md | down`
// Issue 12, the leader crash: on a small lab of its own (3 PostgreSQL/Patroni/etcd VMs, the PgBouncer/HAProxy
// pair behind its VIP; the smallest datacenter the stack accepts, deployed through the real engine) the
// Patroni leader's VM is crashed N times while a writer writes through the VIP (one write per 100 ms, a new
// connection each, bench/writer.py). Per crash: the write outage, acknowledged writes lost, and the phases
// from the daemons' own logs (leader key gone, promotion, HAProxy marking the new leader UP). The soak runs
// pgbench through the VIP with nothing crashed and counts leader changes and HAProxy state flaps.
// Results: bench/results-leader-crash.{md,json} (rows appended per label, so before/after rows sit together).
// Needs root. Own lab: bridge hsfo0, 10.213.22.0/24, disks /var/lib/hastack-fo, state lab/.fo-state,
// cgroup hastack-fo; VM names fopg1-3, fopx1-2 (a VM's veth is vb-<name>, one namespace for all labs).
import { execFile, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import axios from "axios";
import { ConfigMap, Stack } from "@pulumi/pulumi/automation";
import { changes, openStack, REPO } from "../engine/automation";
import { offlineCertificates, offlinePasswords, secretLeaves } from "../engine/offline-secrets";
import { outageSeconds, python, until, WriterResult } from "./drills";
import { median } from "./stats";

const run = promisify(execFile);
const LAB = path.join(REPO, "lab");
const STATE = path.join(LAB, ".fo-state");
const ENV = {
  ...process.env,
  HASTACK_LAB_STATE: STATE, HASTACK_LAB_ROOT: "/var/lib/hastack-fo", HASTACK_LAB_BRIDGE: "hsfo0", HASTACK_LAB_CGROUP: "hastack-fo",
  HASTACK_LAB_SUBNET_BASES: "10.213.22.", HASTACK_LAB_HOST_ADDR: "10.213.22.1",
};
const SUBNET = "10.213.22.0/24";
const PG = [{ name: "fopg1", address: "10.213.22.11" }, { name: "fopg2", address: "10.213.22.12" }, { name: "fopg3", address: "10.213.22.13" }];
const PX = [{ name: "fopx1", address: "10.213.22.21" }, { name: "fopx2", address: "10.213.22.22" }];
const VIP = "10.213.22.20";
const RESULTS = path.join(__dirname, "results-leader-crash");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`leader-crash: ${new Date().toISOString()} ${m}\n`);
const load = () => os.loadavg().map((x) => x.toFixed(1)).join(" ");

const labSh = (script: string, ...args: string[]) => execFileSync("bash", [path.join(LAB, script), ...args], { env: ENV, stdio: ["ignore", "inherit", "inherit"] });

/** ssh into one of this lab's VMs by name; `stdin` carries anything secret. */
async function ssh(name: string, cmd: string, stdin?: string, timeoutMs = 30000): Promise<string> {
  const p = run("bash", [path.join(LAB, "ssh.sh"), name, cmd], { env: ENV, timeout: timeoutMs, maxBuffer: 64 << 20 });
  p.child.stdin!.end(stdin ?? "");
  return (await p).stdout.trim();
}

function secrets(): { passwords: Record<string, string>; caCertPem: string } {
  const f = path.join(STATE, "secrets.json");
  if (!fs.existsSync(f)) {
    fs.mkdirSync(STATE, { recursive: true });
    fs.writeFileSync(f, JSON.stringify({ passwords: offlinePasswords(), caCertPem: offlineCertificates([]).caCertPem }), { mode: 0o600 });
  }
  return JSON.parse(fs.readFileSync(f, "utf8"));
}

function hostKeys(): Record<string, string> {
  return Object.fromEntries([...PG, ...PX].map((h) => [h.address,
    fs.readFileSync(`${ENV.HASTACK_LAB_ROOT}/${h.name}/upper/etc/ssh/ssh_host_ed25519_key.pub`, "utf8").split(" ").slice(0, 2).join(" ")]));
}

function config(): ConfigMap {
  const s = secrets();
  const obj = (v: unknown) => ({ value: JSON.stringify(v) });
  return {
    "hastack:subnet": { value: SUBNET },
    "hastack:sshPrivateKey": { value: fs.readFileSync(path.join(STATE, "id_ed25519"), "utf8"), secret: true },
    "hastack:ssh": obj({ user: "root", port: 22, hostKeys: hostKeys() }),
    // a one-site "site" stack: the datacenter's only form without an app tier (as in tests/e2e/vmmanagerLab.test.ts)
    "hastack:site": obj({ name: "folab", peers: [], primarySite: "folab", epoch: 1 }),
    "hastack:postgres": obj({ nodes: PG, failoverProfile: "aggressive" }),
    "hastack:proxy": obj({ nodes: PX, vip: VIP, interface: "host0" }),
    "hastack:redis": obj({ enabled: false }),
    "hastack:firewall": obj({ adminSources: ["10.213.22.1/32"] }),
    ...secretLeaves("hastack:passwords", s.passwords),
    ...secretLeaves("hastack:certificates", { caCertPem: s.caCertPem }),
  };
}

async function openFoStack(): Promise<Stack> {
  const workDir = path.join(STATE, "project");
  fs.mkdirSync(workDir, { recursive: true });
  fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(workDir, "Pulumi.yaml"));
  return openStack({ stackName: "folab", config: config(), workDir }, { backendDir: path.join(STATE, "pulumi"), passphrase: "hastack-fo-lab" });
}

/** Boot the five VMs (if not running) and `pulumi up` the stack; a second call changes only what the code changed. */
async function up(): Promise<void> {
  labSh("net.sh", "up");
  labSh("vm.sh", "key");
  const status = execFileSync("bash", [path.join(LAB, "vm.sh"), "status"], { env: ENV, encoding: "utf8" });
  for (const h of [...PG, ...PX]) {
    if (!new RegExp(`^${h.name}\\s+\\S+\\s+running`, "m").test(status)) labSh("vm.sh", status.includes(`${h.name} `) ? "start" : "up", h.name, ...(status.includes(`${h.name} `) ? [] : [h.address]));
  }
  for (const h of [...PG, ...PX]) await until(`${h.name} ssh`, () => ssh(h.name, "true", undefined, 5000).then(() => true), 180, 500);
  const stack = await openFoStack();
  const t0 = Date.now();
  const r = await stack.up({ onOutput: (s) => process.stdout.write(s) });
  log(`pulumi up ${r.summary.result} in ${((Date.now() - t0) / 1000).toFixed(1)} s, changes ${JSON.stringify(changes(r.summary.resourceChanges))}`);
}

// ---- the cluster as Patroni and HAProxy see it ---------------------------------------------------

interface Member { name: string; role: string; state: string; lag?: number | string }

async function members(exclude?: string): Promise<Member[]> {
  for (const m of PG.filter((x) => x.name !== exclude)) {
    try { return (await axios.get(`http://${m.address}:8008/cluster`, { timeout: 1000 })).data.members as Member[]; } catch { /* next */ }
  }
  throw new Error("no Patroni member answers");
}
const leaderName = async (exclude?: string) => (await members(exclude)).find((m) => m.role === "leader" && m.state === "running")?.name;
const healthy = async () => {
  const ms = await members();
  return ms.length === 3 && ms.filter((m) => m.role === "leader" && m.state === "running").length === 1
    && ms.every((m) => m.role === "leader" || ["streaming", "running"].includes(m.state) && typeof m.lag === "number");
};
/** Patroni's failover history (one row per leader change: [timeline, lsn, reason, time, new leader]). */
async function history(): Promise<unknown[][]> {
  for (const m of PG) {
    try { return (await axios.get(`http://${m.address}:8008/history`, { timeout: 2000 })).data as unknown[][]; } catch { /* next */ }
  }
  throw new Error("no Patroni member answers /history");
}

function passwordFile(): string {
  const f = path.join(STATE, "postgresApp.pw");
  fs.writeFileSync(f, secrets().passwords.postgresApp, { mode: 0o600 });
  return f;
}
const writerArgs = () => [path.join(__dirname, "writer.py"), "--host", VIP, "--port", "6432", "--dbname", "workspad", "--user", "workspad", "--password-file", passwordFile()];

/** The etcd member that leads the raft group (`etcdctl endpoint status` from a live member), or "?". */
async function etcdLeader(exclude?: string): Promise<string> {
  const eps = PG.map((m) => `http://${m.address}:2379`).join(",");
  for (const m of PG.filter((x) => x.name !== exclude)) {
    try {
      const out = await ssh(m.name, `. /etc/etcd/hastack-etcdctl.env; ETCDCTL_API=3 etcdctl --endpoints=${eps} endpoint status -w json`, undefined, 10000);
      const st = JSON.parse(out) as { Endpoint: string; Status: { header: { member_id: number }; leader: number } }[];
      const lead = st.find((e) => e.Status.header.member_id === e.Status.leader);
      return PG.find((p) => lead?.Endpoint.includes(p.address))?.name ?? "?";
    } catch { /* next */ }
  }
  return "?";
}

/** A journal line's time (short-iso-precise, the VM's clock is the host's) in ms since the epoch. */
const journalMs = (line: string) => Date.parse(line.split(" ")[0]);

/** First journal line of `unit` on `vm` after `sinceMs` that matches `re`: its time, or undefined. */
async function firstLog(vm: string, unit: string, sinceMs: number, re: RegExp): Promise<number | undefined> {
  const since = new Date(sinceMs - 1000).toISOString().replace("T", " ").replace(/\..*/, "");
  const out = await ssh(vm, `journalctl -q -o short-iso-precise -u ${unit} --since '${since} UTC' --no-pager | tail -n 4000`).catch(() => "");
  for (const l of out.split("\n")) { const t = journalMs(l); if (t >= sinceMs && re.test(l)) return t; }
  return undefined;
}

export interface CrashRow {
  label: string; run: number; crashed: string; newLeader: string;
  /** The etcd raft leader just before the crash: when it is the crashed VM, the new etcd leader renews every lease (the leader key's too) to its full TTL. */
  etcdLeaderBefore: string;
  crashAt: string; writeOutageSeconds: number; ackedWrites: number; lostWrites: number;
  /** Seconds after the crash: Patroni on the new leader starts the leader race (the key expired) / wins it / PostgreSQL accepts writes / first HAProxy marks it UP. */
  phases: { raceStart?: number; leaderRace?: number; promoted?: number; haproxyUp?: number; firstAckAfterCrash?: number };
  loadAtCrash: string; notes: string[];
}

const EVENT_AT = 5;

async function crashOnce(label: string, i: number): Promise<CrashRow> {
  const old = (await leaderName())!;
  const etcdLeaderBefore = await etcdLeader();
  const runLabel = `leader-crash-${label}-${i}-${Date.now()}`;
  const writerStart = Date.now();
  const writer = python<WriterResult>([...writerArgs(), "--seconds", "40", "--run", runLabel]);
  await sleep(EVENT_AT * 1000);
  const loadAtCrash = load();
  const tCrash = Date.now();
  await run("bash", [path.join(LAB, "vm.sh"), "crash", old], { env: ENV });
  const notes: string[] = [];
  // the crashed leader's member key lives as long as its lease, so "another leader" is the sign of a takeover
  await until("a new leader", async () => { const l = await leaderName(old); return l && l !== old; }, 90, 250).catch((e) => notes.push(String(e.message)));
  await sleep(3000);
  await run("bash", [path.join(LAB, "vm.sh"), "start", old], { env: ENV, timeout: 120000 });
  const w = await writer;
  const missing = await python<number[]>([...writerArgs(), "--verify", "--run", runLabel], JSON.stringify(w.acked.map(([s]) => s)));
  const newLeader = (await leaderName(old)) ?? "?";
  const rel = (t?: number) => t === undefined ? undefined : Math.round((t - tCrash) / 100) / 10;
  const phases: CrashRow["phases"] = {
    // the leader key is gone: Patroni starts the leader race by asking every member it knew (the dead one times out after 2 s)
    raceStart: rel(await firstLog(newLeader, "patroni", tCrash, /Got response from|Request failed to/)),
    // Patroni 3.0 logs "promoted self to leader by acquiring session lock" when it wins the leader race
    leaderRace: rel(await firstLog(newLeader, "patroni", tCrash, /promoted self to leader|acquired session lock as a leader/)),
    promoted: rel(await firstLog(newLeader, "patroni", tCrash, /database system is ready to accept connections|no action\. I am \(\S+\), the leader with the lock/)),
    haproxyUp: rel(Math.min(...(await Promise.all(PX.map((p) => firstLog(p.name, "haproxy", tCrash, new RegExp(`postgres_primary/${newLeader} is UP`))))).filter((x): x is number => x !== undefined))),
    firstAckAfterCrash: rel(writerStart + 1000 * (w.acked.find(([, t]) => writerStart + t * 1000 > tCrash + 300)?.[1] ?? NaN)),
  };
  if (w.errors.length) notes.push(`${w.errors.length} failed write attempts, first: ${w.errors[0][2]}`);
  await until("the old leader back as a replica", healthy, 180, 1000);
  return { label, run: i, crashed: old, newLeader, etcdLeaderBefore, crashAt: new Date(tCrash).toISOString(), writeOutageSeconds: outageSeconds(w, EVENT_AT, 40), ackedWrites: w.acked.length, lostWrites: missing.length, phases, loadAtCrash, notes };
}

// ---- the soak: pgbench through the VIP, nothing crashed -------------------------------------------

export interface SoakResult { minutes: number; clients: number; leaderChangesByHistory: number; leaderChangesSeen: number; haproxyFlaps: number; tps: number; loadStart: string; loadEnd: string; notes: string[] }

async function soak(minutes: number): Promise<SoakResult> {
  const clients = 4;
  const pgpass = `*:*:*:workspad:${secrets().passwords.postgresApp.replace(/\\/g, "\\\\").replace(/:/g, "\\:")}\n`;
  const pwFile = path.join(STATE, "pgpass");
  fs.writeFileSync(pwFile, pgpass, { mode: 0o600 });
  const env = { ...process.env, PGPASSFILE: pwFile, PGCONNECT_TIMEOUT: "5" };
  const conn = ["-h", VIP, "-p", "6432", "-U", "workspad"];
  execFileSync("pgbench", ["-i", "-q", "-s", "5", ...conn, "workspad"], { env, stdio: ["ignore", "inherit", "inherit"] });
  const histBefore = (await history()).length;
  const leader0 = await leaderName();
  const tStart = Date.now();
  const loadStart = load();
  const notes: string[] = [];
  // TPC-B-like with persistent connections, progress every 60 s; stops on its own after the soak
  const bench = spawn("pgbench", ["-c", String(clients), "-j", "2", "-T", String(minutes * 60), "-P", "60", ...conn, "workspad"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  bench.stdout.on("data", (d) => (out += d));
  bench.stderr.on("data", (d) => { err += d; process.stderr.write(d); });
  const done = new Promise<number>((r) => bench.on("close", (c) => r(c ?? -1)));
  let seen = 0, last = leader0, finished = false;
  void done.then(() => (finished = true));
  while (!finished) {
    const l = await leaderName().catch(() => undefined);
    if (l && l !== last) { seen++; notes.push(`leader ${last} -> ${l} at +${((Date.now() - tStart) / 1000).toFixed(0)} s`); last = l; }
    await sleep(2000);
  }
  const code = await done;
  if (code !== 0) notes.push(`pgbench exited ${code}`);
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out + err)?.[1] ?? NaN);
  const since = new Date(tStart).toISOString().replace("T", " ").replace(/\..*/, "");
  let flaps = 0;
  for (const p of PX) {
    const lines = (await ssh(p.name, `journalctl -q -u haproxy --since '${since} UTC' --no-pager | grep -E 'postgres_primary/\\S+ is (UP|DOWN)' || true`)).split("\n").filter(Boolean);
    flaps += lines.length;
    if (lines.length) notes.push(`${p.name}: ${lines.slice(0, 3).join(" | ")}`);
  }
  return { minutes, clients, leaderChangesByHistory: (await history()).length - histBefore, leaderChangesSeen: seen, haproxyFlaps: flaps, tps, loadStart, loadEnd: load(), notes };
}

// ---- results -----------------------------------------------------------------------------------

interface Results { runs: { command: string; date: string; label: string; settings: string; rows: CrashRow[]; soak?: SoakResult }[] }

async function settings(): Promise<string> {
  const cfg = (await axios.get(`http://${PG[0].address}:8008/config`, { timeout: 2000 })).data;
  const hap = await ssh(PX[0].name, "grep -E 'default-server' /etc/haproxy/haproxy.cfg | sed 's/^ *//'");
  const pgb = await ssh(PX[0].name, "grep -E '^server_(login_retry|connect_timeout)' /etc/pgbouncer/pgbouncer.ini | tr '\\n' ' '");
  return `Patroni ttl ${cfg.ttl}, loop_wait ${cfg.loop_wait}, retry_timeout ${cfg.retry_timeout}; HAProxy ${hap}; PgBouncer ${pgb.trim() || "(defaults)"}`;
}

function write(res: Results): void {
  fs.writeFileSync(`${RESULTS}.json`, JSON.stringify(res, null, 2));
  const md = [`# Leader VM crash on a 5-VM lab (issue 12)`, ``,
    `Made by \`npm run bench:leader-crash\` on its own lab (3 PostgreSQL/Patroni/etcd VMs, the PgBouncer/HAProxy pair behind its VIP; 2 cores shared with other labs, load average 1/5/15 min given per crash). Writer: one write per 100 ms through the VIP, **a new connection each** (bench/writer.py, connect_timeout 1 s). Write outage: longest stretch without an acknowledged write overlapping the crash. Phases: seconds after the crash, from the daemons' journals (new leader's Patroni: leader key gone and race started, race won; PostgreSQL accepting writes; first proxy's HAProxy marking the new leader UP) and the writer's first acknowledged write. A "?" in race start: that run's bench did not look for it yet (its notes then give when the REST API showed another leader, which the dead leader's still-live member key can delay).`, ``];
  for (const r of res.runs) {
    md.push(`## ${r.label} — \`${r.command}\`, ${r.date}`, ``, `Settings: ${r.settings}`, ``);
    if (r.rows.length) {
      md.push(`| run | crashed | etcd leader before | new leader | write outage (s) | acked | lost | race start (key gone) | race won | promoted | HAProxy UP | first write | load at crash | notes |`, `| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |`,
        ...r.rows.map((x) => `| ${x.run} | ${x.crashed} | ${x.etcdLeaderBefore} | ${x.newLeader} | ${x.writeOutageSeconds} | ${x.ackedWrites} | ${x.lostWrites} | ${x.phases.raceStart ?? "?"} | ${x.phases.leaderRace ?? "?"} | ${x.phases.promoted ?? "?"} | ${x.phases.haproxyUp ?? "?"} | ${x.phases.firstAckAfterCrash ?? "?"} | ${x.loadAtCrash} | ${x.notes.join("; ")} |`),
        ``, `**Median write outage ${median(r.rows.map((x) => x.writeOutageSeconds))} s** over ${r.rows.length} crashes (max ${Math.max(...r.rows.map((x) => x.writeOutageSeconds))} s); acknowledged writes lost: ${r.rows.reduce((a, x) => a + x.lostWrites, 0)}.`, ``);
    }
    if (r.soak) {
      const s = r.soak;
      md.push(`Soak: pgbench TPC-B-like, ${s.clients} persistent clients through the VIP for ${s.minutes} min, nothing crashed: **${s.leaderChangesByHistory} leader changes** (Patroni /history), ${s.leaderChangesSeen} seen by polling /cluster every 2 s, **${s.haproxyFlaps} HAProxy UP/DOWN events** for postgres_primary on the proxies, ${Math.round(s.tps)} TPS; load ${s.loadStart} at the start, ${s.loadEnd} at the end.${s.notes.length ? ` Notes: ${s.notes.join("; ")}` : ""}`, ``);
    }
  }
  fs.writeFileSync(`${RESULTS}.md`, md.join("\n"));
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  const opt = (k: string) => { const i = rest.indexOf(k); return i >= 0 ? rest[i + 1] : undefined; };
  if (cmd === "up") return up();
  if (cmd === "down") { labSh("down.sh"); return; }
  const res: Results = fs.existsSync(`${RESULTS}.json`) ? JSON.parse(fs.readFileSync(`${RESULTS}.json`, "utf8")) : { runs: [] };
  if (cmd === "md") { write(res); return; } // the .md again from the .json (after a change of its layout)
  const label = opt("--label") ?? "current";
  const entry = { command: `npm run bench:leader-crash -- ${[cmd, ...rest].join(" ")}`, date: new Date().toISOString(), label, settings: await settings(), rows: [] as CrashRow[], soak: undefined as SoakResult | undefined };
  res.runs.push(entry);
  const n = cmd === "soak" ? 0 : Number(cmd);
  if (!(n >= 0)) throw new Error(`usage: bench:leader-crash -- up | N [--soak-minutes M] [--label L] | soak M | down`);
  await until("a healthy cluster", healthy, 180, 1000);
  for (let i = 1; i <= n; i++) {
    const row = await crashOnce(label, i);
    log(JSON.stringify(row));
    entry.rows.push(row);
    write(res);
  }
  const minutes = cmd === "soak" ? Number(rest[0]) : Number(opt("--soak-minutes") ?? 0);
  if (minutes > 0) { entry.soak = await soak(minutes); log(JSON.stringify(entry.soak)); write(res); }
  write(res);
  process.stdout.write(fs.readFileSync(`${RESULTS}.md`, "utf8"));
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
