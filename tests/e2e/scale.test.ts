// Scale out and in of the PostgreSQL tier by editing hastack:postgres.nodes, through the real engine, with a
// writer through the PgBouncer VIP the whole time: 3 → 5 members (two etcd members join the running
// cluster, two Patroni replicas clone), then 5 → 3 removing the leader among others (it switches over
// before it stops; the leaving etcd members leave the cluster). No acknowledged write may be lost, and a
// second `up` after each change changes nothing.
// Needs root. Own lab: bridge hssc0, 10.213.25.0/24, disks /var/lib/hastack-scale, state lab/.scale-state,
// cgroup hastack-scale; VM names scpg1-5, scpx1-2 (unique across labs: a VM's veth is vb-<name>).
import axios from "axios";
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
/**
 * One drill's figures; with HASTACK_DRILL_RECORD=<file> also appended there as a JSON line (bench/drillRuns.ts runs
 * this file several times and takes the medians).
 */
function record(drill: string, w: { acked: { at: number }[]; errors: string[]; lost: number; eventAt: number; endAt: number }): number {
  const pause = longestPause(w.acked, w.eventAt, w.endAt);
  const row = { drill, acknowledged: w.acked.length, failed: w.errors.length, lost: w.lost, pauseSeconds: pause,
    upSeconds: Math.round((w.endAt - w.eventAt) / 100) / 10, at: new Date().toISOString() };
  progress(`${drill}: ${JSON.stringify(row)}`);
  if (process.env.HASTACK_DRILL_RECORD) fs.appendFileSync(process.env.HASTACK_DRILL_RECORD, JSON.stringify(row) + "\n");
  return pause;
}
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

  const config = (pg: typeof PG, pw: typeof passwords): ConfigMap => {
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
      ...secretLeaves("hastack:passwords", pw),
      ...secretLeaves("hastack:certificates", { caCertPem }),
    };
  };
  const open = async (pg: typeof PG, pw = passwords) => {
    const workDir = path.join(STATE, "project");
    fs.mkdirSync(workDir, { recursive: true });
    fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(workDir, "Pulumi.yaml"));
    stack = await openStack({ stackName: STACK, config: config(pg, pw), workDir }, { backendDir: path.join(STATE, "pulumi"), passphrase: "hastack-scale-lab" });
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
    const pause = record("scale out 3 → 5", w);
    progress(`scale out: leader ${leaderBefore} -> ${leaderAfter}`);
    // the old members' etcd keeps running: only ETCD_INITIAL_* changed in their files, which a running member never reads
    expect(await etcdPids()).toEqual(pidsBefore);
    expect(w.value.summary.result).toBe("succeeded");
    expect(w.lost).toBe(0);
    expect(w.acked.length).toBeGreaterThan(50);
    // the proxies' reload and the new members move no leader
    expect(leaderAfter).toBe(leaderBefore);
    // idle: 0.5 s; under CI's three streams twice 13.2 s with the leader unchanged (cause not found yet: see the
    // README's scaling section). The bound catches a failover's wait on top of that, not the 13 s itself.
    expect(pause).toBeLessThan(20);
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
    const pause = record("scale in 5 → 3, the leader removed", w);
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

  it("rotating the superuser, replication and rewind passwords under a writer: nothing lost, the replicas reconnect on the new ones, a switchover and the old leader's rejoin work, then nothing to change", async () => {
    const members = (await cluster("scpg1").catch(() => cluster("scpg3"))).map((m) => m.name).sort();
    const keep = PG.filter((m) => members.includes(m.name));
    const via = keep[0].name;
    const rotated = { ...passwords, postgresSuperuser: `${passwords.postgresSuperuser}R`, postgresReplication: `${passwords.postgresReplication}R`,
      postgresRewind: `${passwords.postgresRewind}R` };
    await open(keep, rotated);
    const leaderHost = async () => (await cluster(via)).find((m) => m.role === "leader")!.name;
    const w = await writeDuring("rotation", 5, () => stack.up(out), 5, writer());
    const pause = record("password rotation (superuser, replication, rewind)", w);
    expect(w.value.summary.result).toBe("succeeded");
    expect(w.lost).toBe(0);
    // no switchover, no restart: a reload of each member
    expect(pause).toBeLessThan(10);
    // The replicas keep their replication connections: Patroni's primary_conninfo names its passfile, whose new
    // content serves only new logins. So make them log in again: a switchover, after which the old leader rejoins
    // (pg_rewind if needed, the rewind login) and every replica streams from the new leader on a walsender that
    // started after it, i.e. on a login with the new replication password (the role refuses the old one).
    await until("a healthy cluster", async () => healthy(await cluster(via), keep.map((m) => m.name)), 120, 2000);
    const leader = await leaderHost();
    const candidate = keep.find((m) => m.name !== leader)!.name;
    const since = await ssh(candidate, "date -u +%s");
    const res = await axios.post(`http://${PG.find((m) => m.name === leader)!.address}:8008/switchover`, { leader, candidate },
      { auth: { username: "patroni", password: passwords.patroniRest }, timeout: 60000, validateStatus: () => true });
    expect(res.status).toBe(200);
    const q = `select count(*) from pg_stat_replication where state = 'streaming' and extract(epoch from backend_start) > ${since}`;
    await until("every replica, the old leader too, streaming from the new leader on a login made after the rotation", async () =>
      (await leaderHost()) === candidate && healthy(await cluster(via), keep.map((m) => m.name))
      && Number(await ssh(candidate, `cd /tmp && runuser -u postgres -- psql -X -tA -c ${JSON.stringify(q)}`)) === keep.length - 1, 180, 2000);
    const r = await stack.up(out);
    expect(changes(r.summary.resourceChanges)).toEqual({});
  });
});
