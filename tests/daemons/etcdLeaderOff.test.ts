// The shipped etcd-leader-off script against a real 3-member etcd 3.4 cluster on loopback (127.0.0.2-4), with
// authentication on as deployed (the component's etcdAuthScript, root's login file as rendered). Patroni's
// /primary is played by a small HTTP server per member (200 on "the Patroni leader", 503 elsewhere): the script
// only reads that status code. Needs the etcd-server and etcd-client packages; no root.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { AddressInfo } from "net";
import * as r from "../../components/patroniCluster/render";
import * as off from "../../components/patroniCluster/etcdLeaderOff";
import { freePort } from "../support/ports";

jest.setTimeout(240000);
const ROOT_PW = `jhYg/=\\F'"$root`;
const MEMBERS = [{ name: "e1", address: "127.0.0.2" }, { name: "e2", address: "127.0.0.3" }, { name: "e3", address: "127.0.0.4" }];

describe("etcd-leader-off (real etcd cluster on loopback, auth on)", () => {
  let tmp: string, clientPort: number, peerPort: number, credFile: string, script: string;
  const procs: ChildProcess[] = [];
  const servers: http.Server[] = [];
  const primary: Record<string, { url: string; status: number }> = {};
  const endpoints = () => MEMBERS.map((m) => `http://${m.address}:${clientPort}`).join(",");

  /** Member name → is it etcd's leader now (endpoint status of each, as root). */
  const leaderName = (): string | undefined => {
    const p = spawnSync("etcdctl", [`--endpoints=${endpoints()}`, "endpoint", "status", "-w", "json"],
      { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3", ETCDCTL_USER: "root", ETCDCTL_PASSWORD: ROOT_PW } });
    const st = JSON.parse(p.stdout || "[]") as { Endpoint: string; Status: { header: { member_id: number }; leader: number } }[];
    const lead = st.find((e) => e.Status.header.member_id === e.Status.leader);
    return MEMBERS.find((m) => lead?.Endpoint.includes(m.address))?.name;
  };
  const until = async (probe: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end) { if (probe()) return true; await new Promise((res) => setTimeout(res, 300)); }
    return false;
  };
  /** The script as the timer runs it; asynchronously, so this process's stand-in HTTP servers can answer it. */
  const runScript = (name: string) => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const m = MEMBERS.find((x) => x.name === name)!;
    const p = spawn("python3", [script, primary[name].url, `http://${m.address}:${clientPort}`, credFile]);
    let stdout = "", stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (status) => resolve({ status, stdout, stderr }));
  });

  /** The etcd leader's name, waiting out a moment without one (an election, or a slow etcdctl under load). */
  const currentLeader = async (): Promise<string> => {
    if (!(await until(() => leaderName() !== undefined, 30000))) throw new Error("no etcd leader for 30 s");
    return leaderName()!;
  };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "etcd-leader-off-"));
    [clientPort, peerPort] = [await freePort("127.0.0.2"), await freePort("127.0.0.2")];
    const cluster = MEMBERS.map((m) => `${m.name}=http://${m.address}:${peerPort}`).join(",");
    for (const m of MEMBERS) {
      const p = spawn("/usr/bin/etcd", [
        `--name=${m.name}`, `--data-dir=${path.join(tmp, m.name)}`,
        `--listen-peer-urls=http://${m.address}:${peerPort}`, `--initial-advertise-peer-urls=http://${m.address}:${peerPort}`,
        `--listen-client-urls=http://${m.address}:${clientPort}`, `--advertise-client-urls=http://${m.address}:${clientPort}`,
        `--initial-cluster=${cluster}`, "--initial-cluster-state=new", "--initial-cluster-token=leader-off-test", "--enable-v2=false",
      ], { stdio: "ignore" });
      procs.push(p);
      // the stand-in for this member's Patroni /primary
      const srv = http.createServer((req, res) => { res.statusCode = primary[m.name].status; res.end(); });
      await new Promise<void>((res) => srv.listen(0, m.address, res));
      servers.push(srv);
      primary[m.name] = { url: `http://${m.address}:${(srv.address() as AddressInfo).port}/primary`, status: 503 };
    }
    const healthy = () => spawnSync("etcdctl", [`--endpoints=${endpoints()}`, "endpoint", "health"], { env: { ...process.env, ETCDCTL_API: "3" } }).status === 0;
    if (!(await until(healthy, 180000))) throw new Error("etcd cluster never became healthy");
    // authentication on, as the deploy does it (passwords on stdin)
    const auth = spawnSync("bash", ["-c", `set -eu\n${r.etcdAuthScript(MEMBERS, clientPort)}`], { input: r.renderEtcdAuthStdin(ROOT_PW, "patroni-pw"), encoding: "utf8" });
    expect(auth.stderr).toBe("");
    credFile = path.join(tmp, "etcdctl.env");
    fs.writeFileSync(credFile, r.renderEtcdctlEnv(ROOT_PW), { mode: 0o600 });
    script = path.join(tmp, "etcd-leader-off");
    fs.writeFileSync(script, off.etcdLeaderOffScript(), { mode: 0o755 });
    expect(await until(() => leaderName() !== undefined, 30000)).toBe(true);
  });

  afterAll(async () => {
    for (const p of procs) p.kill("SIGKILL");
    for (const s of servers) await new Promise((res) => s.close(res));
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("does nothing on etcd's leader while that host does not lead Patroni", async () => {
    const lead = await currentLeader();
    const res = await runScript(lead);
    expect([res.status, res.stdout, res.stderr]).toEqual([0, "", ""]);
    expect(leaderName()).toBe(lead);
  });

  it("does nothing on a member that leads Patroni but not etcd", async () => {
    const lead = await currentLeader();
    const other = MEMBERS.find((m) => m.name !== lead)!.name;
    primary[other].status = 200;
    try {
      const res = await runScript(other);
      expect([res.status, res.stdout, res.stderr]).toEqual([0, "", ""]);
      expect(leaderName()).toBe(lead);
    } finally { primary[other].status = 503; }
  });

  it("moves etcd's leadership to another member when the host leads both", async () => {
    const lead = await currentLeader();
    primary[lead].status = 200;
    try {
      const res = await runScript(lead);
      expect(res.stderr).toBe("");
      expect(res.status).toBe(0);
      expect(res.stdout).toMatch(/^Leadership transferred from \w+ to \w+ \(this host leads Patroni\)\n$/);
      expect(await until(() => { const now = leaderName(); return now !== undefined && now !== lead; }, 10000)).toBe(true);
      // and the cluster still serves writes, as root
      const put = spawnSync("etcdctl", [`--endpoints=${endpoints()}`, "put", "/after-move", "ok"],
        { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3", ETCDCTL_USER: "root", ETCDCTL_PASSWORD: ROOT_PW } });
      expect(put.stdout.trim()).toBe("OK");
    } finally { primary[lead].status = 503; }
  });

  it("renders a timer that runs the script on the member's own Patroni and etcd, root's login file as its argument", () => {
    const unit = off.renderEtcdLeaderOffService(MEMBERS[0], 8008, 2379);
    expect(unit).toContain(`ExecStart=${off.ETCD_LEADER_OFF_PATH} http://127.0.0.2:8008/primary http://127.0.0.2:2379 ${r.ETCDCTL_ENV_PATH}\n`);
    expect(unit).not.toContain(ROOT_PW);
    expect(off.renderEtcdLeaderOffTimer()).toContain(`OnUnitActiveSec=${off.ETCD_LEADER_OFF_EVERY_S}s\n`);
  });
});
