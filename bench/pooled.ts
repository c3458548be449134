// `npm run bench:pooled -- [RUNS] [--seconds S] [--label L] [--paths a,b] [--modes a,b]`: pgbench
// through each hop of the pooled path and straight to the Patroni leader, in the same run, so each
// ratio compares measurements taken minutes apart on the same load. Needs root and a lab deployed
// with `npm run lab`. Rows go to bench/results-pooled.json under LABEL (kept across invocations,
// so "before" and "after" a design change sit side by side), and the Markdown is rebuilt from it.
//
// pgbench runs on the lab host (outside every VM, same 2 cores) for every path; the HAProxy-only
// row runs the same binary in the network namespace of the proxy that does not hold the VIP,
// because HAProxy listens on 127.0.0.1 only. CPU per part is read from the VMs' cgroups and from
// /proc for the pgbouncer and haproxy processes of the proxy under test.
import { execFile, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { byRole, layout, STATE } from "../lab/stack";
import { patroniLeader, vipHolders } from "./drills";
import { median } from "./stats";

const run = promisify(execFile);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

const DB = "workspad", USER = "workspad", PG_PORT = 5432, BOUNCER_PORT = 6432, HAPROXY_PORT = 5000;
const CLIENTS = 8, THREADS = 2, SCALE = 10;

/** What pgbench does per transaction; `-C` opens a new connection for each. */
const MODES: Record<string, string[]> = {
  "select": ["-S"],
  "tpcb": [],
  "select -C": ["-S", "-C"],
};
/** Hops, from the shortest path to the whole pooled one. */
const PATHS = ["direct", "haproxy", "pgbouncer", "vip"] as const;
type PathName = (typeof PATHS)[number];

interface Row {
  label: string; run: number; mode: string; path: PathName; tps: number; latencyMs: number;
  /** CPU seconds per second of wall time, by part: the client, the leader VM, the proxy VM under test, and its two daemons. */
  cpu: { client: number; leaderVm: number; proxyVm: number; pgbouncer: number; haproxy: number; hostBusy: number };
  load1: number;
}

/** The app password in a 0600 pgpass under lab/.state, never in argv or the environment of another user. */
function pgpass(): string {
  const pw = (JSON.parse(fs.readFileSync(path.join(STATE, "secrets.json"), "utf8")) as { passwords: Record<string, string> }).passwords.postgresApp;
  const e = (s: string) => s.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
  const f = path.join(STATE, "bench-pooled.pgpass");
  fs.writeFileSync(f, `*:*:${DB}:${USER}:${e(pw)}\n`, { mode: 0o600 });
  return f;
}

/** Host pid of a VM's init (its network namespace is the VM's). */
function initPid(vm: string): number {
  const nspawn = fs.readFileSync(path.join(STATE, "vms", vm, "pid"), "utf8").trim();
  const self = fs.readlinkSync("/proc/self/ns/pid");
  for (const t of fs.readdirSync(`/proc/${nspawn}/task`)) {
    for (const c of fs.readFileSync(`/proc/${nspawn}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) {
      if (fs.readlinkSync(`/proc/${c}/ns/pid`) !== self) return Number(c);
    }
  }
  throw new Error(`${vm}: init not found`);
}

const cgroupUsec = (vm: string) => Number(/usage_usec (\d+)/.exec(fs.readFileSync(`/sys/fs/cgroup/unified/hastack-lab/${vm}/cpu.stat`, "utf8"))![1]);
const hostBusyTicks = () => {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return f.reduce((a, b) => a + b, 0) - f[3] - f[4];
};

/** CPU ticks of every process named `comm` inside the VM whose init is `init` (same pid namespace). */
function procTicks(init: number, comm: string): number {
  const ns = fs.readlinkSync(`/proc/${init}/ns/pid`);
  let t = 0;
  for (const p of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (name !== comm || fs.readlinkSync(`/proc/${p}/ns/pid`) !== ns) continue;
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      t += Number(f[11]) + Number(f[12]);
    } catch { /* gone */ }
  }
  return t;
}

/** One pgbench run; resolves with its TPS, latency and the client's own CPU seconds (from bash's `times`). */
function pgbench(host: string, port: number, mode: string, seconds: number, pgpassFile: string, netnsOf?: number) {
  const args = ["-n", "-h", host, "-p", String(port), "-U", USER, "-c", String(CLIENTS), "-j", String(THREADS), "-T", String(seconds), ...MODES[mode], DB];
  const argv = netnsOf ? ["nsenter", `--net=/proc/${netnsOf}/ns/net`, "pgbench", ...args] : ["pgbench", ...args];
  // `times` prints the children's user and system CPU as its second line
  const script = `"$@"; rc=$?; times; exit $rc`;
  return new Promise<{ tps: number; latencyMs: number; clientCpu: number }>((resolve, reject) => {
    const p = spawn("bash", ["-c", script, "pgbench", ...argv], { env: { ...process.env, PGPASSFILE: pgpassFile, PGSSLMODE: "disable", PGCONNECT_TIMEOUT: "5" } });
    let out = "", err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("close", (rc) => {
      const tps = /tps = ([\d.]+)/.exec(out), lat = /latency average = ([\d.]+) ms/.exec(out);
      const times = out.trim().split("\n").slice(-1)[0].match(/(\d+)m([\d.]+)s/g) ?? [];
      const secs = times.map((t) => { const m = /(\d+)m([\d.]+)s/.exec(t)!; return Number(m[1]) * 60 + Number(m[2]); });
      if (rc !== 0 || !tps) return reject(new Error(`pgbench ${host}:${port} ${mode} failed (rc ${rc}): ${err.slice(-400)}`));
      resolve({ tps: Number(tps[1]), latencyMs: lat ? Number(lat[1]) : NaN, clientCpu: secs.reduce((a, b) => a + b, 0) });
    });
  });
}

async function ensureTables(leaderAddr: string, pgpassFile: string): Promise<void> {
  const env = { ...process.env, PGPASSFILE: pgpassFile, PGSSLMODE: "disable" };
  const q = await run("psql", ["-X", "-A", "-t", "-h", leaderAddr, "-U", USER, "-d", DB, "-c",
    "select count(*) from pg_tables where tablename = 'pgbench_branches'"], { env });
  if (q.stdout.trim() === "1") {
    const n = await run("psql", ["-X", "-A", "-t", "-h", leaderAddr, "-U", USER, "-d", DB, "-c", "select count(*) from pgbench_branches"], { env });
    if (n.stdout.trim() === String(SCALE)) return;
  }
  await run("pgbench", ["-i", "-q", "-s", String(SCALE), "-h", leaderAddr, "-U", USER, DB], { env, timeout: 600000 });
}

function parseArgs(argv: string[]) {
  const o = { runs: 3, seconds: 15, label: "current", paths: [...PATHS] as PathName[], modes: Object.keys(MODES) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--seconds") o.seconds = Number(argv[++i]);
    else if (a === "--label") o.label = argv[++i];
    else if (a === "--paths") o.paths = argv[++i].split(",") as PathName[];
    else if (a === "--modes") o.modes = argv[++i].split(",");
    else if (/^\d+$/.test(a)) o.runs = Number(a);
    else throw new Error(`bench:pooled: unknown argument ${a}`);
  }
  for (const p of o.paths) if (!PATHS.includes(p)) throw new Error(`bench:pooled: --paths takes ${PATHS.join(",")}, not ${p}`);
  for (const m of o.modes) if (!MODES[m]) throw new Error(`bench:pooled: --modes takes ${Object.keys(MODES).join(",")}, not ${m}`);
  return o;
}

async function proxyInfo(): Promise<string[]> {
  const holder = (await vipHolders(layout.vips.proxy))[0];
  const other = byRole("proxy").find((p) => p.name !== holder)!;
  // the daemons' settings that decide the per-hop cost, so each label records what it measured
  const { stdout } = await run("bash", [path.join(__dirname, "..", "lab", "ssh.sh"), other.name,
    "pgbouncer --version | head -1; pgrep -c -x pgbouncer; grep -E '^(so_reuseport|auth_type|pool_mode|default_pool_size|server_reset_query) ' /etc/pgbouncer/pgbouncer.ini*; grep -cE '^ *nbthread' /etc/haproxy/haproxy.cfg || true"]);
  return stdout.trim().split("\n");
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const pgpassFile = pgpass();
  const leader = await patroniLeader();
  if (!leader) throw new Error("bench:pooled: no Patroni leader");
  const leaderAddr = byRole("postgres").find((m) => m.name === leader)!.address;
  const holders = await vipHolders(layout.vips.proxy);
  if (holders.length !== 1) throw new Error(`bench:pooled: the VIP should have one holder, has ${holders.join(",") || "none"}`);
  const holder = byRole("proxy").find((p) => p.name === holders[0])!;
  const other = byRole("proxy").find((p) => p.name !== holder.name)!;
  await ensureTables(leaderAddr, pgpassFile);
  const info = await proxyInfo();
  console.log(`bench:pooled: leader ${leader}, VIP on ${holder.name}, other proxy ${other.name}; ${info.join(" | ")}`);

  // the proxy whose daemons a row's traffic crosses
  const target: Record<PathName, { host: string; port: number; proxy?: string; netns?: string }> = {
    direct: { host: leaderAddr, port: PG_PORT },
    haproxy: { host: "127.0.0.1", port: HAPROXY_PORT, proxy: other.name, netns: other.name },
    pgbouncer: { host: other.address, port: BOUNCER_PORT, proxy: other.name },
    vip: { host: layout.vips.proxy, port: BOUNCER_PORT, proxy: holder.name },
  };
  const rows: Row[] = [];
  for (let r = 1; r <= o.runs; r++) {
    for (const mode of o.modes) {
      for (const p of o.paths) {
        const t = target[p];
        const proxyVm = t.proxy ?? other.name;
        const init = initPid(proxyVm);
        const before = { leader: cgroupUsec(leader), proxy: cgroupUsec(proxyVm), bouncer: procTicks(init, "pgbouncer"), haproxy: procTicks(init, "haproxy"), host: hostBusyTicks(), t: Date.now() };
        const res = await pgbench(t.host, t.port, mode, o.seconds, pgpassFile, t.netns ? initPid(t.netns) : undefined);
        const wall = (Date.now() - before.t) / 1000, hz = 100;
        const row: Row = {
          label: o.label, run: r, mode, path: p, tps: res.tps, latencyMs: res.latencyMs, load1: round(os.loadavg()[0]),
          cpu: {
            client: round(res.clientCpu / wall), leaderVm: round((cgroupUsec(leader) - before.leader) / 1e6 / wall),
            proxyVm: t.proxy ? round((cgroupUsec(proxyVm) - before.proxy) / 1e6 / wall) : 0,
            pgbouncer: t.proxy ? round((procTicks(init, "pgbouncer") - before.bouncer) / hz / wall) : 0,
            haproxy: t.proxy ? round((procTicks(init, "haproxy") - before.haproxy) / hz / wall) : 0,
            hostBusy: round((hostBusyTicks() - before.host) / hz / wall),
          },
        };
        rows.push(row);
        console.log(`bench:pooled: ${JSON.stringify(row)}`);
      }
    }
  }
  fs.rmSync(pgpassFile, { force: true });
  write(o, rows, { leader, holder: holder.name, other: other.name, info });
}

interface Meta { leader: string; holder: string; other: string; info: string[] }
interface Entry { label: string; command: string; date: string; loadEnd: number[]; meta: Meta; seconds: number; rows: Row[] }

function write(o: ReturnType<typeof parseArgs>, rows: Row[], meta: Meta): void {
  const jf = path.join(__dirname, "results-pooled.json");
  const prior: Entry[] = fs.existsSync(jf) ? JSON.parse(fs.readFileSync(jf, "utf8")).entries : [];
  const command = `npm run bench:pooled -- ${process.argv.slice(2).join(" ")}`.trim();
  const entry: Entry = { label: o.label, command, date: new Date().toISOString(), loadEnd: os.loadavg().map((x) => round(x)), meta, seconds: o.seconds, rows };
  const entries = [...prior.filter((e) => e.label !== o.label), entry];
  fs.writeFileSync(jf, JSON.stringify({ entries }, null, 2) + "\n");
  fs.writeFileSync(path.join(__dirname, "results-pooled.md"), markdown(entries));
}

function markdown(entries: Entry[]): string {
  const out = [
    "# The pooled path against a direct connection", "",
    `pgbench (${CLIENTS} clients, ${THREADS} threads, scale ${SCALE}) from the lab host, the same 2 cores as the VMs. Paths: **direct** = host → leader:${PG_PORT};`,
    `**haproxy** = the proxy's HAProxy only (pgbench in the network namespace of the proxy without the VIP, to 127.0.0.1:${HAPROXY_PORT});`,
    `**pgbouncer** = PgBouncer → HAProxy on the proxy without the VIP (its own address); **vip** = the whole pooled path, VIP → PgBouncer → HAProxy → leader.`,
    "Ratios are per run (each path measured within minutes of the direct row of the same run), then the median of them.",
    "CPU columns: CPU seconds per wall second (1.0 = one core) of the pgbench client, the leader VM (cgroup), the proxy VM crossed (cgroup), its pgbouncer and haproxy processes, and the whole host (2.0 = both cores busy).", "",
  ];
  for (const e of entries) {
    out.push(`## ${e.label}`, "", `\`${e.command}\` on ${e.date}; load average at the end ${e.loadEnd.join(" ")}; ${e.rows.length} pgbench runs of ${e.seconds} s.`,
      `Leader ${e.meta.leader}; VIP on ${e.meta.holder}; proxy without the VIP ${e.meta.other}. Proxy settings read back: ${e.meta.info.join("; ")}.`, "",
      "| mode | path | runs | median TPS | TPS per run | median ratio to direct | ratio per run | median latency ms | client CPU | leader VM CPU | proxy VM CPU | pgbouncer CPU | haproxy CPU | host busy | load1 |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    const modes = [...new Set(e.rows.map((r) => r.mode))], paths = [...new Set(e.rows.map((r) => r.path))];
    for (const m of modes) for (const p of paths) {
      const rs = e.rows.filter((r) => r.mode === m && r.path === p);
      if (!rs.length) continue;
      const ratios = rs.map((r) => { const d = e.rows.find((x) => x.mode === m && x.path === "direct" && x.run === r.run); return d ? round(r.tps / d.tps) : NaN; });
      const med = (f: (r: Row) => number) => round(median(rs.map(f)));
      out.push(`| ${m} | ${p} | ${rs.length} | ${med((r) => r.tps)} | ${rs.map((r) => Math.round(r.tps)).join(", ")} | ${ratios.some(isNaN) ? "n/a" : round(median(ratios))} | ${ratios.join(", ")} | ${med((r) => r.latencyMs)} | ` +
        `${med((r) => r.cpu.client)} | ${med((r) => r.cpu.leaderVm)} | ${med((r) => r.cpu.proxyVm)} | ${med((r) => r.cpu.pgbouncer)} | ${med((r) => r.cpu.haproxy)} | ${med((r) => r.cpu.hostBusy)} | ${med((r) => r.load1)} |`);
    }
    out.push("");
  }
  return out.join("\n");
}

if (require.main === module) main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
