// Scaling a Redis group in (components/redisSentinelGroup/membership.ts) against real redis-server and
// redis-sentinel 7.0: five nodes on loopback addresses of their own (127.0.0.31-35, each daemon bound to its
// address and connecting from it), the master on a node the stack removes. The hand-over moves the master to a
// kept node under a writer with no acknowledged write lost; the forget step, with no firewall in the way (the
// removed nodes keep running and keep trying, as until their deletes), leaves every kept Sentinel knowing only the
// kept nodes. The proof that it matters: a kept node then crashes whole (Redis and Sentinel) and the two Sentinels
// left still fail over, which a Sentinel still counting five refuses (it needs three votes; seen when this test
// ran without the forget step: no failover in 60 s).
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { forgetScript, handOverScript, MembershipParams } from "../../components/redisSentinelGroup/membership";
import { freePort } from "../support/ports";

const PASSWORD = "jhYg/=F-x9+membership";
const NAME = "hsmaster";
const NODES = [31, 32, 33, 34, 35].map((n) => ({ name: `m${n}`, address: `127.0.0.${n}` }));
const KEPT = NODES.slice(0, 3);
const REMOVED = NODES.slice(3);

jest.setTimeout(6 * 60 * 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cli(host: string, port: number, args: string[]): string {
  const r = spawnSync("redis-cli", ["-h", host, "-p", String(port), ...args], { env: { ...process.env, REDISCLI_AUTH: PASSWORD }, encoding: "utf8", timeout: 5000 });
  return `${r.stdout ?? ""}`.replace(/\r/g, "").trim();
}
async function until(what: string, ok: () => boolean, s = 60): Promise<void> {
  const end = Date.now() + s * 1000;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${s} s`);
    await sleep(500);
  }
}
/** A field of SENTINEL MASTER as the Sentinel on `host` reports it. */
const masterField = (host: string, sp: number, f: string) => {
  const lines = cli(host, sp, ["SENTINEL", "master", NAME]).split("\n");
  return lines[lines.indexOf(f) + 1];
};
const masterOf = (host: string, sp: number) => cli(host, sp, ["SENTINEL", "get-master-addr-by-name", NAME]).split("\n")[0];
const ipsOf = (out: string) => out.split("\n").flatMap((l, i, a) => (a[i - 1] === "ip" ? [l] : []));

describe("Redis group scale-in: hand over, forget, and the smaller group still fails over (real Redis 7.0 on loopback addresses)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-redis-membership-"));
  const procs = new Map<string, ChildProcess[]>();
  let port = 0, sp = 0, params: MembershipParams;
  const passFile = path.join(dir, "cli.pass");

  const run = (script: string) => {
    const f = path.join(dir, `step-${Date.now()}.sh`);
    fs.writeFileSync(f, `set -eu\n${script}`); // as runScript ships it
    return spawnSync("sh", [f], { encoding: "utf8", timeout: 5 * 60 * 1000 });
  };
  const kill = (addr: string) => { for (const p of procs.get(addr) ?? []) p.kill("SIGKILL"); procs.delete(addr); };

  beforeAll(async () => {
    for (const bin of ["redis-server", "redis-sentinel", "redis-cli"]) {
      if (spawnSync("sh", ["-c", `command -v ${bin}`]).status !== 0) throw new Error(`${bin} is not installed; this daemon test needs it`);
    }
    port = await freePort();
    sp = await freePort();
    fs.writeFileSync(passFile, PASSWORD, { mode: 0o600 });
    params = { nodes: KEPT, port, sentinelPort: sp, masterName: NAME, passFile };
    const master = NODES[4].address;
    for (const n of NODES) {
      const d = path.join(dir, n.name);
      fs.mkdirSync(d);
      const quoted = `"${PASSWORD.replace(/\\/g, "\\\\").replace(/"/g, "\\\"")}"`;
      fs.writeFileSync(path.join(d, "redis.conf"), [`bind ${n.address}`, `bind-source-addr ${n.address}`, `port ${port}`, `dir ${d}`, "save \"\"",
        `requirepass ${quoted}`, `masterauth ${quoted}`, `replica-announce-ip ${n.address}`, ...(n.address === master ? [] : [`replicaof ${master} ${port}`]), ""].join("\n"));
      fs.writeFileSync(path.join(d, "sentinel.conf"), [`bind ${n.address}`, `bind-source-addr ${n.address}`, `port ${sp}`, `dir ${d}`,
        `requirepass ${quoted}`, "sentinel resolve-hostnames no", `sentinel announce-ip ${n.address}`, `sentinel monitor ${NAME} ${master} ${port} 2`,
        `sentinel auth-pass ${NAME} ${quoted}`, `sentinel down-after-milliseconds ${NAME} 2000`, `sentinel failover-timeout ${NAME} 10000`, ""].join("\n"));
      procs.set(n.address, [spawn("redis-server", [path.join(d, "redis.conf")], { stdio: "ignore" }),
        spawn("redis-sentinel", [path.join(d, "sentinel.conf")], { stdio: "ignore" })]);
    }
    // the full group as deployed: every Sentinel sees the four others and four replicas
    for (const n of NODES) await until(`the Sentinel on ${n.address} sees the five nodes`,
      () => masterField(n.address, sp, "num-other-sentinels") === "4" && masterField(n.address, sp, "num-slaves") === "4", 90);
  });

  afterAll(() => {
    for (const a of [...procs.keys()]) kill(a);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("hand-over: a removed master passes its role to a kept node under a writer, no acknowledged write lost", async () => {
    expect(masterOf(KEPT[0].address, sp)).toBe(NODES[4].address);
    // a writer of its own: RPUSH of a counter to whatever master the Sentinels name; a line per acknowledged value
    const acked = path.join(dir, "acked");
    const writer = spawn("sh", ["-c", [
      "i=0",
      "while :; do",
      `  m=$(redis-cli -h ${KEPT[0].address} -p ${sp} SENTINEL get-master-addr-by-name ${NAME} | head -n 1)`,
      "  i=$((i + 1))",
      `  out=$(timeout 30 redis-cli -h "$m" -p ${port} RPUSH log "$i" 2>/dev/null)`,
      "  case \"$out\" in ''|*[!0-9]*) ;; *) echo \"$i\" >> \"$ACKED\";; esac",
      "done",
    ].join("\n")], { env: { ...process.env, REDISCLI_AUTH: PASSWORD, ACKED: acked }, stdio: "ignore" });
    try {
      await sleep(2000);
      const r = run(handOverScript(params));
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/failing over to a node it keeps/);
      await sleep(3000);
    } finally {
      writer.kill("SIGKILL");
    }
    const m = masterOf(KEPT[0].address, sp);
    expect(KEPT.map((n) => n.address)).toContain(m);
    const ackedValues = fs.readFileSync(acked, "utf8").trim().split("\n");
    const stored = new Set(cli(m, port, ["LRANGE", "log", "0", "-1"]).split("\n"));
    const lost = ackedValues.filter((v) => !stored.has(v));
    process.stderr.write(`redis-membership: ${ackedValues.length} writes acknowledged, ${lost.length} lost, master now ${m}\n`);
    expect(ackedValues.length).toBeGreaterThan(20);
    expect(lost).toEqual([]);
    // a second run finds a kept master and does nothing
    const again = run(handOverScript(params));
    expect(again.status).toBe(0);
    expect(again.stdout).toBe("");
  });

  it("forget: with the removed nodes still running and no firewall, every kept Sentinel ends up knowing only the kept nodes", async () => {
    // before: the kept Sentinels still count the removed ones
    expect(masterField(KEPT[0].address, sp, "num-other-sentinels")).toBe("4");
    const r = run(forgetScript(params));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/still know nodes the stack removed: 127\.0\.0\.3[45] 127\.0\.0\.3[45]/);
    for (const n of KEPT) {
      expect(masterField(n.address, sp, "num-other-sentinels")).toBe("2");
      expect(masterField(n.address, sp, "num-slaves")).toBe("2");
      const known = [...ipsOf(cli(n.address, sp, ["SENTINEL", "replicas", NAME])), ...ipsOf(cli(n.address, sp, ["SENTINEL", "sentinels", NAME]))];
      expect(known.filter((a) => REMOVED.some((x) => x.address === a))).toEqual([]);
    }
    // it stays so for a while (the removed nodes keep running until their deletes, and keep trying)
    await sleep(12000);
    for (const n of KEPT) expect(masterField(n.address, sp, "num-other-sentinels")).toBe("2");
    // a second run only checks
    const again = run(forgetScript(params));
    expect(again.status).toBe(0);
    expect(again.stdout).not.toMatch(/removed/);
  });

  it("the three kept nodes fail over when one of them crashes whole (two of three Sentinels agree)", async () => {
    for (const n of REMOVED) kill(n.address); // what the removed nodes' deletes do at the end of the up
    const old = masterOf(KEPT[0].address, sp);
    kill(old);
    const survivor = KEPT.find((n) => n.address !== old)!.address;
    await until("a new master among the two kept nodes left", () => {
      const m = masterOf(survivor, sp);
      return m !== old && KEPT.some((n) => n.address === m) && cli(m, port, ["ROLE"]).split("\n")[0] === "master";
    }, 60);
  });
});
