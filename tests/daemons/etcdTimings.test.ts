// etcd's raft timings (hastack:postgres.etcdHeartbeatMs / etcdElectionMs) against the real etcd: what the settings
// accept, etcd starts with from the rendered /etc/default/etcd and reports using; what they refuse at preview, etcd
// refuses too (rendered here past the validation, as a hand-edited file would be). Needs root (as the other daemon
// tests) and etcd from Debian; one member on 127.0.0.41.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolvePatroniClusterSettings } from "../../components/patroniCluster/args";
import * as r from "../../components/patroniCluster/render";
import { freePort } from "../support/ports";

jest.setTimeout(5 * 60 * 1000);
const MEMBER = { name: "t1", address: "127.0.0.41" };
const NODES = [MEMBER, { name: "t2", address: "127.0.0.42" }, { name: "t3", address: "127.0.0.43" }];

/** Start etcd from the rendered file (one member); resolves with its exit code, or "running" once it serves, and its log. */
async function runEtcd(dir: string, timing: { heartbeatMs?: number; electionMs?: number }): Promise<{ result: number | "running"; log: string }> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const env = r.parseEnvFile(r.renderEtcdEnv({ member: MEMBER, nodes: [MEMBER], clientPort, peerPort, dataDir: dir, clusterName: "timing", ...timing }));
  const p: ChildProcess = spawn("/usr/bin/etcd", [], { env: { PATH: process.env.PATH, ...env, ETCD_LISTEN_CLIENT_URLS: `http://${MEMBER.address}:${clientPort}` }, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  p.stdout!.on("data", (d) => (log += d.toString()));
  p.stderr!.on("data", (d) => (log += d.toString()));
  const exited = new Promise<number>((res) => p.on("exit", (code) => res(code ?? -1)));
  const end = Date.now() + 120000;
  let result: number | "running" | undefined;
  while (result === undefined && Date.now() < end) {
    const code = await Promise.race([exited, new Promise<undefined>((res) => setTimeout(() => res(undefined), 300))]);
    if (code !== undefined) result = code;
    else if (/ready to serve client requests/.test(log)) result = "running";
  }
  if (p.exitCode === null) { p.kill("SIGTERM"); await exited; }
  return { result: result ?? "running", log };
}

describe("etcd raft timings (needs root; real etcd on 127.0.0.41)", () => {
  let tmp: string;
  let n = 0;
  const dir = () => path.join(tmp, `d${n++}`);
  const settings = (extra: Record<string, unknown>) => () => resolvePatroniClusterSettings({ nodes: NODES, ...extra }, "127.0.0.0/16");

  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-etcd-timing-")); });
  afterAll(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

  it("what the settings accept, etcd runs with: a WAN-sized heartbeat and election, from the rendered file", async () => {
    const s = settings({ etcdHeartbeatMs: 250, etcdElectionMs: 2500 })();
    const run = await runEtcd(dir(), { heartbeatMs: s.etcdHeartbeatMs, electionMs: s.etcdElectionMs });
    expect(run.result).toBe("running");
    expect(run.log).toMatch(/heartbeat = 250ms/);
    expect(run.log).toMatch(/election = 2500ms/);
  });

  it("unset, nothing is rendered and etcd runs with its own 100 ms / 1000 ms", async () => {
    const s = settings({})();
    const run = await runEtcd(dir(), { heartbeatMs: s.etcdHeartbeatMs, electionMs: s.etcdElectionMs });
    expect(run.result).toBe("running");
    expect(run.log).toMatch(/heartbeat = 100ms/);
    expect(run.log).toMatch(/election = 1000ms/);
  });

  it("an election shorter than 5 heartbeats: refused at preview, and etcd refuses to start on it", async () => {
    expect(settings({ etcdHeartbeatMs: 100, etcdElectionMs: 400 })).toThrow("hastack:postgres.etcdElectionMs");
    const run = await runEtcd(dir(), { heartbeatMs: 100, electionMs: 400 });
    expect(run.result).not.toBe("running");
    expect(run.result).not.toBe(0);
    expect(run.log).toMatch(/election-timeout\[400ms\] should be at least as 5 times as --heartbeat-interval\[100ms\]/);
  });

  it("an election over 50000 ms: refused at preview, and etcd refuses to start on it", async () => {
    expect(settings({ etcdHeartbeatMs: 1000, etcdElectionMs: 50001 })).toThrow("hastack:postgres.etcdElectionMs");
    const run = await runEtcd(dir(), { heartbeatMs: 1000, electionMs: 50001 });
    expect(run.result).not.toBe("running");
    expect(run.log).toMatch(/election-timeout\[50001ms\] is too long/);
  });
});
