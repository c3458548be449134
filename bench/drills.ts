// Failure drills on the lab: a writer runs through the VIP for the whole drill, a VM or daemon is
// made to fail, the failed part is brought back, and we measure what a user would notice.
// Used by the end-to-end tests (one run each) and by bench/run.ts (repeated runs, medians).
import { execFile, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import axios from "axios";
import { byRole, layout, STATE } from "../lab/stack";

const run = promisify(execFile);
const LAB = path.resolve(__dirname, "..", "lab");
const BENCH = __dirname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function ssh(name: string, cmd: string, timeoutMs = 15000): Promise<string> {
  const { stdout } = await run("bash", [path.join(LAB, "ssh.sh"), name, cmd], { timeout: timeoutMs });
  return stdout.trim();
}

export const crashVm = (name: string) => run("bash", [path.join(LAB, "vm.sh"), "crash", name]);
export const bootVm = (name: string) => run("bash", [path.join(LAB, "vm.sh"), "start", name], { timeout: 120000 });

/** Poll until `probe` is truthy; returns seconds waited. */
export async function until(what: string, probe: () => Promise<unknown>, timeoutS: number, stepMs = 250): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    try { if (await probe()) return (Date.now() - t0) / 1000; } catch { /* not yet */ }
    if (Date.now() - t0 > timeoutS * 1000) throw new Error(`timed out after ${timeoutS}s waiting for ${what}`);
    await sleep(stepMs);
  }
}

function secrets(): { passwords: Record<string, string> } {
  return JSON.parse(fs.readFileSync(path.join(STATE, "secrets.json"), "utf8"));
}

/** Basic-auth credentials of Patroni's REST API (its unsafe methods: PATCH /config, POST /switchover, …). */
export function patroniRestAuth(): { username: string; password: string } {
  return { username: "patroni", password: secrets().passwords.patroniRest };
}

function passwordFile(name: string): string {
  const f = path.join(STATE, `${name}.pw`);
  fs.writeFileSync(f, secrets().passwords[name], { mode: 0o600 });
  return f;
}

// ---- what the cluster looks like -------------------------------------------------------------

export interface Member { name: string; role: string; state: string; lag?: number | string }

/** Patroni's /cluster from the first member that answers. */
export async function patroni(exclude?: string): Promise<Member[]> {
  // a member cut off from etcd still answers with its last view of the cluster: ask the others
  for (const m of byRole("postgres").filter((x) => x.name !== exclude)) {
    try {
      const r = await axios.get(`http://${m.address}:8008/cluster`, { timeout: 1000 });
      return r.data.members as Member[];
    } catch { /* next member */ }
  }
  throw new Error("no Patroni member answers");
}

export async function patroniLeader(): Promise<string | undefined> {
  return (await patroni()).find((m) => m.role === "leader" && m.state === "running")?.name;
}

/** Leader plus every other member streaming (or running, as Patroni 3.0 reports replicas). */
export async function patroniHealthy(expected = byRole("postgres").length): Promise<boolean> {
  const ms = await patroni();
  return ms.length === expected && ms.filter((m) => m.role === "leader" && m.state === "running").length === 1
    && ms.every((m) => m.role === "leader" || ["streaming", "running"].includes(m.state) && typeof m.lag === "number");
}

export async function vipHolders(vip: string, nodes = byRole("proxy")): Promise<string[]> {
  const out: string[] = [];
  for (const n of nodes) {
    try { if ((await ssh(n.name, `ip -o -4 addr show | grep -c ' ${vip}/' || true`, 5000)) !== "0") out.push(n.name); } catch { /* down */ }
  }
  return out;
}

export async function redisMaster(): Promise<string | undefined> {
  for (const n of byRole("redis")) {
    try {
      const out = await ssh(n.name, `REDISCLI_AUTH="$(cat /etc/redis/hastack-cli.pass)" redis-cli -p 26379 SENTINEL get-master-addr-by-name hastack`, 5000);
      const addr = out.split("\n")[0];
      return byRole("redis").find((r) => r.address === addr)?.name;
    } catch { /* next */ }
  }
  return undefined;
}

async function redisRole(name: string): Promise<string> {
  return ssh(name, `REDISCLI_AUTH="$(cat /etc/redis/hastack-cli.pass)" redis-cli info replication | grep -E '^(role|master_link_status):' | tr -d '\\r' | tr '\\n' ' '`, 5000);
}

// ---- writers ---------------------------------------------------------------------------------

/** `t0`: the writer's own start (epoch seconds, after Python's start-up), which `acked` and `errors` times count from. */
export interface WriterResult { run: string; attempts: number; acked: [number, number][]; errors: [number, number, string][]; t0?: number }

/** The writer script and its target for one kind of store (the system python has psycopg2). */
function writerArgs(kind: "pg" | "redis"): string[] {
  return kind === "pg"
    ? [path.join(BENCH, "writer.py"), "--host", layout.vips.proxy, "--port", "6432", "--dbname", "workspad", "--user", "workspad",
       "--password-file", passwordFile("postgresApp")]
    : [path.join(BENCH, "redis_writer.py"), "--host", layout.vips.redis, "--port", "6380", "--password-file", passwordFile("redis")];
}

/** Run a writer script to its end and parse the JSON it prints. */
export function python<T>(args: string[], stdin?: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const p = spawn("/usr/bin/python3", args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "", err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("close", (code) => code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`${path.basename(args[0])} exited ${code}: ${err}`)));
    p.stdin.end(stdin ?? "");
  });
}

/** With `persistent`, one kept connection with a 30 s client-side timeout per write (Npgsql's default). */
const startWriter = (kind: "pg" | "redis", label: string, seconds: number, persistent = false) =>
  python<WriterResult>([...writerArgs(kind), "--seconds", String(seconds), "--run", label, ...(persistent ? ["--persistent", "--timeout", "30"] : [])]);

/** Acknowledged writes that are not in the store afterwards. */
const missingWrites = (kind: "pg" | "redis", w: WriterResult) =>
  python<number[]>([...writerArgs(kind), "--verify", "--run", w.run], JSON.stringify(w.acked.map(([s]) => s)));

/**
 * Longest stretch without an acknowledged write that overlaps the failure, in seconds; with
 * `runSeconds`, the stretch from the last acknowledged write to the end of the run counts too.
 */
export function outageSeconds(w: WriterResult, eventAt: number, runSeconds?: number): number {
  const times = [0, ...w.acked.map(([, t]) => t), ...(runSeconds !== undefined && w.acked.length && w.acked[w.acked.length - 1][1] >= eventAt ? [runSeconds] : [])];
  let worst = 0;
  for (let i = 1; i < times.length; i++) if (times[i] >= eventAt) worst = Math.max(worst, times[i] - Math.max(times[i - 1], eventAt));
  if (times[times.length - 1] < eventAt) return Infinity; // never recovered within the run
  return Math.round(worst * 10) / 10;
}

// ---- drills ----------------------------------------------------------------------------------

export interface DrillResult {
  drill: string;
  target: string;
  writeOutageSeconds: number;
  /** Longest stretch without an acknowledged write after the failed part came back (a second outage). */
  healOutageSeconds?: number;
  ackedWrites: number;
  lostWrites: number;
  recoverySeconds: number;
  notes: string[];
}

const EVENT_AT = 5;

async function drill(name: string, kind: "pg" | "redis", seconds: number, target: string,
  fail: () => Promise<void>, failedOver: () => Promise<unknown>, restore: () => Promise<void>,
  recovered: () => Promise<unknown>, persistent = false): Promise<DrillResult> {
  const label = `${name}-${Date.now()}`;
  const writer = startWriter(kind, label, seconds, persistent);
  await sleep(EVENT_AT * 1000);
  const t0 = Date.now();
  await fail();
  // the writer measures the outage; the failed part comes back only after the others took over
  // (a VM rebooted within the leader TTL would simply resume its role)
  const notes: string[] = [];
  await until(`${name}: failover away from ${target}`, failedOver, 90, 250)
    .then((secs) => notes.push(`takeover seen ${secs.toFixed(1)} s after the failure`), (e) => notes.push(String(e.message)));
  await sleep(2000);
  const healAt = EVENT_AT + (Date.now() - t0) / 1000;
  await restore();
  await until(`${name}: ${target} rejoined`, recovered, 180, 500);
  const recoverySeconds = Math.round((Date.now() - t0) / 100) / 10;
  const w = await writer;
  const missing = await missingWrites(kind, w);
  return {
    drill: name, target, writeOutageSeconds: outageSeconds(w, EVENT_AT, seconds), healOutageSeconds: outageSeconds(w, healAt, seconds), ackedWrites: w.acked.length,
    lostWrites: missing.length, recoverySeconds,
    notes: [...notes, ...(w.errors.length ? [`${w.errors.length} failed write attempts, first: ${w.errors[0][2]}`] : [])],
  };
}

/** Crash the Patroni leader's VM; bring it back; it must rejoin as a replica on its own. */
export async function leaderCrash(): Promise<DrillResult> {
  const leader = (await patroniLeader())!;
  return drill("patroni-leader-crash", "pg", 50, leader,
    async () => { await crashVm(leader); },
    async () => { const l = await patroniLeader(); return l && l !== leader; },
    async () => { await bootVm(leader); },
    () => patroniHealthy());
}

/** Stop PgBouncer on the VIP holder while keepalived keeps running: the login check must move the VIP. */
export async function pgbouncerStop(): Promise<DrillResult> {
  const [holder] = await vipHolders(layout.vips.proxy);
  return drill("pgbouncer-stop-on-vip-holder", "pg", 30, holder,
    async () => { await ssh(holder, "systemctl stop pgbouncer"); },
    async () => { const h = await vipHolders(layout.vips.proxy); return h.length === 1 && h[0] !== holder; },
    async () => { await ssh(holder, "systemctl start pgbouncer"); },
    async () => (await ssh(holder, "systemctl is-active pgbouncer keepalived | sort -u")) === "active" && (await vipHolders(layout.vips.proxy)).length === 1);
}

/**
 * PgBouncer on the VIP holder hangs (SIGSTOP: the process stays, its sockets stay open, nothing
 * answers). The writer keeps ONE connection with a 30 s client-side timeout, as an application's
 * pool does: the login check moves the VIP, and leaving the VIP resets the hung node's client
 * sessions, so the writer reconnects at once instead of waiting out its timeout.
 */
export async function pgbouncerHang(): Promise<DrillResult> {
  const [holder] = await vipHolders(layout.vips.proxy);
  return drill("pgbouncer-hang-on-vip-holder", "pg", 35, holder,
    async () => { await ssh(holder, "systemctl kill --signal=SIGSTOP pgbouncer"); },
    async () => { const h = await vipHolders(layout.vips.proxy); return h.length === 1 && h[0] !== holder; },
    async () => { await ssh(holder, "systemctl kill --signal=SIGCONT pgbouncer"); },
    async () => (await vipHolders(layout.vips.proxy)).length === 1 && (await ssh(holder, "systemctl is-active pgbouncer")) === "active",
    true);
}

/** Crash the VM that holds the PgBouncer VIP. */
export async function vipHolderCrash(): Promise<DrillResult> {
  const [holder] = await vipHolders(layout.vips.proxy);
  return drill("vip-holder-crash", "pg", 35, holder,
    async () => { await crashVm(holder); },
    async () => { const h = await vipHolders(layout.vips.proxy); return h.length === 1 && h[0] !== holder; },
    async () => { await bootVm(holder); },
    async () => (await ssh(holder, "systemctl is-active pgbouncer keepalived haproxy | sort -u")) === "active" && (await vipHolders(layout.vips.proxy)).length === 1);
}

/** Crash the Redis master's VM: Sentinel promotes a replica and HAProxy behind the VIP follows. */
export async function redisMasterCrash(): Promise<DrillResult> {
  const master = (await redisMaster())!;
  return drill("redis-master-crash", "redis", 40, master,
    async () => { await crashVm(master); },
    async () => { const m = await redisMaster(); return m && m !== master; },
    async () => { await bootVm(master); },
    async () => /role:slave .*master_link_status:up/.test(await redisRole(master)));
}

/**
 * Crash the WorksPad node that serves our client (ip_hash keeps one client on one node):
 * nginx must route around it. Measured with HTTPS writes through the balancer.
 */
export async function worksPadCrash(endpoint: string): Promise<DrillResult> {
  const http = axios.create({ timeout: 8000, httpsAgent: new (require("https").Agent)({ rejectUnauthorized: false }), validateStatus: () => true });
  const who = async () => (await http.get(`${endpoint}/health`)).data?.node as string;
  const node = await who();
  const acked: [number, number][] = [];
  const errors: [number, number, string][] = [];
  const t0 = Date.now();
  let seq = 0, stop = false;
  const nodesSeen = new Set<string>();
  const loop = (async () => {
    while (!stop) {
      seq++;
      const start = (Date.now() - t0) / 1000;
      try {
        const r = await http.post(`${endpoint}/api/notes`, `drill ${seq}`);
        if (r.status === 201) { acked.push([Number(r.data.id), (Date.now() - t0) / 1000]); nodesSeen.add(String(r.headers["set-cookie"] ?? "")); }
        else errors.push([seq, start, `HTTP ${r.status}`]);
      } catch (e) { errors.push([seq, start, String(e)]); }
      await sleep(100);
    }
  })();
  await sleep(EVENT_AT * 1000);
  const tc = Date.now();
  await crashVm(node);
  await sleep(15000);
  await bootVm(node);
  await until(`${node} healthy again`, async () => (await ssh(node, "curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:4430/health")) === "200", 120, 500);
  const recoverySeconds = Math.round((Date.now() - tc) / 100) / 10;
  await sleep(2000);
  stop = true;
  await loop;
  const w: WriterResult = { run: "workspad", attempts: seq, acked, errors };
  let lost = 0;
  for (const [id] of acked) if ((await http.get(`${endpoint}/api/notes/${id}`)).status !== 200) lost++;
  return {
    drill: "workspad-node-crash", target: node, writeOutageSeconds: outageSeconds(w, EVENT_AT), ackedWrites: acked.length,
    lostWrites: lost, recoverySeconds,
    notes: [`served by ${nodesSeen.size} node(s) during the drill`, ...(errors.length ? [`${errors.length} failed requests, first: ${errors[0][2]}`] : [])],
  };
}

// ---- partitions: VMs keep running, links are cut (nftables on both sides, so VRRP is cut too) ----

const DRILL_TABLE = "hastack_drill";

/** On `name`, drop everything from and to `others` (addresses). The lab host stays reachable for SSH. */
export async function cutOff(name: string, others: readonly string[]): Promise<void> {
  const set = others.join(", ");
  await ssh(name, [
    `nft -f - <<'EOF'`,
    `table inet ${DRILL_TABLE} {`,
    `  chain in { type filter hook input priority -10; ip saddr { ${set} } drop; }`,
    `  chain out { type filter hook output priority -10; ip daddr { ${set} } drop; }`,
    `}`,
    `EOF`,
  ].join("\n"));
}

export async function heal(names: readonly string[]): Promise<void> {
  await Promise.all(names.map((n) => ssh(n, `nft delete table inet ${DRILL_TABLE} 2>/dev/null || true`)));
}

/** Cut `group` off from `rest` (both directions, both sides). */
async function partition(group: readonly { name: string; address: string }[], rest: readonly { name: string; address: string }[]): Promise<void> {
  await Promise.all([
    ...group.map((g) => cutOff(g.name, rest.map((r) => r.address))),
    ...rest.map((r) => cutOff(r.name, group.map((g) => g.address))),
  ]);
}

const everyVm = () => layout.vms.map(({ name, address }) => ({ name, address }));

/**
 * The Patroni leader's VM keeps running but loses every link to the other VMs (proxies, members,
 * etcd). A replica takes over; the old leader must demote itself and, once the cut heals, rejoin
 * as a replica without a second outage. In async mode acknowledged writes may be lost (reported).
 */
export async function leaderPartition(): Promise<DrillResult> {
  const leader = (await patroniLeader())!;
  const l = everyVm().filter((v) => v.name === leader);
  const rest = everyVm().filter((v) => v.name !== leader);
  return drill("patroni-leader-partition", "pg", 75, leader,
    () => partition(l, rest),
    async () => (await patroni(leader)).some((m) => m.role === "leader" && m.state === "running" && m.name !== leader),
    async () => { await sleep(5000); await heal(everyVm().map((v) => v.name)); },
    () => patroniHealthy());
}

/** A replica member (its etcd and Patroni) is cut off from everyone: the leader must keep its key, writes must not stop. */
export async function etcdMemberPartition(): Promise<DrillResult> {
  const leader = (await patroniLeader())!;
  const victim = byRole("postgres").find((m) => m.name !== leader)!;
  const rest = everyVm().filter((v) => v.name !== victim.name);
  return drill("etcd-member-partition", "pg", 45, victim.name,
    () => partition([victim], rest),
    async () => { await sleep(10000); return true; },
    async () => { await heal(everyVm().map((v) => v.name)); },
    () => patroniHealthy());
}

/** The two proxies lose each other (VRRP adverts too) while both still reach clients and members. */
export async function proxyPartition(): Promise<DrillResult> {
  const [a, b] = byRole("proxy");
  return drill("proxy-pair-partition", "pg", 45, `${a.name}|${b.name}`,
    () => partition([a], [b]),
    async () => { await sleep(10000); return true; },
    async () => { await heal([a.name, b.name]); },
    async () => (await vipHolders(layout.vips.proxy)).length === 1);
}
