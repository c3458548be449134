// Scale out and in of etcd, with real etcd members on loopback addresses: the rendered join script adds a new
// member to a running cluster that has authentication on (root's login from the etcdctl env file, as on a
// host), the member starts from /etc/default/etcd's settings overridden by the join file (as the systemd
// drop-in orders them) and joins; the leave script removes a member only when the stack's wanted-members key
// no longer names it (a `pulumi destroy` leaves the key as it was: nobody leaves). Needs root (as the other
// daemon tests) and etcd/etcdctl from Debian.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as mb from "../../components/patroniCluster/membership";
import * as r from "../../components/patroniCluster/render";
import { freePort } from "../support/ports";

jest.setTimeout(8 * 60 * 1000);
const WAIT_MS = 180000;
const ROOT_PW = `r/=t'"$Root`;
const PATRONI_PW = `p/=t'"$Etcd`;
const ALL = ["t1", "t2", "t3", "t4", "t5"].map((name, i) => ({ name, address: `127.0.0.${31 + i}` }));
const FIRST = ALL.slice(0, 3);

async function until(probe: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (probe()) return true;
    await new Promise((res) => setTimeout(res, 300));
  }
  return false;
}

describe("etcd membership follows the node list (needs root; real etcd on 127.0.0.31-35)", () => {
  let tmp: string;
  let clientPort: number;
  let peerPort: number;
  let files: mb.Files;
  const procs = new Map<string, ChildProcess>();
  const logs = new Map<string, string>();
  const dataDir = (name: string) => path.join(tmp, `etcd-${name}`);
  const sh = (script: string) => spawnSync("bash", ["-c", script], { encoding: "utf8" });
  const ctl = (args: string[], endpoints = FIRST) => spawnSync("etcdctl", [`--endpoints=${r.etcdEndpoints(endpoints, clientPort)}`, "--command-timeout=5s", ...args],
    { env: { PATH: process.env.PATH, ETCDCTL_API: "3", ETCDCTL_USER: "root", ETCDCTL_PASSWORD: ROOT_PW }, encoding: "utf8" });
  /** name → status ("started"/"unstarted") of `member list`. */
  const members = (endpoints = FIRST): Record<string, string> => {
    const out = ctl(["member", "list", "-w", "simple"], endpoints);
    if (out.status !== 0) return {};
    return Object.fromEntries(out.stdout.trim().split("\n").map((l) => l.split(", ")).map((f) => [f[2] || f[3], f[1]]));
  };

  /** One member as Debian's unit runs it: /etc/default/etcd's variables, then the join file's (a later EnvironmentFile wins). */
  const start = (self: { name: string; address: string }, nodes: typeof ALL) => {
    const env = r.parseEnvFile(r.renderEtcdEnv({ member: self, nodes, clientPort, peerPort, dataDir: dataDir(self.name), clusterName: "ms" }));
    const join = fs.existsSync(files.joinEnv) ? r.parseEnvFile(fs.readFileSync(files.joinEnv, "utf8")) : {};
    // every member on one machine: each listens on its own address only (a host's member also listens on 127.0.0.1)
    const own = { ETCD_LISTEN_CLIENT_URLS: `http://${self.address}:${clientPort}` };
    const p = spawn("/usr/bin/etcd", [], { env: { PATH: process.env.PATH, ...env, ...join, ...own }, stdio: ["ignore", "pipe", "pipe"] });
    logs.set(self.name, "");
    const add = (d: Buffer) => logs.set(self.name, (logs.get(self.name)! + d.toString()).slice(-6000));
    p.stdout!.on("data", add);
    p.stderr!.on("data", add);
    procs.set(self.name, p);
  };
  const healthy = (nodes: typeof ALL) => sh(r.etcdHealthProbe(nodes, clientPort)).status === 0;
  const why = () => [...logs.entries()].map(([n, l]) => `--- ${n}\n${l.slice(-1500)}`).join("\n");

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-etcd-members-"));
    [clientPort, peerPort] = [await freePort(), await freePort()];
    files = { etcdctlEnv: path.join(tmp, "etcdctl.env"), joinEnv: path.join(tmp, "join.env") };
    fs.writeFileSync(files.etcdctlEnv, r.renderEtcdctlEnv(ROOT_PW), { mode: 0o600 });
  });

  afterAll(() => {
    for (const p of procs.values()) if (p.exitCode === null) p.kill("SIGKILL");
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("a first deploy: the first member finds no cluster and keeps the rendered `new` settings; the three form one cluster with auth on", async () => {
    for (const m of FIRST) {
      fs.writeFileSync(files.joinEnv, "stale");
      const run = sh(mb.etcdJoinScript(m, FIRST, clientPort, peerPort, dataDir(m.name), files));
      expect([m.name, run.status, run.stderr]).toEqual([m.name, 0, ""]);
      // later members may find the first two already in quorum: they are listed (not started) and join as
      // `existing` with the same three members, which etcd accepts as well; nobody is added
      if (m === FIRST[0]) expect(fs.existsSync(files.joinEnv)).toBe(false);
      else if (fs.existsSync(files.joinEnv)) expect(r.parseEnvFile(fs.readFileSync(files.joinEnv, "utf8")).ETCD_INITIAL_CLUSTER.split(",").length).toBe(3);
      start(m, FIRST);
    }
    if (!(await until(() => healthy(FIRST), WAIT_MS))) throw new Error(`three members never healthy\n${why()}`);
    const auth = spawnSync("bash", ["-c", `set -eu\n${r.etcdAuthScript(FIRST, clientPort)}`], { input: r.renderEtcdAuthStdin(ROOT_PW, PATRONI_PW), encoding: "utf8" });
    expect([auth.status, auth.stdout.trim()]).toEqual([0, "etcd authentication enabled"]);
    // the join script of a member that has data does nothing
    fs.rmSync(files.joinEnv, { force: true });
    const again = sh(mb.etcdJoinScript(FIRST[0], ALL, clientPort, peerPort, dataDir("t1"), files));
    expect([again.status, again.stdout, fs.existsSync(files.joinEnv)]).toEqual([0, "", false]);
  });

  it("scale out 3 → 5: each new member is added through root's login and starts with the cluster's membership", async () => {
    for (const m of ALL.slice(3)) {
      const run = sh(mb.etcdJoinScript(m, ALL, clientPort, peerPort, dataDir(m.name), files));
      expect([m.name, run.status, run.stderr]).toEqual([m.name, 0, ""]);
      expect(run.stdout).toContain(`joining the running etcd cluster as ${m.name}`);
      const join = r.parseEnvFile(fs.readFileSync(files.joinEnv, "utf8"));
      expect(join.ETCD_INITIAL_CLUSTER_STATE).toBe("existing");
      expect(join.ETCD_INITIAL_CLUSTER).toContain(`${m.name}=http://${m.address}:${peerPort}`);
      start(m, ALL);
      const upTo = ALL.slice(0, ALL.indexOf(m) + 1);
      if (!(await until(() => healthy(upTo) && members()[m.name] === "started", WAIT_MS))) throw new Error(`${m.name} never joined\n${why()}`);
    }
    expect(members(ALL)).toEqual(Object.fromEntries(ALL.map((m) => [m.name, "started"])));
    // the keys written before the scale-out are there on the new members
    expect(ctl(["get", "--print-value-only", "/hastack-probe"], [ALL[4]]).stdout.trim()).toBe("");
    expect(ctl(["put", "/hastack-probe", "x"]).status).toBe(0);
    expect(ctl(["get", "--print-value-only", "/hastack-probe"], [ALL[4]]).stdout.trim()).toBe("x");
  });

  it("a destroy (the wanted members still name everyone) removes nobody", () => {
    expect(sh(mb.desiredMembersScript(ALL, clientPort, peerPort, files)).status).toBe(0);
    const run = sh(mb.etcdLeaveScript(ALL[4], ALL, clientPort, peerPort, dataDir("t5"), files));
    expect([run.status, run.stdout]).toEqual([0, ""]);
    expect(Object.keys(members(ALL)).length).toBe(5);
  });

  it("scale in 5 → 3: a wanted member removes the others (they may be cut off by then), the rest keep a healthy quorum", async () => {
    const keep = [ALL[0], ALL[2], ALL[3]];
    const run = sh(mb.desiredMembersScript(keep, clientPort, peerPort, files));
    expect([run.status, run.stdout.trim().split("\n").sort()]).toEqual([0, [ALL[1], ALL[4]].map((m) => `removed the etcd member at http://${m.address}:${peerPort}`)]);
    expect(Object.keys(members(keep)).sort()).toEqual(keep.map((m) => m.name).sort());
    // the leavers' own delete then finds nothing left to do
    for (const m of [ALL[1], ALL[4]]) {
      const leave = sh(mb.etcdLeaveScript(m, keep, clientPort, peerPort, dataDir(m.name), files));
      expect([m.name, leave.status, leave.stdout.trim()]).toEqual([m.name, 0, ""]);
    }
    // run again: idempotent
    expect(sh(mb.desiredMembersScript(keep, clientPort, peerPort, files)).stdout.trim()).toBe("");
    // a removed member's etcd stops by itself once it learns it was removed
    for (const m of [ALL[1], ALL[4]]) {
      if (!(await until(() => procs.get(m.name)!.exitCode !== null, 60000))) throw new Error(`${m.name} still runs after its removal\n${why()}`);
    }
    expect(healthy(keep)).toBe(true);
  });
});
