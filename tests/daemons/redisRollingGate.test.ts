// The gate of a rolling Redis restart (`health local`), run against real redis-server processes: the next node may
// restart only once this one is a master that answers, or a replica whose link is up and whose full sync is done.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolveRedisSentinelGroupSettings } from "../../components/redisSentinelGroup/args";
import { REDIS_PATHS, renderHealthScript } from "../../components/redisSentinelGroup/render";
import { freePort } from "../support/ports";

const PASSWORD = `jhYg/=\\F'"$`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-redis-gate-"));
const procs: ChildProcess[] = [];
afterAll(() => { for (const p of procs) p.kill("SIGKILL"); fs.rmSync(dir, { recursive: true, force: true }); });

// The master waits repl-diskless-sync-delay seconds before it starts a replica's full sync: long enough that the
// replica's first gate check (right after it answers PING) lands before the sync even on a machine at load 30+
// (CI once saw 2 s pass between the two on a loaded machine).
const SYNC_DELAY_S = 15;

function redis(port: number, extra: string[] = []): void {
  const d = path.join(dir, String(port));
  fs.mkdirSync(d);
  procs.push(spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", d, "--save", "", "--requirepass", PASSWORD,
    "--masterauth", PASSWORD, "--repl-diskless-sync-delay", String(SYNC_DELAY_S), ...extra], { stdio: "ignore" }));
}

/** The rendered script for a node whose Redis listens on `port`, its password file moved into the scratch directory. */
function gate(port: number): number {
  const s = resolveRedisSentinelGroupSettings({ enabled: true, port, nodes: [{ name: "r1", address: "10.213.7.41" }, { name: "r2", address: "10.213.7.42" }, { name: "r3", address: "10.213.7.43" }] }, "10.213.7.0/24")!;
  const pass = path.join(dir, "cli.pass");
  fs.writeFileSync(pass, PASSWORD);
  const script = path.join(dir, `health-${port}.sh`);
  fs.writeFileSync(script, renderHealthScript(s).split(REDIS_PATHS.cliPass).join(pass));
  return spawnSync("sh", [script, "local"]).status ?? -1;
}

async function until(what: string, ok: () => boolean, s: number): Promise<number> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > s * 1000) throw new Error(`${what} not within ${s} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return Date.now() - t0;
}

describe("Redis rolling-restart gate (health local) against real redis-server", () => {
  it("passes for a master that answers, and not before it listens", async () => {
    const port = await freePort();
    expect(gate(port)).not.toBe(0);
    redis(port);
    await until("master gate", () => gate(port) === 0, 20);
  });

  it("holds a replica until its full sync is done, then passes", async () => {
    const master = await freePort();
    redis(master);
    await until("master up", () => gate(master) === 0, 20);
    const replica = await freePort();
    redis(replica, ["--replicaof", "127.0.0.1", String(master)]);
    // answering PING is not enough: at first the link is down (the master waits repl-diskless-sync-delay)
    await until("replica answers", () => spawnSync("redis-cli", ["-p", String(replica), "ping"], { env: { ...process.env, REDISCLI_AUTH: PASSWORD }, encoding: "utf8" }).stdout.trim() === "PONG", 20);
    expect(gate(replica)).not.toBe(0);
    await until("replica synced", () => gate(replica) === 0, SYNC_DELAY_S + 30);
    const info = spawnSync("redis-cli", ["-p", String(replica), "info", "replication"], { env: { ...process.env, REDISCLI_AUTH: PASSWORD }, encoding: "utf8" }).stdout;
    expect(info).toMatch(/master_link_status:up/);
  });

  it("never passes for a replica whose master is gone", async () => {
    const replica = await freePort();
    redis(replica, ["--replicaof", "127.0.0.1", String(await freePort())]);
    await until("replica answers", () => spawnSync("redis-cli", ["-p", String(replica), "ping"], { env: { ...process.env, REDISCLI_AUTH: PASSWORD }, encoding: "utf8" }).stdout.trim() === "PONG", 20);
    await new Promise((r) => setTimeout(r, 3000));
    expect(gate(replica)).not.toBe(0);
  });
});
