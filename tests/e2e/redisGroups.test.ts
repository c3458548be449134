// Two named Redis groups (the list form of hastack:redis) on the same three VMs, deployed through the real Pulumi
// engine with the datacenter's own code for groups (redisGroupComponents, redisGroupLayers): each answers through its
// own port and VIP, crashing one group's master process fails over that group only (to the node its replicaPriority
// allows), and a second `up` changes nothing. The program is the Redis part of the datacenter alone: the database
// tier would add five VMs and minutes, and nothing of it touches Redis. Last, kv grows to a fourth VM and shrinks
// again without its master's node, under a writer through its VIP (components/redisSentinelGroup/membership.ts).
// Needs root. Own lab: bridge hsrg0, 10.213.24.0/24, disks /var/lib/hastack-rg, state lab/.rg-state, cgroup
// hastack-rg, VMs rgrd1..4; no other lab is touched.
import { execFile, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import * as pulumi from "@pulumi/pulumi";
import { ConfigMap, Stack } from "@pulumi/pulumi/automation";
import { changes, openStack, REPO } from "../../engine/automation";
import { secretLeaves } from "../../engine/offline-secrets";
import { resolveRedisGroups } from "../../components/redisSentinelGroup";
import { HostFirewall } from "../../components/firewall";
import { redisGroupComponents } from "../../stacks/datacenter";
import { redisGroupLayers } from "../../stacks/firewall";

const run = promisify(execFile);
const LAB = path.join(REPO, "lab");
const STATE = path.join(LAB, ".rg-state");
const LAB_ROOT = "/var/lib/hastack-rg";
const ENV = {
  ...process.env,
  HASTACK_LAB_STATE: STATE, HASTACK_LAB_ROOT: LAB_ROOT, HASTACK_LAB_BRIDGE: "hsrg0", HASTACK_LAB_CGROUP: "hastack-rg",
  HASTACK_LAB_SUBNET_BASES: "10.213.24.", HASTACK_LAB_HOST_ADDR: "10.213.24.1",
};
const SUBNET = "10.213.24.0/24";
const RD = [1, 2, 3].map((n) => ({ name: `rgrd${n}`, address: `10.213.24.5${n}` }));
const [RD1, RD2, RD3] = RD;
/** Booted with the others, in no group until kv scales out to it. */
const RD4 = { name: "rgrd4", address: "10.213.24.54" };
const VMS = [...RD, RD4];
// both groups start with rgrd1 as master, so a failover of one must leave the other's master on the same host alone
const GROUPS = [
  { name: "pubsub", masterName: "pubsub", nodes: [RD1, RD2, { ...RD3, replicaPriority: 0 }], port: 6379, sentinelPort: 26379, haproxyPort: 6380,
    vip: "10.213.24.60", virtualRouterId: 61, interface: "host0", downAfterMs: 2000 },
  { name: "kv", masterName: "kv", nodes: RD, port: 6389, sentinelPort: 26389, haproxyPort: 6390,
    vip: "10.213.24.61", virtualRouterId: 62, interface: "host0", downAfterMs: 2000 },
];
const [PUBSUB, KV] = GROUPS;
const PASSWORDS: Record<"pubsub" | "kv", { app: string; sentinel: string; keepalived: string; appPrevious?: string }> = {
  pubsub: { app: "pubsub-app-'\"$x-1", sentinel: "pubsub-internal-/=2", keepalived: "psvrrp01" },
  kv: { app: "kv-app-'\"$y-3", sentinel: "kv-internal-/=4", keepalived: "kvvrrp02" },
};

jest.setTimeout(25 * 60 * 1000);
const progress = (msg: string) => process.stderr.write(`e2e-rg: ${new Date().toISOString()} ${msg}\n`);
beforeEach(() => progress(`start: ${expect.getState().currentTestName}`));
afterEach(() => progress(`end: ${expect.getState().currentTestName}`));

const lab = (script: string, ...args: string[]) => execFileSync("bash", [path.join(LAB, script), ...args], { env: ENV, stdio: ["ignore", "inherit", "inherit"] });

/** ssh into one of this lab's VMs by name. */
async function ssh(name: string, cmd: string): Promise<string> {
  const p = run("bash", [path.join(LAB, "ssh.sh"), name, cmd], { env: ENV, timeout: 30000 });
  p.child.stdin!.end("");
  return (await p).stdout.trim();
}

/** redis-cli from the lab host; the password travels in the environment (REDISCLI_AUTH), never in argv. */
async function cli(host: string, port: number, password: string, args: string[], user?: string): Promise<string> {
  const { stdout } = await run("timeout", ["5", "redis-cli", "-h", host, "-p", String(port), ...(user ? ["--user", user] : []), ...args],
    { env: { ...process.env, REDISCLI_AUTH: password } });
  return stdout.trim();
}
const sentinelMaster = async (g: typeof PUBSUB, via: string): Promise<string> =>
  (await cli(via, g.sentinelPort, PASSWORDS[g.name as "pubsub"].sentinel, ["SENTINEL", "get-master-addr-by-name", g.masterName])).split("\n")[0];
const app = (g: typeof PUBSUB, args: string[]) => cli(g.vip, g.haproxyPort, PASSWORDS[g.name as "pubsub"].app, args, "app");
const roleOf = async (g: typeof PUBSUB, host: string) =>
  /role:(\w+)/.exec(await cli(host, g.port, PASSWORDS[g.name as "pubsub"].sentinel, ["INFO", "replication"]))?.[1];

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutS: number): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    try { const v = await probe(); if (v) return v; } catch { /* not yet */ }
    if (Date.now() - t0 > timeoutS * 1000) throw new Error(`timed out after ${timeoutS}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The datacenter's Redis part alone: the groups and their firewall tables, from the same functions Datacenter uses. */
async function program() {
  const cfg = new pulumi.Config("hastack");
  const groups = resolveRedisGroups(cfg.requireObject("redis"), SUBNET);
  const hostKeys = Object.fromEntries(VMS.map((h) => [h.address,
    fs.readFileSync(`${LAB_ROOT}/${h.name}/upper/etc/ssh/ssh_host_ed25519_key.pub`, "utf8").split(" ").slice(0, 2).join(" ")]));
  const ssh = { privateKey: cfg.requireSecret("sshPrivateKey"), user: "root", port: 22, hostKeys };
  const comps = redisGroupComponents("rg", groups, ssh, { redisGroups: cfg.requireObject("passwords") }, {});
  // as the datacenter orders them: a group's tables change after its hand-over (a removed master must still be reachable)
  for (const [k, l] of redisGroupLayers(groups, ["10.213.24.1"]).entries()) {
    for (const host of l.nodes) new HostFirewall(`rg-${l.layer}-${host.name}-firewall`, { host, ssh, table: l.table, after: [comps[k].handOver] });
  }
  return Object.fromEntries(comps.map((c) => [c.group!, { vip: c.vip, port: c.port, masterName: c.masterName }]));
}

/**
 * redis_writer.py through kv's VIP (a SET every 50 ms) while `during` runs, plus 3 s either side; then the
 * acknowledged keys checked. With HASTACK_DRILL_RECORD=<file> the figures are appended there as a JSON line
 * (bench/drills.ts repeats this file and takes the medians).
 */
async function kvWriterDuring<T>(drill: string, during: () => Promise<T>): Promise<{ value: T; acked: number; attempts: number; errors: number; lost: number; pause: number }> {
  const run = drill.replace(/[^a-z0-9]+/gi, "-");
  const pwFile = path.join(STATE, "kv-app.pw");
  fs.writeFileSync(pwFile, PASSWORDS.kv.app, { mode: 0o600 });
  const args = [path.join(REPO, "bench", "redis_writer.py"), "--host", KV.vip, "--port", String(KV.haproxyPort), "--password-file", pwFile];
  const writer = spawn("python3", [...args, "--seconds", "900", "--interval", "0.05", "--run", run], { stdio: ["ignore", "pipe", "inherit"] });
  let written = "";
  writer.stdout!.on("data", (d) => { written += d; });
  const ended = new Promise((r) => writer.on("exit", r));
  const t0 = Date.now();
  let value: T;
  try {
    await new Promise((r) => setTimeout(r, 3000));
    value = await during();
    await new Promise((r) => setTimeout(r, 3000));
  } finally {
    writer.kill("SIGTERM");
    await ended;
  }
  const result = JSON.parse(written) as { attempts: number; acked: [number, number][]; errors: [number, number, string][] };
  const missing = JSON.parse(execFileSync("python3", [...args, "--run", run, "--verify"],
    { input: JSON.stringify(result.acked.map((a) => a[0])), encoding: "utf8" })) as unknown[];
  const times = result.acked.map((a) => a[1]);
  const pause = Math.round(Math.max(0, ...times.slice(1).map((t, i) => t - times[i])) * 10) / 10;
  const row = { drill, acknowledged: result.acked.length, failed: result.errors.length, lost: missing.length, pauseSeconds: pause,
    upSeconds: Math.round((Date.now() - t0 - 6000) / 100) / 10, at: new Date().toISOString() };
  progress(`${drill}: ${JSON.stringify(row)}`);
  if (process.env.HASTACK_DRILL_RECORD) fs.appendFileSync(process.env.HASTACK_DRILL_RECORD, JSON.stringify(row) + "\n");
  return { value, acked: result.acked.length, attempts: result.attempts, errors: result.errors.length, lost: missing.length, pause };
}

describe("two named Redis groups on three VMs (needs root: nspawn VMs on hsrg0)", () => {
  let stack: Stack;
  const durations: Record<string, number> = {};
  const timed = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try { return await f(); } finally { durations[what] = Math.round((Date.now() - t0) / 1000); progress(`${what}: ${durations[what]} s`); }
  };
  const out = { onOutput: (s: string) => process.stdout.write(s) };
  /** The stack with this whole config (secrets on the CLI's stdin, never in argv): hastack:redis as given, PASSWORDS as they are now. */
  const reopen = (redis: string): Promise<Stack> => {
    const workDir = path.join(STATE, "project");
    const config: ConfigMap = {
      "hastack:redis": { value: redis },
      "hastack:sshPrivateKey": { value: fs.readFileSync(path.join(STATE, "id_ed25519"), "utf8"), secret: true },
      ...secretLeaves("hastack:passwords", PASSWORDS),
    };
    return openStack({ stackName: "rglab", config, workDir, program }, { backendDir: path.join(STATE, "pulumi"), passphrase: "hastack-rg-lab" });
  };

  beforeAll(async () => {
    lab("down.sh"); // what an interrupted run left
    lab("net.sh", "up");
    for (const h of VMS) lab("vm.sh", "up", h.name, h.address);
    await Promise.all(VMS.map((h) => until(`ssh to ${h.name}`, async () => (await ssh(h.name, "echo ok")) === "ok", 120)));
    const workDir = path.join(STATE, "project");
    fs.mkdirSync(workDir, { recursive: true });
    // a project of its own: the repo's Pulumi.yaml declares the datacenter's required keys, which this program has not
    fs.writeFileSync(path.join(workDir, "Pulumi.yaml"), "name: hastack\nruntime: nodejs\n");
    stack = await reopen(JSON.stringify(GROUPS));
  });

  afterAll(() => {
    progress(`durations (s): ${JSON.stringify(durations)}`);
    if (!process.env.HASTACK_KEEP_LAB) lab("down.sh");
  });

  it("deploys both groups: each on its own units, ports and VIP, answering the application through its HAProxy", async () => {
    const up = await timed("up from nothing", () => stack.up(out));
    expect(up.summary.result).toBe("succeeded");
    expect(up.outputs.pubsub.value).toEqual({ vip: PUBSUB.vip, port: PUBSUB.haproxyPort, masterName: "pubsub" });
    expect(up.outputs.kv.value).toEqual({ vip: KV.vip, port: KV.haproxyPort, masterName: "kv" });
    for (const h of RD) {
      const active = await ssh(h.name, "systemctl is-active redis-server@pubsub redis-sentinel@pubsub hastack-redis-haproxy-pubsub " +
        "hastack-redis-keepalived-pubsub redis-server@kv redis-sentinel@kv hastack-redis-haproxy-kv hastack-redis-keepalived-kv; " +
        "systemctl is-active redis-server redis-sentinel || true");
      expect(active.split("\n")).toEqual([...Array(8).fill("active"), "inactive", "inactive"]);
      // data dirs of their own
      expect(await ssh(h.name, "ls /var/lib/redis/pubsub/appendonlydir >/dev/null && ls /var/lib/redis/kv/appendonlydir >/dev/null && echo ok")).toBe("ok");
    }
    for (const g of GROUPS) {
      for (const h of RD) expect(await sentinelMaster(g, h.address)).toBe(RD1.address);
      expect(await app(g, ["SET", `${g.name}-key`, `${g.name}-value`])).toBe("OK");
      expect(await app(g, ["GET", `${g.name}-key`])).toBe(`${g.name}-value`);
    }
    // one group's key is not in the other's data
    expect(await app(KV, ["EXISTS", "pubsub-key"])).toBe("0");
    // each group's passwords are its own: pubsub's application password does not open kv
    // (redis-cli exits 0 after a refused AUTH; the command's answer is the refusal)
    expect(await cli(KV.vip, KV.haproxyPort, PASSWORDS.pubsub.app, ["PING"], "app")).toMatch(/^(NOAUTH|WRONGPASS)/);
    expect(await cli(KV.vip, KV.haproxyPort, PASSWORDS.kv.app, ["PING"], "app")).toBe("PONG");
    expect(await cli(RD3.address, PUBSUB.port, PASSWORDS.pubsub.sentinel, ["CONFIG", "GET", "replica-priority"])).toBe("replica-priority\n0");
    expect(await cli(RD3.address, KV.port, PASSWORDS.kv.sentinel, ["CONFIG", "GET", "replica-priority"])).toBe("replica-priority\n100");
  });

  it("a crash of pubsub's master process fails over pubsub only, to the node replicaPriority allows; kv keeps its master", async () => {
    const kvEpoch = async () => (await cli(RD1.address, KV.sentinelPort, PASSWORDS.kv.sentinel, ["SENTINEL", "master", "kv"]))
      .split("\n").reduce((acc, l, i, a) => (l === "config-epoch" ? a[i + 1] : acc), "");
    const epochBefore = await kvEpoch();
    // a real crash: no systemd restart (Restart=always would bring the master back before Sentinel's 2 s)
    await ssh(RD1.name, "mkdir -p /run/systemd/system/redis-server@pubsub.service.d && " +
      "printf '[Service]\\nRestart=no\\n' > /run/systemd/system/redis-server@pubsub.service.d/hastack-test.conf && systemctl daemon-reload && " +
      "kill -9 $(systemctl show -p MainPID --value redis-server@pubsub)");
    const t0 = Date.now();
    const promoted = await timed("pubsub failover", () => until("a new pubsub master", async () => {
      const m = await sentinelMaster(PUBSUB, RD2.address);
      return m !== RD1.address && m;
    }, 90));
    // rgrd3 has replicaPriority 0: Sentinel never promotes it
    expect(promoted).toBe(RD2.address);
    progress(`pubsub failed over to ${promoted} in ${Date.now() - t0} ms`);
    expect(await until("pubsub writes through its VIP", async () => (await app(PUBSUB, ["SET", "after", "1"])) === "OK", 30)).toBe(true);
    expect(await app(PUBSUB, ["GET", "pubsub-key"])).toBe("pubsub-value");
    // kv: same master, no failover (epoch unchanged), writes through its VIP all along
    for (const h of RD) expect(await sentinelMaster(KV, h.address)).toBe(RD1.address);
    expect(await roleOf(KV, RD1.address)).toBe("master");
    expect(await kvEpoch()).toBe(epochBefore);
    expect(await app(KV, ["SET", "during", "1"])).toBe("OK");

    // the crashed node comes back as a replica of the new master
    await ssh(RD1.name, "rm -rf /run/systemd/system/redis-server@pubsub.service.d && systemctl daemon-reload && systemctl start redis-server@pubsub");
    await until("rgrd1 a pubsub replica again", async () => (await roleOf(PUBSUB, RD1.address)) === "slave", 90);
    await until("pubsub whole again", async () => (await ssh(RD2.name, "sh /etc/redis/hastack-pubsub-health.sh group && echo ok")) === "ok", 120);
  });

  it("a second up changes nothing", async () => {
    const pv = await timed("preview", () => stack.preview());
    expect(changes(pv.changeSummary)).toEqual({});
    const up = await timed("up again", () => stack.up(out));
    expect(up.summary.result).toBe("succeeded");
    expect(changes(up.summary.resourceChanges)).toEqual({});
    // and the failover stands: pubsub's master stays rgrd2
    expect(await sentinelMaster(PUBSUB, RD1.address)).toBe(RD2.address);
  });

  it("kv grows to a fourth node, then shrinks without its master's node: under a writer through its VIP, no acknowledged write lost; the Sentinels know only the kept nodes", async () => {
    const withNodes = (nodes: typeof RD) => JSON.stringify(GROUPS.map((g) => (g.name === "kv" ? { ...g, nodes } : g)));
    const seen = async (via: string) => {
      const f = (await cli(via, KV.sentinelPort, PASSWORDS.kv.sentinel, ["SENTINEL", "master", "kv"])).split("\n");
      return `${f[f.indexOf("num-other-sentinels") + 1]} ${f[f.indexOf("num-slaves") + 1]}`;
    };
    await stack.setConfig("hastack:redis", { value: withNodes([...RD, RD4]) });
    const grown = await timed("kv scale-out up", () => stack.up(out));
    expect(grown.summary.result).toBe("succeeded");
    for (const h of VMS) expect(await seen(h.address)).toBe("3 3");
    expect(await roleOf(KV, RD4.address)).toBe("slave");
    expect(await sentinelMaster(KV, RD4.address)).toBe(RD1.address);

    // the scale-in removes rgrd1, kv's master
    const w = await kvWriterDuring("Redis kv scale-in 4 → 3, the master removed", async () => {
      await stack.setConfig("hastack:redis", { value: withNodes([RD2, RD3, RD4]) });
      const shrunk = await timed("kv scale-in up", () => stack.up(out));
      expect(shrunk.summary.result).toBe("succeeded");
      // the new first node hands over (the engine shows a step's output only on failure); without the hand-over the
      // forget step would find rgrd1 still master, with three replicas, and fail the up
      expect(shrunk.stdout).toMatch(/rg-cache-kv-rgrd2-hand-over created/);
      expect(shrunk.stdout).toMatch(/rg-cache-kv-rgrd2-forget-removed created/);
    });
    expect(w.acked).toBeGreaterThan(100);
    expect(w.lost).toBe(0);
    const master = await sentinelMaster(KV, RD2.address);
    expect([RD2.address, RD3.address, RD4.address]).toContain(master);
    for (const h of [RD2, RD3, RD4]) expect(await seen(h.address)).toBe("2 2");
    expect(await ssh(RD1.name, "systemctl is-active redis-server@kv redis-sentinel@kv || true")).toBe("inactive\ninactive");
    // pubsub, also on rgrd1, is untouched
    expect(await ssh(RD1.name, "systemctl is-active redis-server@pubsub redis-sentinel@pubsub")).toBe("active\nactive");

    const pv = await timed("preview after the scale-in", () => stack.preview());
    expect(changes(pv.changeSummary)).toEqual({});
  });

  it("rotating kv's own password and its VIP's keepalived secret under a writer through its VIP: nothing lost, one VIP holder, the old password refused, the Sentinels still fail over", async () => {
    const KEPT = [RD2, RD3, RD4];
    const old = { ...PASSWORDS.kv };
    const fresh = { sentinel: "kv-internal-rotated-/=5", keepalived: "kvvrrp03" };
    const w = await kvWriterDuring("Redis kv password and VIP auth_pass rotation", async () => {
      Object.assign(PASSWORDS.kv, fresh);
      stack = await reopen(JSON.stringify(GROUPS.map((g) => (g.name === "kv" ? { ...g, nodes: KEPT } : g))));
      const rotated = await timed("kv rotation up", () => stack.up(out));
      expect(rotated.summary.result).toBe("succeeded");
    });
    expect(w.acked).toBeGreaterThan(100);
    expect(w.lost).toBe(0);
    // exactly one node holds kv's VIP
    const holders = [];
    for (const h of KEPT) if (await ssh(h.name, `ip -o addr show | grep -c ' ${KV.vip}/' || true`) !== "0") holders.push(h.name);
    expect(holders).toHaveLength(1);
    // the new password opens every kept Redis and Sentinel, the old one none
    for (const h of KEPT) {
      expect(await cli(h.address, KV.port, fresh.sentinel, ["PING"])).toBe("PONG");
      expect(await cli(h.address, KV.sentinelPort, fresh.sentinel, ["PING"])).toBe("PONG");
      expect(await cli(h.address, KV.port, old.sentinel, ["PING"])).toMatch(/^(NOAUTH|WRONGPASS)/);
      expect(await cli(h.address, KV.sentinelPort, old.sentinel, ["PING"])).toMatch(/^(NOAUTH|WRONGPASS)/);
    }
    // the Sentinels still log in to Redis and to each other: a crash of kv's master fails over
    const master = await sentinelMaster(KV, RD3.address);
    const victim = KEPT.find((h) => h.address === master)!;
    await ssh(victim.name, "mkdir -p /run/systemd/system/redis-server@kv.service.d && " +
      "printf '[Service]\\nRestart=no\\n' > /run/systemd/system/redis-server@kv.service.d/hastack-test.conf && systemctl daemon-reload && " +
      "kill -9 $(systemctl show -p MainPID --value redis-server@kv)");
    const other = KEPT.find((h) => h !== victim)!;
    const promoted = await timed("kv failover after the rotation", () => until("a new kv master", async () => {
      const m = await sentinelMaster(KV, other.address);
      return m !== master && m;
    }, 90));
    progress(`kv failed over from ${master} to ${promoted} after the rotation`);
    expect(await until("kv writes through its VIP", async () => (await app(KV, ["SET", "after-rotation", "1"])) === "OK", 30)).toBe(true);
    await ssh(victim.name, "rm -rf /run/systemd/system/redis-server@kv.service.d && systemctl daemon-reload && systemctl start redis-server@kv");
    await until(`${victim.name} a kv replica again`, async () => (await roleOf(KV, victim.address)) === "slave", 90);
    const pv = await timed("preview after the rotation", () => stack.preview());
    expect(changes(pv.changeSummary)).toEqual({});
  });

  it("kv's application password rotated with the previous one kept: a client on the old one writes on through the up, no Redis restarts where hastack knows what runs; a later up without the previous one refuses it, again without a restart", async () => {
    const KEPT = [RD2, RD3, RD4];
    const kvGroups = JSON.stringify(GROUPS.map((g) => (g.name === "kv" ? { ...g, nodes: KEPT } : g)));
    const invocations = async () => Object.fromEntries(await Promise.all(KEPT.map(async (h) =>
      [h.name, await ssh(h.name, "systemctl show -p InvocationID --value redis-server@kv")] as const)));
    // a node whose Redis hastack did not start last (the failover drill above started one by hand) is restarted once: it
    // may run other settings; every other node takes the new users at runtime (renderRedisApplyScript)
    const record = "/etc/redis/hastack-kv.conf.applied";
    const recorded = async (h: typeof RD1) => (await ssh(h.name, `cat ${record} 2>/dev/null || true`)).endsWith(
      ` ${await ssh(h.name, "systemctl show -p InvocationID --value redis-server@kv")}`);
    const unknown = [];
    for (const h of KEPT) if (!(await recorded(h))) unknown.push(h.name);
    progress(`kv nodes whose running Redis hastack did not start: ${JSON.stringify(unknown)}`);
    const master = await sentinelMaster(KV, RD3.address);
    const before = await invocations();
    const oldApp = PASSWORDS.kv.app;
    const newApp = "kv-app-rotated-'\"$z-6";
    // the writer logs in with the old password all along, as a client not yet moved
    const w = await kvWriterDuring("Redis kv application password rotation, previous kept", async () => {
      Object.assign(PASSWORDS.kv, { app: newApp, appPrevious: oldApp });
      stack = await reopen(kvGroups);
      expect((await timed("kv app rotation up", () => stack.up(out))).summary.result).toBe("succeeded");
    });
    expect(w.acked).toBeGreaterThan(100);
    expect(w.lost).toBe(0);
    expect(w.pause).toBeLessThan(2);
    const after = await invocations();
    expect(KEPT.filter((h) => after[h.name] !== before[h.name]).map((h) => h.name)).toEqual(unknown);
    expect(await sentinelMaster(KV, RD3.address)).toBe(master);
    for (const pw of [oldApp, newApp]) expect(await cli(KV.vip, KV.haproxyPort, pw, ["SET", "two-passwords", "1"], "app")).toBe("OK");

    // the clients moved: the previous password leaves the config, and Redis with it, at runtime everywhere
    const w2 = await kvWriterDuring("Redis kv previous application password dropped", async () => {
      delete (PASSWORDS.kv as Record<string, string>).appPrevious;
      stack = await reopen(kvGroups);
      expect((await timed("kv drop previous up", () => stack.up(out))).summary.result).toBe("succeeded");
    });
    expect(w2.lost).toBe(0);
    expect(w2.pause).toBeLessThan(2);
    expect(await invocations()).toEqual(after);
    expect(await cli(KV.vip, KV.haproxyPort, oldApp, ["PING"], "app")).toMatch(/^(NOAUTH|WRONGPASS)/);
    expect(await cli(KV.vip, KV.haproxyPort, newApp, ["PING"], "app")).toBe("PONG");
    const pv = await timed("preview after the drop", () => stack.preview());
    expect(changes(pv.changeSummary)).toEqual({});
  });
});
