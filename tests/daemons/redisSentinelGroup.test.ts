// Real-daemon checks for everything RedisSentinelGroup renders. Needs root (keepalived -t, haproxy -c as on the hosts).
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { ResolvedRedisSentinelGroupSettings, resolveRedisSentinelGroupSettings } from "../../components/redisSentinelGroup/args";
import {
  REDIS_PATHS, renderHaproxyCfg, renderHealthScript, renderKeepalivedCheck, renderRedisApplyScript, renderRedisMain, renderRedisManaged,
  renderRedisManagedCheck, renderRedisKeepalived, renderSentinelConf, renderSentinelSetScript, sentinelAuthPass, renderRedisAcl,
} from "../../components/redisSentinelGroup/render";
import { freePort } from "../support/ports";

const SPECIAL = `jhYg/=\\F'"$`;
const SUBNET = "10.213.7.0/24";
const NODES = [41, 42, 43].map((n) => ({ name: `redis${n - 40}`, address: `10.213.7.${n}` }));

function need(bin: string): void {
  const r = spawnSync("sh", ["-c", `command -v ${bin}`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${bin} is not installed; these daemon tests need it`);
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** redis-cli against loopback with the password from the environment (as on the hosts), never -a. */
function cli(port: number, args: string[], auth: string | null = SPECIAL, input?: string): string {
  const env = { ...process.env };
  delete env.REDISCLI_AUTH;
  if (auth !== null) env.REDISCLI_AUTH = auth;
  const r = spawnSync("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { env, encoding: "utf8", input, timeout: 5000 });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.replace(/\r/g, "").trim();
}

async function waitUntil(what: string, ok: () => boolean, ms = 20000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (ok()) return;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("RedisSentinelGroup rendered files on the real daemons (needs root)", () => {
  let dir: string;
  let s: ResolvedRedisSentinelGroupSettings;
  let replicaPort: number;
  const procs: ChildProcess[] = [];
  const start = (bin: string, argv: string[]) => {
    const p = spawn(bin, argv, { stdio: "ignore" });
    procs.push(p);
    return p;
  };
  const rt = (tag: string) => {
    const d = path.join(dir, tag);
    fs.mkdirSync(d, { recursive: true });
    return { dir: d, pidfile: path.join(d, "pid"), logfile: path.join(d, "log") };
  };

  beforeAll(async () => {
    if (process.getuid && process.getuid() !== 0) throw new Error("daemon tests need root");
    for (const b of ["redis-server", "redis-sentinel", "redis-cli", "haproxy", "keepalived"]) need(b);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-redis-test-"));
    s = resolveRedisSentinelGroupSettings({ enabled: true, nodes: NODES, port: await freePort(), sentinelPort: await freePort(),
      haproxyPort: await freePort() }, SUBNET)!;
    replicaPort = await freePort();
    fs.writeFileSync(path.join(dir, "pass"), SPECIAL);
    fs.writeFileSync(path.join(dir, "pass.sentinel"), sentinelAuthPass(SPECIAL));
  });

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
    await sleep(500);
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** redis.conf (include + optional replicaof) and hastack.conf for one loopback instance. */
  function writeRedis(tag: string, port: number, master?: number): string {
    const r = rt(tag);
    const managed = path.join(r.dir, "hastack.conf");
    const acl = path.join(r.dir, "users.acl");
    fs.writeFileSync(acl, renderRedisAcl(SPECIAL));
    fs.writeFileSync(managed, renderRedisManaged({ ...s, port }, NODES[0], SPECIAL, r, ["127.0.0.1"], acl));
    const main = path.join(r.dir, "redis.conf");
    fs.writeFileSync(main, master === undefined ? renderRedisMain(undefined, 0, managed)
      : renderRedisMain("127.0.0.1", master, managed));
    return main;
  }

  it("redis-server runs the rendered files with the special password; a replica logs in with masterauth", async () => {
    start("redis-server", [writeRedis("master", s.port), "--daemonize", "no", "--supervised", "no"]);
    await waitUntil("master", () => cli(s.port, ["ping"]) === "PONG");
    expect(cli(s.port, ["ping"], null)).toMatch(/NOAUTH/);
    expect(cli(s.port, ["ping"], "wrong")).not.toBe("PONG");
    expect(cli(s.port, ["config", "get", "appendonly"])).toBe("appendonly\nyes");

    start("redis-server", [writeRedis("replica", replicaPort, s.port), "--daemonize", "no", "--supervised", "no"]);
    await waitUntil("replica", () => cli(replicaPort, ["ping"]) === "PONG");
    await waitUntil("replication", () => cli(s.port, ["info", "replication"]).includes("connected_slaves:1"));
    await waitUntil("replica link up", () => cli(replicaPort, ["info", "replication"]).includes("master_link_status:up"));
  });

  it("the staged check accepts the rendered hastack.conf and refuses a broken one", () => {
    const good = path.join(dir, "managed-good.conf");
    const bad = path.join(dir, "managed-bad.conf");
    const acl = path.join(dir, "check-users.acl");
    fs.writeFileSync(acl, renderRedisAcl(SPECIAL));
    fs.writeFileSync(good, renderRedisManaged(s, NODES[0], SPECIAL, rt("check"), ["127.0.0.1"], acl));
    fs.writeFileSync(bad, `${fs.readFileSync(good, "utf8")}requirepass "unterminated\n`);
    const run = (f: string) => spawnSync("sh", ["-euc", renderRedisManagedCheck()], { env: { ...process.env, NEW: f }, encoding: "utf8" });
    const ok = run(good);
    expect({ status: ok.status, stderr: ok.status === 0 ? "" : ok.stderr }).toEqual({ status: 0, stderr: "" });
    expect(run(bad).status).not.toBe(0);
  });

  it("after CONFIG REWRITE, the apply step's strip lets hastack.conf win again and keeps replicaof", async () => {
    expect(cli(replicaPort, ["config", "rewrite"])).toBe("OK");
    const main = path.join(dir, "replica", "redis.conf");
    const rewritten = fs.readFileSync(main, "utf8");
    expect(rewritten).toMatch(/^masterauth /m);
    // with an aclfile, users are never copied into redis.conf (they would be defined twice at the next start)
    expect(rewritten).not.toMatch(/^user /m);
    // a reboot right after a failover starts Redis from exactly this file
    const reboot = spawnSync("sh", ["-euc", renderRedisManagedCheck()], { env: { ...process.env, NEW: main }, encoding: "utf8" });
    expect({ status: reboot.status, stderr: reboot.status === 0 ? "" : reboot.stderr }).toEqual({ status: 0, stderr: "" });
    const strip = renderRedisApplyScript().split("\n")[0].replace(REDIS_PATHS.main, main);
    expect(spawnSync("sh", ["-euc", strip]).status).toBe(0);
    const after = fs.readFileSync(main, "utf8");
    expect(after).not.toMatch(/^(requirepass|masterauth|port|bind|dir|user default) /m);
    expect(after).toMatch(new RegExp(`^replicaof 127\\.0\\.0\\.1 ${s.port}$`, "m"));
    expect(after).toContain(`include ${path.join(dir, "replica", "hastack.conf")}`);
  });

  it("redis-sentinel runs the rendered sentinel.conf, answers who the master is, and SENTINEL SET applies changes", async () => {
    const r = rt("sentinel");
    const conf = path.join(r.dir, "sentinel.conf");
    fs.writeFileSync(conf, renderSentinelConf(s, NODES[0], SPECIAL, "127.0.0.1", r, ["127.0.0.1"]));
    fs.chmodSync(conf, 0o600);
    const first = start("redis-sentinel", [conf, "--daemonize", "no"]);
    await waitUntil("sentinel", () => cli(s.sentinelPort, ["ping"]) === "PONG");
    expect(cli(s.sentinelPort, ["ping"], null)).toMatch(/NOAUTH/);
    expect(cli(s.sentinelPort, ["SENTINEL", "get-master-addr-by-name", s.masterName])).toBe(`127.0.0.1\n${s.port}`);
    // the Sentinel logs in to the master with auth-pass and finds the replica
    await waitUntil("sentinel to see the replica", () => /num-slaves\n1/.test(cli(s.sentinelPort, ["SENTINEL", "master", s.masterName])));

    const changed = { ...s, quorum: 1, downAfterMs: 7000 };
    const set = spawnSync("sh", ["-euc", renderSentinelSetScript(changed, "127.0.0.1", s.sentinelPort, path.join(dir, "pass"))], { encoding: "utf8" });
    expect({ status: set.status, stderr: set.stderr }).toEqual({ status: 0, stderr: "" });
    const master = cli(s.sentinelPort, ["SENTINEL", "master", s.masterName]);
    expect(master).toMatch(/\nquorum\n1(\n|$)/);
    expect(master).toMatch(/\ndown-after-milliseconds\n7000(\n|$)/);
    expect(master).toContain("flags\nmaster");

    // Sentinel has rewritten its file by now; it must start again from it (a VM reboot)
    first.kill("SIGTERM");
    await waitUntil("sentinel to stop", () => first.exitCode !== null || first.signalCode !== null);
    const again = start("redis-sentinel", [conf, "--daemonize", "no"]);
    await waitUntil("sentinel to restart from its rewritten file", () => cli(s.sentinelPort, ["ping"]) === "PONG");
    expect(again.exitCode).toBeNull();
    expect(cli(s.sentinelPort, ["SENTINEL", "get-master-addr-by-name", s.masterName])).toBe(`127.0.0.1\n${s.port}`);
  });

  it("haproxy -c accepts the production haproxy.cfg", () => {
    const f = path.join(dir, "haproxy-prod.cfg");
    fs.writeFileSync(f, renderHaproxyCfg(s, SPECIAL));
    const r = spawnSync("haproxy", ["-c", "-f", f], { encoding: "utf8" });
    expect({ status: r.status, stderr: r.status === 0 ? "" : r.stderr + r.stdout }).toEqual({ status: 0, stderr: "" });
  });

  it("haproxy logs in with the special password and forwards only to the master", async () => {
    const f = path.join(dir, "haproxy-live.cfg");
    fs.writeFileSync(f, renderHaproxyCfg(s, SPECIAL, {
      global: ["maxconn 100"], bind: "127.0.0.1",
      servers: [{ name: "replica", address: "127.0.0.1", port: replicaPort }, { name: "master", address: "127.0.0.1", port: s.port }],
    }));
    expect(spawnSync("haproxy", ["-c", "-q", "-f", f]).status).toBe(0);
    start("haproxy", ["-db", "-f", f]);
    await waitUntil("haproxy to reach the master", () => cli(s.haproxyPort, ["ping"]) === "PONG");
    // HAProxy starts with every server UP; the replica fails role:master and is out after fall 2 × inter 1s
    await sleep(3000);
    for (let i = 0; i < 5; i++) expect(cli(s.haproxyPort, ["info", "replication"])).toContain("role:master");
  });

  it("the health and keepalived check scripts parse", () => {
    for (const text of [renderHealthScript(s), renderKeepalivedCheck(s)]) {
      const f = path.join(dir, "script.sh");
      fs.writeFileSync(f, text);
      expect(spawnSync("sh", ["-n", f]).status).toBe(0);
    }
  });

  it.each([0, 1, 2])("keepalived -t accepts node %i's config with the special password", (i) => {
    const withVip = resolveRedisSentinelGroupSettings({ enabled: true, nodes: NODES, vip: "10.213.7.70" }, SUBNET)!;
    const f = path.join(dir, `keepalived-${i}.conf`);
    // keepalived -t checks the script exists and is safe; point it at an executable root-owned copy
    const check = path.join(dir, "check.sh");
    fs.writeFileSync(check, renderKeepalivedCheck(withVip), { mode: 0o700 });
    fs.writeFileSync(f, renderRedisKeepalived(withVip, i, SPECIAL).replace(REDIS_PATHS.keepalivedCheck, check));
    const r = spawnSync("keepalived", ["-t", "-f", f], { encoding: "utf8" });
    expect({ status: r.status, stderr: r.status === 0 ? "" : r.stderr }).toEqual({ status: 0, stderr: "" });
  });
});
