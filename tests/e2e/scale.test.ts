// Scale out and in of the PostgreSQL tier by editing hastack:postgres.nodes, through the real engine, with a
// writer through the PgBouncer VIP the whole time: 3 → 5 members (two etcd members join the running
// cluster, two Patroni replicas clone), then 5 → 3 removing the leader among others (it switches over
// before it stops; the leaving etcd members leave the cluster). No acknowledged write may be lost, and a
// second `up` after each change changes nothing.
// Needs root. Own lab: bridge hssc0, 10.213.25.0/24, disks /var/lib/hastack-scale, state lab/.scale-state,
// cgroup hastack-scale; VM names scpg1-5, scpx1-2 (unique across labs: a VM's veth is vb-<name>).
import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { ConfigMap, Stack } from "@pulumi/pulumi/automation";
import { changes, openStack, REPO } from "../../engine/automation";
import { offlineCertificates, offlinePasswords, secretLeaves } from "../../engine/offline-secrets";
import { longestPause, writeDuring } from "../../bench/day2";
import { until } from "../support/until";

const run = promisify(execFile);
const LAB = path.join(REPO, "lab");
const STATE = path.join(LAB, ".scale-state");
const ENV = {
  ...process.env,
  HASTACK_LAB_STATE: STATE, HASTACK_LAB_ROOT: "/var/lib/hastack-scale", HASTACK_LAB_BRIDGE: "hssc0", HASTACK_LAB_CGROUP: "hastack-scale",
  HASTACK_LAB_SUBNET_BASES: "10.213.25.", HASTACK_LAB_HOST_ADDR: "10.213.25.1",
};
const SUBNET = "10.213.25.0/24";
const STACK = "scalelab";
const PG = [1, 2, 3, 4, 5].map((i) => ({ name: `scpg${i}`, address: `10.213.25.${10 + i}` }));
const PX = [{ name: "scpx1", address: "10.213.25.21" }, { name: "scpx2", address: "10.213.25.22" }];
const VIP = "10.213.25.20";

jest.setTimeout(20 * 60 * 1000);
const progress = (msg: string) => process.stderr.write(`e2e-scale: ${new Date().toISOString()} ${msg}\n`);
beforeEach(() => progress(`start: ${expect.getState().currentTestName}`));
afterEach(() => progress(`end: ${expect.getState().currentTestName}`));

const sh = (script: string, args: string[]) => execFileSync("bash", [path.join(LAB, script), ...args], { env: ENV, stdio: ["ignore", "inherit", "inherit"] });
const labDown = () => sh("down.sh", []);

async function ssh(name: string, cmd: string): Promise<string> {
  const p = run("bash", [path.join(LAB, "ssh.sh"), name, cmd], { env: ENV, timeout: 30000 });
  p.child.stdin!.end("");
  return (await p).stdout.trim();
}

interface Member { name: string; role: string; state: string }
/** Patroni's /cluster as member `via` sees it (its REST API listens on its own address). */
const cluster = async (via: string): Promise<Member[]> =>
  JSON.parse(await ssh(via, `curl -sf --max-time 5 http://${PG.find((m) => m.name === via)!.address}:8008/cluster`)).members;
/** etcd's members as name → status, asked on `via` with root's login (from the file the stack puts there). */
async function etcdMembers(via: string): Promise<Record<string, string>> {
  const out = await ssh(via, ". /etc/etcd/hastack-etcdctl.env; etcdctl --endpoints=http://127.0.0.1:2379 member list -w simple");
  return Object.fromEntries(out.split("\n").map((l) => l.split(", ")).map((f) => [f[2], f[1]]));
}
const healthy = (members: Member[], names: string[]) =>
  members.length === names.length && names.every((n) => members.some((m) => m.name === n && ["running", "streaming"].includes(m.state)))
  && members.filter((m) => m.role === "leader").length === 1;

describe("scale the PostgreSQL tier out and in through hastack:postgres.nodes (needs root: nspawn VMs on hssc0)", () => {
  let stack: Stack;
  const passwords = offlinePasswords();
  const { caCertPem } = offlineCertificates([]);
  const pwFile = path.join(STATE, "postgresApp.pw");
  const writer = () => [path.join(REPO, "bench", "writer.py"), "--host", VIP, "--port", "6432", "--dbname", "workspad", "--user", "workspad", "--password-file", pwFile];
  const out = { onOutput: (s: string) => process.stdout.write(s) };

  const config = (pg: typeof PG): ConfigMap => {
    const obj = (v: unknown) => ({ value: JSON.stringify(v) });
    return {
      "hastack:subnet": { value: SUBNET },
      "hastack:sshPrivateKey": { value: fs.readFileSync(path.join(STATE, "id_ed25519"), "utf8"), secret: true },
      // pinned as a user would pin them: each VM's own host key (read from its disk, as lab/up-vms.sh does)
      "hastack:ssh": obj({ user: "root", port: 22, hostKeys: Object.fromEntries([...pg, ...PX].map((h) => [h.address,
        fs.readFileSync(`${ENV.HASTACK_LAB_ROOT}/${h.name}/upper/etc/ssh/ssh_host_ed25519_key.pub`, "utf8").split(" ").slice(0, 2).join(" ")])) }),
      // a one-site "site" stack: the datacenter's only form without an app tier
      "hastack:site": obj({ name: STACK, peers: [], primarySite: STACK, epoch: 1 }),
      "hastack:postgres": obj({ nodes: pg, failoverProfile: "aggressive" }),
      "hastack:proxy": obj({ nodes: PX, vip: VIP, interface: "host0" }),
      "hastack:redis": obj({ enabled: false }),
      "hastack:firewall": obj({ adminSources: ["10.213.25.1/32"] }),
      ...secretLeaves("hastack:passwords", passwords),
      ...secretLeaves("hastack:certificates", { caCertPem }),
    };
  };
  const open = async (pg: typeof PG) => {
    const workDir = path.join(STATE, "project");
    fs.mkdirSync(workDir, { recursive: true });
    fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(workDir, "Pulumi.yaml"));
    stack = await openStack({ stackName: STACK, config: config(pg), workDir }, { backendDir: path.join(STATE, "pulumi"), passphrase: "hastack-scale-lab" });
  };

  beforeAll(async () => {
    labDown(); // what an interrupted run left
    sh("net.sh", ["up"]);
    sh("vm.sh", ["key"]);
    await Promise.all([...PG, ...PX].map((h) => run("bash", [path.join(LAB, "vm.sh"), "up", h.name, h.address], { env: ENV, timeout: 300000 })));
    fs.writeFileSync(pwFile, passwords.postgresApp, { mode: 0o600 });
  });

  afterAll(() => {
    if (!process.env.HASTACK_KEEP_LAB) labDown();
  });

  it("pulumi up with three members; the writer's table is there", async () => {
    await open(PG.slice(0, 3));
    const r = await stack.up(out);
    expect(r.summary.result).toBe("succeeded");
    expect(healthy(await cluster("scpg1"), ["scpg1", "scpg2", "scpg3"])).toBe(true);
    expect(Object.keys(await etcdMembers("scpg1")).sort()).toEqual(["scpg1", "scpg2", "scpg3"]);
  });

  it("scale out 3 → 5 under a writer: two etcd members join, two replicas clone, nothing lost, writes never stop for long", async () => {
    await open(PG);
    const etcdPids = async () => Promise.all(PG.slice(0, 3).map((m) => ssh(m.name, "systemctl show -p MainPID --value etcd.service")));
    const pidsBefore = await etcdPids();
    const leaderBefore = (await cluster("scpg1")).find((m) => m.role === "leader")?.name;
    const w = await writeDuring("scale-out", 5, () => stack.up(out), 5, writer());
    const leaderAfter = (await cluster("scpg1")).find((m) => m.role === "leader")?.name;
    progress(`scale out: ${w.acked.length} acknowledged, ${w.errors.length} failed, lost ${w.lost}, longest pause ${longestPause(w.acked, w.eventAt, w.endAt)} s, leader ${leaderBefore} -> ${leaderAfter}`);
    // the old members' etcd keeps running: only ETCD_INITIAL_* changed in their files, which a running member never reads
    expect(await etcdPids()).toEqual(pidsBefore);
    expect(w.value.summary.result).toBe("succeeded");
    expect(w.lost).toBe(0);
    expect(w.acked.length).toBeGreaterThan(50);
    // the proxies' reload and the new members move no leader
    expect(leaderAfter).toBe(leaderBefore);
    // idle: 0.5 s; under CI's three streams twice 13.2 s with the leader unchanged (cause not found yet: see the
    // README's scaling section). The bound catches a failover's wait on top of that, not the 13 s itself.
    expect(longestPause(w.acked, w.eventAt, w.endAt)).toBeLessThan(20);
    expect(await etcdMembers("scpg1")).toEqual(Object.fromEntries(PG.map((m) => [m.name, "started"])));
    await until("five healthy Patroni members", async () => healthy(await cluster("scpg1"), PG.map((m) => m.name)), 120, 2000);
    // the new members hold what was written before they existed
    const rows = await ssh("scpg5", "cd /tmp && runuser -u postgres -- psql -X -tA -d workspad -c 'select count(*) from drill_writes'");
    expect(Number(rows)).toBeGreaterThan(0);
  });

  it("a second up after the scale-out changes nothing", async () => {
    const r = await stack.up(out);
    expect(changes(r.summary.resourceChanges)).toEqual({});
  });

  it("scale in 5 → 3, the leader among the removed: it switches over before it stops, the leavers leave etcd, nothing lost", async () => {
    const leader = (await cluster("scpg2")).find((m) => m.role === "leader")!.name;
    // keep three members that are not the leader; remove the leader and one more
    const keep = PG.filter((m) => m.name !== leader).slice(0, 3);
    const removed = PG.filter((m) => !keep.includes(m)).map((m) => m.name);
    progress(`leader ${leader}; keeping ${keep.map((m) => m.name).join(" ")}; removing ${removed.join(" ")}`);
    await open(keep);
    const w = await writeDuring("scale-in", 5, () => stack.up(out), 8, writer());
    const pause = longestPause(w.acked, w.eventAt, w.endAt);
    progress(`scale in: ${w.acked.length} acknowledged, ${w.errors.length} failed, lost ${w.lost}, longest pause ${pause} s`);
    expect(w.value.summary.result).toBe("succeeded");
    expect(w.lost).toBe(0);
    // one switchover's pause, not a failover's (ttl) wait
    expect(pause).toBeLessThan(15);
    const via = keep[0].name;
    expect(Object.keys(await etcdMembers(via)).sort()).toEqual(keep.map((m) => m.name).sort());
    await until("three healthy Patroni members", async () => healthy(await cluster(via), keep.map((m) => m.name)), 120, 2000);
    for (const name of removed) {
      expect(await ssh(name, "systemctl is-active patroni etcd || true")).toBe("inactive\ninactive");
      // never wiped: the data stays on the removed member's disk
      expect(await ssh(name, "test -s /var/lib/postgresql/15/hastack/PG_VERSION && echo kept")).toBe("kept");
    }
  });

  it("a second up after the scale-in changes nothing", async () => {
    const r = await stack.up(out);
    expect(changes(r.summary.resourceChanges)).toEqual({});
  });
});
