// Real-daemon checks for everything RedisSentinelGroup renders. Needs root (keepalived -t, haproxy -c as on the hosts).
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { ResolvedRedisSentinelGroupSettings, resolveRedisSentinelGroupSettings } from "../../components/redisSentinelGroup/args";
import { keepalivedValidateCommand } from "../../components/keepalived";
import {
  REDIS_PATHS, renderHaproxyCfg, renderHealthScript, renderKeepalivedCheck, renderRedisApplyScript, renderRedisMain, renderRedisManaged,
  renderRedisManagedCheck, renderRedisKeepalived, renderSentinelConf, renderSentinelSetScript, sentinelAuthPass, renderRedisAcl,
} from "../../components/redisSentinelGroup/render";
import { ADMIN_COMMANDS, REDIS_ACL_CATEGORIES, REDIS_COMMANDS } from "../../components/redisSentinelGroup/commands";
import { aclAllows } from "../../components/redisSentinelGroup/acl";
import { chooseInitialMaster, parseSurvey } from "../../components/redisSentinelGroup/initialMaster";
import { checkAuthPass, renderDiscoverMaster, renderSurveyScript } from "../../components/redisSentinelGroup/render";
import * as fc from "fast-check";
import { freePort } from "../support/ports";

/** hastack's own password (hastack:passwords.redisSentinel): Redis' default user, Sentinel's requirepass. */
const SPECIAL = `jhYg/=\\F'"$`;
/** The application user's password (hastack:passwords.redis). */
const APP = `app'"/=$\\pw`;
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
    fs.writeFileSync(acl, renderRedisAcl(s, APP, SPECIAL));
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
    fs.writeFileSync(acl, renderRedisAcl(s, APP, SPECIAL));
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
    const strip = renderRedisApplyScript().split("\n").find((l) => l.startsWith("sed -i -E"))!.replace(REDIS_PATHS.main, main);
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
    // the host's own check (components/keepalived): keepalived -t must exit 0 (or 143) AND print nothing
    const validate = (file: string) => spawnSync("sh", ["-euc", keepalivedValidateCommand()], { env: { ...process.env, NEW: file }, encoding: "utf8" });
    const r = validate(f);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    // and the same check refuses this config on a host without its interface
    fs.writeFileSync(f, fs.readFileSync(f, "utf8").replace(/interface \S+/, "interface nosuch0"));
    const bad = validate(f);
    expect({ status: bad.status, named: /nosuch0/.test(bad.stderr) }).toEqual({ status: 1, named: true });
  });
});

/** The UMask Debian's units run redis-server and redis-sentinel with: the mode of every file the daemons rewrite. */
function unitUmask(unit: string): string {
  const text = fs.readFileSync(`/lib/systemd/system/${unit}.service`, "utf8");
  const m = /^UMask=([0-7]{3,4})$/m.exec(text);
  if (!m) throw new Error(`${unit}.service sets no UMask; the file-mode checks below assume one`);
  return m[1];
}

/** Send RESP commands on one connection and return everything read until `ms` of quiet. */
function resp(host: string, port: number, cmds: string[][], ms = 400): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, host);
    let out = "";
    let timer: NodeJS.Timeout;
    const done = () => { sock.destroy(); resolve(out); };
    sock.on("connect", () => {
      for (const c of cmds) sock.write(`*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
      timer = setTimeout(done, ms);
    });
    sock.on("data", (d) => { out += d.toString("utf8"); clearTimeout(timer); timer = setTimeout(done, ms); });
    sock.on("error", reject);
  });
}

describe("a Redis Sentinel group of three on loopback addresses, as on the hosts (needs root)", () => {
  const G = [41, 42, 43].map((n) => ({ name: `redis${n - 40}`, address: `127.0.0.${n}` }));
  let dir: string;
  let g: ResolvedRedisSentinelGroupSettings;
  const redis = new Map<string, ChildProcess>();
  const sentinels: ChildProcess[] = [];
  const umask = unitUmask("redis-server");
  const sentinelUmask = unitUmask("redis-sentinel");
  const paths = (h: { name: string }) => {
    const d = path.join(dir, h.name);
    return { dir: d, pidfile: path.join(d, "pid"), logfile: path.join(d, "log"), main: path.join(d, "redis.conf"), managed: path.join(d, "hastack.conf"),
      acl: path.join(d, "users.acl"), sentinel: path.join(d, "sentinel", "sentinel.conf") };
  };
  /** As the unit runs it: its UMask, no daemonizing. */
  const daemon = (bin: string, argv: string[], mask: string) => spawn("sh", ["-c", `umask ${mask}; exec "$0" "$@"`, bin, ...argv], { stdio: "ignore" });
  const cliAt = (h: { address: string }, port: number, args: string[], auth: string | null = SPECIAL, user?: string) => {
    const env = { ...process.env };
    delete env.REDISCLI_AUTH;
    if (auth !== null) env.REDISCLI_AUTH = auth;
    const r = spawnSync("redis-cli", ["-h", h.address, "-p", String(port), ...(user ? ["--user", user] : []), ...args], { env, encoding: "utf8", timeout: 5000 });
    return `${r.stdout ?? ""}${r.stderr ?? ""}`.replace(/\r/g, "").trim();
  };
  const info = (h: { address: string }) => cliAt(h, g.port, ["info", "replication"]);
  const sentinelMaster = (h: { address: string }) => cliAt(h, g.sentinelPort, ["SENTINEL", "get-master-addr-by-name", g.masterName]).split("\n")[0];
  const mode = (f: string) => (fs.statSync(f).mode & 0o777).toString(8);

  /** Write a node's files as the deploy would: ACL file, hastack.conf, the once-written redis.conf. */
  function writeNode(h: { name: string; address: string }, master: string | undefined): void {
    const p = paths(h);
    fs.mkdirSync(p.dir, { recursive: true });
    fs.writeFileSync(p.acl, renderRedisAcl(g, APP, SPECIAL), { mode: 0o640 });
    fs.writeFileSync(p.managed, renderRedisManaged(g, h, SPECIAL, p, [h.address], p.acl), { mode: 0o640 });
    fs.writeFileSync(p.main, renderRedisMain(master, g.port, p.managed), { mode: 0o640 });
  }
  function startRedis(h: { name: string; address: string }): void {
    redis.set(h.name, daemon("redis-server", [paths(h).main, "--daemonize", "no", "--supervised", "no"], umask));
  }
  async function stopRedis(h: { name: string }): Promise<void> {
    const p = redis.get(h.name)!;
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
    await waitUntil(`${h.name} to stop`, () => p.exitCode !== null || p.signalCode !== null);
  }

  beforeAll(async () => {
    if (process.getuid && process.getuid() !== 0) throw new Error("daemon tests need root");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-redis-group-"));
    // the same ports on every node, as on the hosts; 127.0.0.41-43 are all on lo without configuration
    g = resolveRedisSentinelGroupSettings({ enabled: true, nodes: G, port: await freePort(), sentinelPort: await freePort(), haproxyPort: await freePort(),
      downAfterMs: 1000, failoverTimeoutMs: 10000 }, "127.0.0.0/24")!;
    fs.writeFileSync(path.join(dir, "pass"), SPECIAL, { mode: 0o600 });
    for (const h of G) writeNode(h, h === G[0] ? undefined : G[0].address);
    for (const h of G) startRedis(h);
    for (const h of G) await waitUntil(`${h.name}`, () => cliAt(h, g.port, ["ping"]) === "PONG");
    await waitUntil("both replicas in sync", () => info(G[0]).includes("connected_slaves:2") && G.slice(1).every((h) => info(h).includes("master_link_status:up")), 30000);
  }, 60000);

  afterAll(async () => {
    const all = [...redis.values(), ...sentinels];
    for (const p of all) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    await sleep(300);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the application user can GET, SET, PUBLISH and SUBSCRIBE, and INFO", async () => {
    const m = G[0];
    expect(cliAt(m, g.port, ["set", "k", "v"], APP, "app")).toBe("OK");
    expect(cliAt(m, g.port, ["get", "k"], APP, "app")).toBe("v");
    expect(cliAt(m, g.port, ["info", "replication"], APP, "app")).toContain("role:master");
    const sub = resp(m.address, g.port, [["AUTH", "app", APP], ["SUBSCRIBE", "news"]], 1500);
    await sleep(300);
    expect(cliAt(m, g.port, ["publish", "news", "hello"], APP, "app")).toBe("1");
    const got = await sub;
    expect(got).toContain("+OK\r\n");
    expect(got).toContain("$5\r\nhello\r\n");
  });

  it.each([
    ["config", "get", "requirepass"], ["config", "set", "appendonly", "no"], ["config", "rewrite"], ["flushall"], ["flushdb"], ["debug", "sleep", "0"],
    ["acl", "list"], ["acl", "setuser", "evil", "on", ">x", "+@all"], ["shutdown", "nosave"], ["replicaof", "127.0.0.9", "1"], ["slaveof", "no", "one"],
    ["module", "list"], ["keys", "*"], ["client", "kill", "127.0.0.1:1"], ["bgsave"], ["failover"], ["monitor"],
  ].map((c) => [c.join(" "), c]))("the application user cannot run %s", async (_, cmd) => {
    expect(cliAt(G[0], g.port, ["acl", "dryrun", "app", ...cmd])).toMatch(/^This user has no permissions to run the '/);
    const out = cliAt(G[0], g.port, cmd, APP, "app");
    // Redis 7.0 refuses DEBUG to everyone unless enable-debug-command is set; the ACL denies it as well (above)
    expect(out).toMatch(cmd[0] === "debug" ? /NOPERM|no permissions|DEBUG command not allowed/ : /NOPERM|no permissions/);
    expect(cliAt(G[0], g.port, ["ping"])).toBe("PONG");
    expect(cliAt(G[0], g.port, ["dbsize"])).not.toBe("0");
  });

  it("the application's password opens neither the default user nor Sentinel's, and no login works without a password", () => {
    expect(cliAt(G[0], g.port, ["ping"], APP)).toMatch(/WRONGPASS|invalid username-password/);
    expect(cliAt(G[0], g.port, ["ping"], null)).toMatch(/NOAUTH/);
    expect(cliAt(G[0], g.port, ["ping"], APP, "hastack-sentinel")).toMatch(/WRONGPASS|invalid username-password/);
  });

  it("hastack's tables match the installed Redis: every command and category, and each admin command's categories", () => {
    const h = G[0];
    const listed = cliAt(h, g.port, ["command", "list"]).split("\n");
    const containers = new Set(listed.filter((c) => c.includes("|")).map((c) => c.split("|")[0]));
    expect([...REDIS_COMMANDS].sort()).toEqual([...new Set([...listed, ...containers])].sort());
    expect(cliAt(h, g.port, ["acl", "cat"]).split("\n")).toEqual(REDIS_ACL_CATEGORIES);
    const members = new Map(REDIS_ACL_CATEGORIES.map((cat) => [cat, cliAt(h, g.port, ["acl", "cat", cat]).split("\n")]));
    for (const [c, cats] of Object.entries(ADMIN_COMMANDS)) {
      const real = REDIS_ACL_CATEGORIES.filter((cat) => members.get(cat)!.includes(c));
      expect([c, real.sort()]).toEqual([c, [...cats].sort()]);
    }
  });

  it("the pure ACL model grants exactly what Redis' ACL DRYRUN allows, for random rule lists", () => {
    const h = G[0];
    // DRYRUN also checks arity: find an argument count each admin command accepts once allowed
    expect(cliAt(h, g.port, ["acl", "setuser", "probe", "reset", "on", "nopass", "~*", "&*", "+@all"])).toBe("OK");
    const argv = Object.fromEntries(Object.keys(ADMIN_COMMANDS).map((c) => {
      for (let n = 0; n < 6; n++) {
        const a = [...c.split("|"), ...Array.from({ length: n }, () => "1")];
        if (cliAt(h, g.port, ["acl", "dryrun", "probe", ...a]) === "OK") return [c, a];
      }
      throw new Error(`no argument count makes ACL DRYRUN accept ${c}`);
    }));
    const pool = ["+@all", "-@all", "-@dangerous", "+@dangerous", "-@admin", "+@admin", "+@keyspace", "-@keyspace", "+@write", "-@write", "+@slow", "-@slow",
      "+@connection", "+config", "-config", "+config|get", "-config|set", "+flushall", "-flushall", "+acl", "-acl|setuser", "+client", "-client|kill",
      "+debug", "+shutdown", "+replicaof", "+module", "-module|list", "allcommands", "nocommands", "+info", "+role", "-role"];
    fc.assert(fc.property(fc.array(fc.constantFrom(...pool), { minLength: 1, maxLength: 6 }), (rules) => {
      expect(cliAt(h, g.port, ["acl", "setuser", "probe", "reset", "on", "nopass", "~*", "&*", ...rules])).toBe("OK");
      const lines = spawnSync("redis-cli", ["-h", h.address, "-p", String(g.port)], {
        env: { ...process.env, REDISCLI_AUTH: SPECIAL }, encoding: "utf8",
        input: Object.values(argv).map((a) => `acl dryrun probe ${a.join(" ")}`).join("\n") + "\n",
      }).stdout.replace(/\r/g, "").trim().split("\n");
      const real = Object.keys(argv).filter((_, i) => lines[i] === "OK");
      const model = Object.entries(ADMIN_COMMANDS).filter(([c, cats]) => aclAllows(rules, c, cats)).map(([c]) => c);
      expect({ rules, granted: real }).toEqual({ rules, granted: model });
    }), { numRuns: 40 });
    expect(cliAt(h, g.port, ["acl", "deluser", "probe"])).toBe("1");
  });

  it("Sentinels log in to each other with their own password and fail over when the master stops; HAProxy's check user follows", async () => {
    for (const h of G) {
      const p = paths(h);
      const sd = path.dirname(p.sentinel);
      fs.mkdirSync(sd, { recursive: true });
      const rt = { dir: sd, pidfile: path.join(sd, "pid"), logfile: path.join(sd, "log") };
      fs.writeFileSync(p.sentinel, renderSentinelConf(g, h, SPECIAL, G[0].address, rt, [h.address]), { mode: 0o640 });
      sentinels.push(daemon("redis-sentinel", [p.sentinel, "--daemonize", "no"], sentinelUmask));
    }
    for (const h of G) await waitUntil(`Sentinel on ${h.name}`, () => cliAt(h, g.sentinelPort, ["ping"]) === "PONG");
    // the application's password does not open Sentinel
    expect(cliAt(G[1], g.sentinelPort, ["ping"], APP)).not.toBe("PONG");
    // every Sentinel found the two others (they log in to each other with requirepass) and both replicas
    await waitUntil("Sentinels to see each other and the replicas", () => G.every((h) => {
      const m = cliAt(h, g.sentinelPort, ["SENTINEL", "master", g.masterName]);
      return /num-other-sentinels\n2(\n|$)/.test(m) && /num-slaves\n2(\n|$)/.test(m);
    }), 30000);
    await waitUntil("the replicas to be in sync", () => G.slice(1).every((h) => info(h).includes("master_link_status:up")), 30000);

    await stopRedis(G[0]);
    await waitUntil("a failover", () => G.every((h) => [G[1].address, G[2].address].includes(sentinelMaster(h))) && sentinelMaster(G[1]) === sentinelMaster(G[2]), 30000);
    const next = G.find((h) => h.address === sentinelMaster(G[1]))!;
    await waitUntil("the new master to take writes", () => cliAt(next, g.port, ["set", "after-failover", "1"], APP, "app") === "OK", 30000);
    // HAProxy's check user sees which node is master
    expect(cliAt(next, g.port, ["info", "replication"], checkPass(), "hastack-check")).toContain("role:master");
    expect(cliAt(next, g.port, ["config", "get", "port"], checkPass(), "hastack-check")).toMatch(/NOPERM|no permissions/);

    // the old master comes back as a replica of the new one (Sentinel rewrites its redis.conf)
    startRedis(G[0]);
    // Sentinel converts a returning old master only after it has reported role:master for a few INFO
    // periods, then a full sync follows; under CI load (two test streams on 2 cores) that took > 30 s, and once,
    // while both lab streams booted their VMs, > 90 s (the message then showed it rejoined and in sync).
    // Of the master the Sentinels name now: with this group's 1 s down-after, twice today they most likely failed over a
    // second time, to the third node (the old master was in sync with the node they named while this waited for the first).
    const current = () => sentinelMaster(G[1]);
    await waitUntil("the old master to rejoin as replica", () => current() !== G[0].address && info(G[0]).includes(`master_host:${current()}`)
      && info(G[0]).includes("master_link_status:up"), 180000)
      .catch((e) => { throw new Error(`${e.message}\nold master: ${info(G[0]).split("\n").filter((l) => /^(role|master_)/.test(l)).join(" ")}\nSentinel on ${G[1].name}: ${current()} (first failover to ${next.address})`); });
    await waitUntil("its redis.conf to carry the new master", () => fs.readFileSync(paths(G[0]).main, "utf8").includes(`replicaof ${current()} ${g.port}`), 30000);
  }, 420000);

  it("files holding secrets stay 0600/0640 after the daemons rewrote them (CONFIG REWRITE, Sentinel's rewrite, ACL SAVE)", async () => {
    for (const h of G) expect(cliAt(h, g.port, ["acl", "save"])).toBe("OK");
    for (const h of G) {
      const p = paths(h);
      const sentinelText = fs.readFileSync(p.sentinel, "utf8");
      // Sentinel did rewrite its file (it records the other Sentinels), and kept the secret only as requirepass/auth-pass
      expect(sentinelText).toMatch(/^sentinel known-sentinel /m);
      expect(sentinelText).not.toContain(APP);
      for (const f of [p.main, p.sentinel, p.acl, p.managed]) {
        expect([f, mode(f)]).toEqual([f, expect.stringMatching(/^6[04]0$/)]);
      }
      expect(fs.readFileSync(p.acl, "utf8")).not.toContain(APP);
    }
  });

  it("after pulumi destroy, the node with the newest data becomes master, not the first node (issue 7 §5)", async () => {
    // the first node stops first and so misses the writes below; then the group stops as destroy stops it
    const master = G.find((h) => info(h).includes("role:master"))!;
    const firstNode = G[0];
    expect(master).not.toBe(firstNode);
    for (const p of sentinels) p.kill("SIGTERM");
    await stopRedis(firstNode);
    // up to 60 s: under load the other replica may still be syncing after the failover drill before (a run at load ~8
    // beside CI, 2026-11-29, timed out at 15 s here once in three)
    await waitUntil("the master to see one replica", () => info(master).includes("connected_slaves:1"), 60000);
    for (let i = 0; i < 20; i++) expect(cliAt(master, g.port, ["set", `newer:${i}`, "x"], APP, "app")).toBe("OK");
    const other = G.find((h) => h !== master && h !== firstNode)!;
    await waitUntil("the other replica to have the newer data", () => cliAt(other, g.port, ["get", "newer:19"]) === "x");
    await stopRedis(master);
    await stopRedis(other);
    // what destroy's delete scripts remove; the data directories stay
    for (const h of G) for (const f of [paths(h).main, paths(h).sentinel]) fs.rmSync(f, { force: true });

    const surveys = G.map((h) => spawnSync("sh", ["-euc", renderSurveyScript(paths(h))], { encoding: "utf8" }));
    for (const r of surveys) expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    const parsed = surveys.map((r) => parseSurvey(r.stdout));
    for (const v of parsed) expect(v.offset).toBeDefined();
    expect(parsed[0].offset!).toBeLessThan(parsed[G.indexOf(master)].offset!);
    const chosen = chooseInitialMaster(G, parsed);
    expect([master.name, other.name]).toContain(chosen.name);

    // the start-up step, with nothing running (no Sentinel, no master), settles on the surveyed node
    const discover = (fallback: string) => spawnSync("sh", ["-euc", `${renderDiscoverMaster(g, fallback, path.join(dir, "pass"))}\necho "$master"`], { encoding: "utf8" });
    expect(discover(chosen.address).stdout.trim()).toBe(chosen.address);

    // start as the deploy would: the chosen node without replicaof, the others its replicas
    for (const h of G) writeNode(h, h === chosen ? undefined : chosen.address);
    for (const h of G) startRedis(h);
    for (const h of G) await waitUntil(`${h.name} to sync from ${chosen.name}`, () => h === chosen ? cliAt(h, g.port, ["ping"]) === "PONG"
      : info(h).includes(`master_host:${chosen.address}`) && info(h).includes("master_link_status:up"), 30000);
    // nothing acknowledged was lost: the first node now has the writes it missed
    for (const h of G) expect([h.name, cliAt(h, g.port, ["get", "newer:19"])]).toEqual([h.name, "x"]);
    // a later start-up step asks the running nodes: a master with replicas wins over a stale fallback
    expect(discover(firstNode.address).stdout.trim()).toBe(chosen.address);
  }, 120000);

  function checkPass(): string {
    return checkAuthPass(SPECIAL);
  }
});
