// The rolling restart (pg-rolling-restart.py, as `pulumi up` runs it) on a real three-member cluster: one
// etcd, three Patroni 3.0.2 members with PostgreSQL 15 on 127.0.0.2-4, a writer and a leader watch running
// throughout. max_connections is raised 200 → 300 (replicas, switchover) and right after lowered 300 → 200
// (the old leader is a replica then): every member must run the target value afterwards. Needs root.
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { resolvePatroniClusterSettings, ResolvedPatroniClusterSettings } from "../../components/patroniCluster/args";
import * as r from "../../components/patroniCluster/render";
import { rollingRestartCommand } from "../../components/patroniCluster/rollingRestart";
import { freePort } from "../support/ports";

const SUPER_PW = `jhYg/=\\F'"$s`;
const REST_PW = `jhYg/=\\F'"$a`;
const MEMBERS = [{ name: "t1", address: "127.0.0.2" }, { name: "t2", address: "127.0.0.3" }, { name: "t3", address: "127.0.0.4" }];
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

async function until(probe: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (probe()) return true;
    await sleep(300);
  }
  return false;
}

interface Watch { acked: [number, number][]; errors: [number, number, string][]; rounds: number; two_leaders: [number, string[]][] }

describe("rolling restart of PostgreSQL on a real three-member Patroni cluster (needs root; etcd, patroni, postgresql on loopback)", () => {
  let tmp: string;
  let s: ResolvedPatroniClusterSettings;
  let etcd: ChildProcess | undefined;
  const patronis = new Map<string, ChildProcess>();
  let authFile: string;
  let pwFile: string;
  const work = (name: string) => path.join(tmp, name);
  const dataDir = (name: string) => path.join(tmp, name, "data");
  const rest = (m: { name: string; address: string }) => r.restUrl(m, s.restApiPort);
  const get = (url: string): any => {
    const out = spawnSync("curl", ["-s", "--max-time", "3", url], { encoding: "utf8" }).stdout;
    try { return JSON.parse(out); } catch { return undefined; }
  };
  const psql = (host: string, sql: string) => spawnSync("psql", ["-X", "-tA", "-h", host, "-p", String(s.pgPort), "-U", s.superuser, "-d", "postgres", "-c", sql],
    { env: { ...process.env, PGPASSWORD: SUPER_PW, PGCONNECT_TIMEOUT: "3" }, encoding: "utf8" });
  const controldata = (name: string): Record<string, string> => Object.fromEntries(
    spawnSync("runuser", ["-u", "postgres", "--", `${r.binDir(15)}/pg_controldata`, "-D", dataDir(name)], { encoding: "utf8", cwd: "/" }).stdout
      .split("\n").map((l) => l.split(/:\s+/)).filter((kv) => kv.length === 2));
  const logs = () => MEMBERS.map((m) => fs.readdirSync(work(m.name)).filter((f) => f.endsWith(".log"))
    .map((f) => `--- ${m.name}/${f}\n${fs.readFileSync(path.join(work(m.name), f), "utf8").slice(-2500)}`).join("\n")).join("\n");
  /** Per member: role, pending_restart, the running value, and pg_controldata's (the primary's value, replayed). */
  const view = () => MEMBERS.map((m) => {
    const st = get(`${rest(m)}/patroni`) ?? {};
    return { name: m.name, role: st.role, state: st.state, pending: !!st.pending_restart, running: psql(m.address, "SHOW max_connections").stdout.trim(),
      controldata: controldata(m.name)["max_connections setting"] };
  });
  /** runuser forks: Patroni is its child. */
  const patroniPid = (name: string) => { const pid = patronis.get(name)!.pid; return Number(fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)[0]); };
  const leaders = () => MEMBERS.filter((m) => ["master", "primary"].includes(get(`${rest(m)}/patroni`)?.role));
  const streaming = () => (get(`${rest(leaders()[0] ?? MEMBERS[0])}/patroni`)?.replication ?? []).filter((x: any) => x.state === "streaming").length;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-pgrr-"));
    fs.chmodSync(tmp, 0o755);
    const [pgPort, restApiPort, etcdClientPort, etcdPeerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    s = resolvePatroniClusterSettings({ nodes: MEMBERS, pgPort, restApiPort, etcdClientPort, etcdPeerPort, failoverProfile: "aggressive" }, "127.0.0.0/16");
    authFile = path.join(tmp, "rest.curl");
    fs.writeFileSync(authFile, r.renderRestCurlConfig(REST_PW), { mode: 0o600 });
    pwFile = path.join(tmp, "super.pw");
    fs.writeFileSync(pwFile, SUPER_PW, { mode: 0o600 });

    // one etcd member is enough for the DCS here (its own quorum)
    const etcdEnv = r.parseEnvFile(r.renderEtcdEnv({ member: MEMBERS[0], nodes: [MEMBERS[0]], clientPort: etcdClientPort, peerPort: etcdPeerPort,
      dataDir: path.join(tmp, "etcd"), clusterName: s.clusterName }));
    let etcdLog = "";
    etcd = spawn("/usr/bin/etcd", [], { env: { PATH: process.env.PATH, ...etcdEnv }, stdio: ["ignore", "pipe", "pipe"] });
    etcd.stderr!.on("data", (d) => (etcdLog = (etcdLog + d).slice(-3000)));
    if (!(await until(() => spawnSync("bash", ["-c", r.etcdHealthProbe([MEMBERS[0]], etcdClientPort)]).status === 0, 30000))) throw new Error(`etcd not healthy:\n${etcdLog}`);

    for (const m of MEMBERS) {
      const c = yaml.load(r.renderPatroniConfig(s, m, { superuser: SUPER_PW, replication: SUPER_PW + "r", rewind: SUPER_PW + "w", restApi: REST_PW, etcd: "unused" },
        undefined, [], { proxies: ["127.0.0.1"] })) as any;
      c.etcd3 = { hosts: [`${MEMBERS[0].address}:${etcdClientPort}`] };
      delete c.tags[r.ETCD_AUTH_TAG];
      // three members on one machine: each its own address only (not 127.0.0.1), data dir, socket dir and log
      c.postgresql.listen = `${m.address}:${s.pgPort}`;
      c.postgresql.data_dir = dataDir(m.name);
      c.postgresql.pgpass = path.join(work(m.name), "pgpass");
      c.postgresql.parameters.unix_socket_directories = work(m.name);
      c.log = { dir: work(m.name), level: "INFO" };
      fs.mkdirSync(work(m.name), { mode: 0o700 });
      fs.writeFileSync(path.join(work(m.name), "config.yml"), yaml.dump(c), { mode: 0o600 });
      execFileSync("chown", ["-R", "postgres:postgres", work(m.name)]);
    }
    const start = (name: string) => {
      // cwd "/": postgres cannot read the test's working directory (pitfall: its start fails with EACCES)
      patronis.set(name, spawn("runuser", ["-u", "postgres", "--", "patroni", path.join(work(name), "config.yml")], { stdio: "ignore", cwd: "/" }));
    };
    start("t1");
    if (!(await until(() => leaders().length === 1, 150000))) throw new Error(`t1 never led:\n${logs()}`);
    start("t2");
    start("t3");
    if (!(await until(() => streaming() === 2, 150000))) throw new Error(`replicas never streamed:\n${logs()}`);
  }, 330000);

  afterAll(async () => {
    for (const p of patronis.values()) if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
    await until(() => [...patronis.values()].every((p) => p.exitCode !== null || p.signalCode !== null), 30000);
    for (const m of MEMBERS) spawnSync("runuser", ["-u", "postgres", "--", `${r.binDir(15)}/pg_ctl`, "-D", dataDir(m.name), "-m", "immediate", "stop"], { cwd: "/" });
    if (etcd && etcd.exitCode === null) etcd.kill("SIGKILL");
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  interface Run { code: number | null; stdout: string; stderr: string }
  const runBash = (script: string) => new Promise<Run>((res) => {
    const p = spawn("bash", ["-c", `set -eu\n${script}`]);
    let so = "";
    let se = "";
    p.stdout.on("data", (d) => (so += d));
    p.stderr.on("data", (d) => (se += d));
    p.on("close", (code) => res({ code, stdout: so, stderr: se }));
  });

  /** PATCH max_connections and run the rolling restart as `pulumi up` does. */
  async function change(maxConnections: number): Promise<Run> {
    // as `pulumi up` does: each member's config.yml changes (its bootstrap.dcs names the value) and Patroni is
    // reloaded (SIGHUP), then the PATCH, then the rolling restart
    for (const m of MEMBERS) {
      const f = path.join(work(m.name), "config.yml");
      const c = yaml.load(fs.readFileSync(f, "utf8")) as any;
      c.bootstrap.dcs.postgresql.parameters.max_connections = maxConnections;
      fs.writeFileSync(f, yaml.dump(c), { mode: 0o600 });
      process.kill(patroniPid(m.name), "SIGHUP");
    }
    const patch = spawnSync("bash", ["-c", `set -eu\n${r.patchConfigScript(rest(MEMBERS[0]), authFile)}`], { input: r.renderDynamicConfigJson({ ...s, maxConnections }), encoding: "utf8" });
    expect([patch.status, patch.stderr]).toEqual([0, ""]);
    return runBash(rollingRestartCommand({ restUrls: MEMBERS.map(rest), loopWaitSeconds: s.loopWait, waitSeconds: 60, authFile }));
  }

  /** A plain Patroni switchover to the other replica with the most WAL, as an operator would ask for it. */
  async function switchover(): Promise<Run> {
    const leader = leaders()[0];
    const cand = MEMBERS.find((m) => m.name !== leader.name)!;
    let res: Run = { code: null, stdout: "", stderr: "" };
    // Patroni refuses ("no good candidates") while the candidate lags; on a loaded machine ask again
    for (let i = 0; i < 3 && leaders()[0]?.name !== cand.name; i++) {
      if (i > 0) await sleep(3000);
      res = await runBash(`curl -s --max-time 60 -K '${authFile}' -XPOST -H 'Content-Type: application/json' -d '${JSON.stringify({ leader: leader.name, candidate: cand.name })}' ${rest(leader)}/switchover`);
      await until(() => leaders().map((m) => m.name).join() === cand.name, 20000);
    }
    await until(() => streaming() === 2, 60000);
    return res;
  }

  /** `action` with the writer and the leader watch running throughout; what the writer saw, and the members after. */
  /** What every change must end in: the command succeeded, every member runs `value` with no restart pending,
   * no acknowledged write lost, never two leaders. */
  function expectSafeChange(c: Awaited<ReturnType<typeof underWriter>>, value: string) {
    const context = { run: c.run, view: c.view, errors: c.watch.errors.slice(0, 5) };
    expect([c.run.code, c.run.stderr, context]).toEqual([0, "", context]);
    expect(c.view.map((v) => [v.name, v.running, v.pending])).toEqual(MEMBERS.map((m) => [m.name, value, false]));
    expect(c.lost).toEqual([]);
    expect(c.watch.acked.length).toBeGreaterThan(20);
    expect(c.watch.two_leaders).toEqual([]);
  }

  async function underWriter(label: string, action: () => Promise<Run>) {
    const watcher = spawn("/usr/bin/python3", [path.join(__dirname, "pg_watch.py"),
      JSON.stringify({ hosts: MEMBERS.map((m) => m.address), port: s.pgPort, user: s.superuser, password_file: pwFile, run: label })], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    watcher.stdout!.on("data", (d) => (out += d));
    watcher.stderr!.on("data", (d) => (err += d));
    if (!(await until(() => out.includes('"ready"'), 30000))) throw new Error(`the writer never started: ${err}`);
    await sleep(1000);
    const t = Date.now();
    const run = await action();
    const seconds = (Date.now() - t) / 1000;
    console.log(`${label} (${seconds} s, exit ${run.code}):\n${run.stdout}${run.stderr}`);
    await sleep(1000);
    watcher.stdin!.end();
    await until(() => watcher.exitCode !== null, 30000);
    const w = JSON.parse(out.trim().split("\n").pop()!) as Watch;
    // the longest time between two acknowledged writes: the pause a client saw
    const pause = w.acked.slice(1).reduce((mx, [, at], i) => Math.max(mx, at - w.acked[i][1]), 0);
    console.log(`${label}: longest pause between acknowledged writes ${pause.toFixed(1)} s; ${w.acked.length} writes acknowledged, ${w.errors.length} failed (first: ${JSON.stringify(w.errors[0] ?? null)}), ${w.rounds} leader-watch rounds`);
    const leader = leaders();
    const stored = new Set(psql(leader[0]?.address ?? MEMBERS[0].address, `SELECT id FROM watch_writes WHERE run = '${label}'`).stdout.trim().split("\n").map(Number));
    return { run, seconds, pause, watch: w, lost: w.acked.filter(([id]) => !stored.has(id)).map(([id]) => id), view: view(), leaders: leader.map((m) => m.name) };
  }

  it("a plain switchover under the writer (the lab's drill does one first; the pause to compare with)", async () => {
    const before = leaders().map((m) => m.name);
    const c = await underWriter("plain switchover", switchover);
    expect([c.run.code, c.lost, c.watch.two_leaders]).toEqual([0, [], []]);
    expect(c.leaders).toHaveLength(1);
    expect(c.leaders).not.toEqual(before);
  }, 90000);

  it("raising max_connections 200 → 300 under a writer: every member runs 300, no acknowledged write lost, never two leaders", async () => {
    const before = leaders().map((m) => m.name);
    const c = await underWriter("raise to 300", () => change(300));
    expectSafeChange(c, "300");
    expect(c.watch.rounds).toBeGreaterThan(10);
    // the raise ends with a switchover: the old leader is a replica now (the case the lowering must handle)
    expect(c.leaders).toHaveLength(1);
    expect(c.leaders).not.toEqual(before);
  }, 150000);

  it("lowering max_connections 300 → 200 right after (the old leader is a replica), with a reload landing in a replica's restart: every member runs 200, no acknowledged write lost, never two leaders", async () => {
    // Patroni reloads its config (a SIGHUP, or a dynamic-config change) while the first restarted replica's
    // PostgreSQL is starting, as can happen under load: Patroni 3.0.2 then clears that member's pending_restart
    // although it started with pg_controldata's 300
    const leader = leaders()[0].name;
    let hupped: string | undefined;
    const poller = setInterval(() => {
      if (hupped) return;
      for (const m of MEMBERS.filter((x) => x.name !== leader)) {
        if (get(`${rest(m)}/patroni`)?.state === "starting") {
          hupped = m.name;
          process.kill(patroniPid(m.name), "SIGHUP");
          return;
        }
      }
    }, 100);
    const c = await underWriter("lower to 200", () => change(200)).finally(() => clearInterval(poller));
    console.log(`SIGHUP while starting: ${hupped ?? "none (the restart was never seen starting)"}`);
    expectSafeChange(c, "200");
    expect(c.leaders).toHaveLength(1);
  }, 150000);
});
