// Rotating a Redis group's passwords (components/redisSentinelGroup/rotation.ts) on real redis-server, redis-sentinel
// 7.0 and HAProxy: three nodes on loopback addresses of their own (127.0.0.51-53), files rendered as on the hosts,
// the steps run in the order `pulumi up` runs them (add everywhere, switch everywhere, the files, HAProxy's reload,
// Redis restarted one node at a time, drop everywhere), hastack's own password and the application's both changed.
// A writer goes through HAProxy as the application all along, with the new password once it is accepted, else the
// old one (an application being switched over): no acknowledged write lost. Afterwards the old passwords are
// refused, the new ones accepted, a restarted Sentinel keeps them, and the Sentinels still fail over (they vote
// through logins to each other).
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ResolvedRedisSentinelGroupSettings, resolveRedisSentinelGroupSettings } from "../../components/redisSentinelGroup/args";
import {
  renderHaproxyCfg, renderRedisAcl, renderRedisMain, renderRedisManaged, renderSentinelConf, renderSentinelSetScript, sentinelAuthPass,
} from "../../components/redisSentinelGroup/render";
import { RotationPhase, rotationScript, rotationStdin } from "../../components/redisSentinelGroup/rotation";
import { freePort } from "../support/ports";

const OLD = { internal: `jhYg/=\\F'"$ old`, app: `app'"/=$\\old` };
const NEW = { internal: `n3w/=\\F'"$ internal`, app: `app'"/=$\\new` };
const G = [51, 52, 53].map((n) => ({ name: `rot${n - 50}`, address: `127.0.0.${n}` }));

jest.setTimeout(8 * 60 * 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, s = 60): Promise<void> {
  const end = Date.now() + s * 1000;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${s} s`);
    await sleep(250);
  }
}

describe("rotating a Redis group's passwords under a writer (real Redis, Sentinel 7.0 and HAProxy on loopback; needs root)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-redis-rotation-"));
  let g: ResolvedRedisSentinelGroupSettings;
  const redis = new Map<string, ChildProcess>();
  const sentinels = new Map<string, ChildProcess>();
  let haproxy: ChildProcess;
  const P = (h: { name: string }) => {
    const d = path.join(dir, h.name);
    return { dir: d, pidfile: path.join(d, "pid"), logfile: path.join(d, "log"), main: path.join(d, "redis.conf"), managed: path.join(d, "hastack.conf"),
      acl: path.join(d, "users.acl"), pass: path.join(d, "cli.pass"), sentinel: path.join(d, "s", "sentinel.conf"), sdir: path.join(d, "s") };
  };
  const haproxyCfg = path.join(dir, "haproxy.cfg");

  const cli = (h: { address: string }, port: number, args: string[], auth: string, user?: string) => {
    const r = spawnSync("redis-cli", ["-h", h.address, "-p", String(port), ...(user ? ["--user", user] : []), ...args],
      { env: { ...process.env, REDISCLI_AUTH: auth }, encoding: "utf8", timeout: 15000 });
    return `${r.stdout ?? ""}${r.stderr ?? ""}`.replace(/\r/g, "").trim();
  };
  const master = (pw: string) => cli(G[0], g.sentinelPort, ["SENTINEL", "get-master-addr-by-name", g.masterName], pw).split("\n")[0];
  const field = (h: { address: string }, pw: string, f: string) => {
    const l = cli(h, g.sentinelPort, ["SENTINEL", "master", g.masterName], pw).split("\n");
    return l[l.indexOf(f) + 1];
  };
  const replicaReady = (h: { address: string }, pw: string) => {
    const i = cli(h, g.port, ["info", "replication"], pw);
    return i.includes("role:master") || (i.includes("master_link_status:up") && i.includes("master_sync_in_progress:0"));
  };

  /** The files a deploy writes on a node for these passwords (redis.conf only once, as on the hosts). */
  function writeFiles(h: { name: string; address: string }, pw: typeof OLD, masterAddress?: string): void {
    const p = P(h);
    fs.mkdirSync(p.sdir, { recursive: true });
    fs.writeFileSync(p.pass, pw.internal, { mode: 0o600 });
    fs.writeFileSync(`${p.pass}.sentinel`, sentinelAuthPass(pw.internal), { mode: 0o600 });
    fs.writeFileSync(p.acl, renderRedisAcl(g, pw.app, pw.internal), { mode: 0o640 });
    fs.writeFileSync(p.managed, renderRedisManaged(g, h, pw.internal, p, [h.address], p.acl), { mode: 0o640 });
    if (!fs.existsSync(p.main)) fs.writeFileSync(p.main, renderRedisMain(masterAddress, g.port, p.managed), { mode: 0o640 });
  }
  function writeHaproxy(pw: typeof OLD): void {
    fs.writeFileSync(haproxyCfg, renderHaproxyCfg(g, pw.internal, { global: ["maxconn 200"], bind: G[0].address,
      servers: G.map((h) => ({ name: h.name, address: h.address, port: g.port })) }));
  }
  const alive = (c?: ChildProcess) => c !== undefined && c.exitCode === null && c.signalCode === null;
  const startRedis = (h: { name: string }) => {
    if (alive(redis.get(h.name))) throw new Error(`${h.name} still runs`);
    redis.set(h.name, spawn("redis-server", [P(h).main, "--daemonize", "no"], { stdio: "ignore" }));
  };
  async function restartRedis(h: { name: string; address: string }, pw: string): Promise<void> {
    const p = redis.get(h.name)!;
    // as the hosts' restart (renderRedisApplyScript): Redis drops a SIGTERM that lands while it writes its initial AOF
    // after a full sync ("Writing initial AOF, can't exit", seen here in CI and in a run alone), so send it again
    // every 5 s until the process ends; the timeout error shows the end of its log
    const stopped = () => p.exitCode !== null || p.signalCode !== null;
    const end = Date.now() + 90000;
    while (!stopped()) {
      if (Date.now() > end) {
        const log = fs.existsSync(P(h).logfile) ? fs.readFileSync(P(h).logfile, "utf8").split("\n").slice(-25).join("\n") : "(no log file)";
        throw new Error(`${h.name} to stop: not within 90 s; the end of its log:\n${log}`);
      }
      p.kill("SIGTERM");
      for (let i = 0; i < 20 && !stopped(); i++) await sleep(250);
    }
    startRedis(h);
    // the rolling restart's gate (health script `local`): a master answers, a replica is linked and synced
    await until(`${h.name} ready again`, () => replicaReady(h, pw), 60);
  }
  const step = (h: { name: string; address: string }, phase: RotationPhase, pw: typeof NEW) => {
    const r = spawnSync("sh", ["-c", `set -eu\n${rotationScript(g.port, g.sentinelPort, P(h).pass, h.address)}`],
      { input: rotationStdin(phase, { appUser: g.appUser, masterName: g.masterName }, pw.internal, pw.app), encoding: "utf8", timeout: 120000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };

  beforeAll(async () => {
    if (process.getuid && process.getuid() !== 0) throw new Error("daemon tests need root");
    for (const bin of ["redis-server", "redis-sentinel", "redis-cli", "haproxy"]) {
      if (spawnSync("sh", ["-c", `command -v ${bin}`]).status !== 0) throw new Error(`${bin} is not installed; this daemon test needs it`);
    }
    g = resolveRedisSentinelGroupSettings({ enabled: true, nodes: G, port: await freePort(), sentinelPort: await freePort(), haproxyPort: await freePort(),
      downAfterMs: 2000, failoverTimeoutMs: 10000 }, "127.0.0.0/24")!;
    for (const h of G) writeFiles(h, OLD, h === G[0] ? undefined : G[0].address);
    for (const h of G) startRedis(h);
    for (const h of G) {
      const p = P(h);
      fs.writeFileSync(p.sentinel, renderSentinelConf(g, h, OLD.internal, G[0].address, { dir: p.sdir, pidfile: path.join(p.sdir, "pid"),
        logfile: path.join(p.sdir, "log") }, [h.address]), { mode: 0o640 });
      sentinels.set(h.name, spawn("redis-sentinel", [p.sentinel, "--daemonize", "no"], { stdio: "ignore" }));
    }
    writeHaproxy(OLD);
    haproxy = spawn("haproxy", ["-W", "-db", "-f", haproxyCfg], { stdio: "ignore" });
    await until("the group as deployed: both replicas synced, every Sentinel sees two others and two replicas",
      () => G.every((h) => replicaReady(h, OLD.internal) && field(h, OLD.internal, "num-other-sentinels") === "2"
        && field(h, OLD.internal, "num-slaves") === "2"), 90);
    await until("HAProxy to reach the master", () => cli(G[0], g.haproxyPort, ["ping"], OLD.app, "app") === "PONG", 30);
  });

  afterAll(async () => {
    for (const p of [...redis.values(), ...sentinels.values(), haproxy]) if (alive(p)) p.kill("SIGKILL");
    await sleep(300);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the steps of one up rotate both passwords with the writer losing nothing, and a second run changes nothing", async () => {
    const acked = path.join(dir, "acked");
    const oldFile = path.join(dir, "app-old"), newFile = path.join(dir, "app-new");
    fs.writeFileSync(oldFile, OLD.app, { mode: 0o600 });
    fs.writeFileSync(newFile, NEW.app, { mode: 0o600 });
    // a new connection per write through HAProxy, as the application: the new password first, else the old one
    const writer = spawn("sh", ["-c", [
      "i=0",
      "while :; do",
      "  i=$((i + 1))",
      "  for f in \"$NEWF\" \"$OLDF\"; do",
      `    out=$(REDISCLI_AUTH=$(cat "$f") timeout 5 redis-cli -h ${G[0].address} -p ${g.haproxyPort} --user app RPUSH log "$i" 2>/dev/null | tr -d '\\r')`,
      "    case \"$out\" in ''|*[!0-9]*) ;; *) echo \"$i\" >> \"$ACKED\"; break;; esac",
      "  done",
      "  sleep 0.02",
      "done",
    ].join("\n")], { env: { ...process.env, ACKED: acked, NEWF: newFile, OLDF: oldFile }, stdio: "ignore" });
    const ackedNow = () => (fs.existsSync(acked) ? fs.readFileSync(acked, "utf8").trim().split("\n").length : 0);
    try {
      await until("the writer's first writes", () => ackedNow() > 10, 30);
      for (const phase of ["add", "switch"] as const) {
        for (const h of G) expect({ node: h.name, phase, ...step(h, phase, NEW) }).toMatchObject({ status: 0, out: expect.stringMatching(/Redis: \d+ commands applied/) });
      }
      // both passwords open every user now; the replicas and Sentinels log in with the new ones
      for (const h of G) {
        for (const pw of [OLD, NEW]) {
          expect(cli(h, g.port, ["ping"], pw.internal)).toBe("PONG");
          expect(cli(h, g.port, ["ping"], pw.app, "app")).toBe("PONG");
          expect(cli(h, g.sentinelPort, ["ping"], pw.internal)).toBe("PONG");
        }
      }
      // the files, as the up writes them after the switch: HAProxy reloads with its new check login first
      for (const h of G) writeFiles(h, NEW);
      writeHaproxy(NEW);
      haproxy.kill("SIGUSR2");
      for (const h of G) {
        const r = spawnSync("sh", ["-c", `set -eu\n${renderSentinelSetScript(g, h.address, g.sentinelPort, P(h).pass)}`], { encoding: "utf8" });
        expect({ node: h.name, status: r.status, err: r.stderr }).toEqual({ node: h.name, status: 0, err: "" });
      }
      const before = ackedNow();
      for (const h of G) await restartRedis(h, NEW.internal);
      for (const h of G) expect({ node: h.name, ...step(h, "drop", NEW) }).toMatchObject({ status: 0 });
      await until("the writer to go on after the drop", () => ackedNow() > before + 20, 30);
    } finally {
      writer.kill("SIGKILL");
    }
    const m = master(NEW.internal);
    const ackedValues = fs.readFileSync(acked, "utf8").trim().split("\n");
    const stored = new Set(cli({ address: m }, g.port, ["LRANGE", "log", "0", "-1"], NEW.internal).split("\n"));
    const lost = ackedValues.filter((v) => !stored.has(v));
    process.stderr.write(`redis-rotation: ${ackedValues.length} writes acknowledged, ${lost.length} lost, master ${m}\n`);
    expect(ackedValues.length).toBeGreaterThan(50);
    expect(lost).toEqual([]);
    // a re-run (the up run again) applies the same commands and changes no login
    for (const phase of ["add", "switch", "drop"] as const) for (const h of G) expect(step(h, phase, NEW).status).toBe(0);
  });

  it("afterwards the old passwords are refused and the new ones accepted, by Redis and Sentinel, also after a Sentinel restart", async () => {
    for (const h of G) {
      expect(cli(h, g.port, ["ping"], OLD.internal)).toMatch(/WRONGPASS|NOAUTH/);
      expect(cli(h, g.port, ["ping"], OLD.app, "app")).toMatch(/WRONGPASS|NOAUTH/);
      expect(cli(h, g.sentinelPort, ["ping"], OLD.internal)).toMatch(/WRONGPASS|NOAUTH/);
      expect(cli(h, g.port, ["ping"], NEW.internal)).toBe("PONG");
      expect(cli(h, g.port, ["ping"], NEW.app, "app")).toBe("PONG");
      expect(cli(h, g.sentinelPort, ["ping"], NEW.internal)).toBe("PONG");
      expect(replicaReady(h, NEW.internal)).toBe(true);
    }
    const s = sentinels.get(G[2].name)!;
    s.kill("SIGTERM");
    await until("the Sentinel to stop", () => s.exitCode !== null || s.signalCode !== null, 30);
    // Sentinel rewrote its file: no old password in clear left, the new ones kept
    const text = fs.readFileSync(P(G[2]).sentinel, "utf8");
    expect(text).toMatch(/^user default on #[0-9a-f]{64} #[0-9a-f]{64} /m);
    sentinels.set(G[2].name, spawn("redis-sentinel", [P(G[2]).sentinel, "--daemonize", "no"], { stdio: "ignore" }));
    await until("the restarted Sentinel to answer the new password", () => cli(G[2], g.sentinelPort, ["ping"], NEW.internal) === "PONG", 30);
    expect(cli(G[2], g.sentinelPort, ["ping"], OLD.internal)).toMatch(/WRONGPASS|NOAUTH/);
    await until("every Sentinel to see two others and two replicas", () => G.every((h) => field(h, NEW.internal, "num-other-sentinels") === "2"
      && field(h, NEW.internal, "num-slaves") === "2"), 60);
  });

  let crashed: { name: string; address: string };
  it("the Sentinels still fail over when the master dies (their votes need their logins to each other)", async () => {
    const old = master(NEW.internal);
    crashed = G.find((h) => h.address === old)!;
    redis.get(crashed.name)!.kill("SIGKILL");
    const other = G.find((h) => h.address !== old)!;
    await until("a new master", () => {
      const m = cli(other, g.sentinelPort, ["SENTINEL", "get-master-addr-by-name", g.masterName], NEW.internal).split("\n")[0];
      return m !== old && G.some((h) => h.address === m) && cli({ address: m }, g.port, ["ROLE"], NEW.internal).split("\n")[0] === "master";
    }, 60);
    await until("HAProxy to reach the new master", () => /^\d+$/.test(cli(G[0], g.haproxyPort, ["RPUSH", "log", "after"], NEW.app, "app")), 30);
  });

  it("for comparison, the files alone (what an up did before the rotation steps) break the group at the first restart", async () => {
    await until("the crashed master's process to be gone", () => !alive(redis.get(crashed.name)), 30);
    startRedis(crashed); // back from the failover above, as a replica
    await until("the group whole again", () => G.every((h) => replicaReady(h, NEW.internal)), 90);
    const third = { internal: "third-internal", app: "third-app" };
    for (const h of G) writeFiles(h, third);
    // Sentinel's requirepass is in its once-written file: the sentinel-settings step logs in with the new password file and is refused
    expect(cli(G[0], g.sentinelPort, ["ping"], third.internal)).toMatch(/WRONGPASS|NOAUTH/);
    // the rolling restart's first node takes the new passwords alone: as a replica its masterauth is refused by the master,
    // as the master it refuses its replicas and the Sentinels, which fail over without being able to demote it: either
    // some replica stays unlinked (the up's ready wait times out) or two nodes say they are master
    const first = G[0];
    redis.get(first.name)!.kill("SIGTERM");
    await until(`${first.name} to stop`, () => !alive(redis.get(first.name)), 30);
    startRedis(first);
    await sleep(10000);
    const linked = (h: { address: string }) => [NEW.internal, third.internal].some((pw) => /master_link_status:up/.test(cli(h, g.port, ["info", "replication"], pw)));
    const roleOf = (h: { address: string }) => [NEW.internal, third.internal].map((pw) => cli(h, g.port, ["ROLE"], pw)).find((r) => /^(master|slave)/.test(r)) ?? "";
    const replicas = G.filter((h) => roleOf(h).startsWith("slave"));
    const masters = G.filter((h) => roleOf(h).startsWith("master"));
    process.stderr.write(`redis-rotation (files alone): masters ${masters.map((h) => h.name)}, unlinked replicas ${replicas.filter((h) => !linked(h)).map((h) => h.name)}\n`);
    expect(masters.length > 1 || replicas.some((h) => !linked(h))).toBe(true);
  });
});
