// VMs made through VMmanager's API that really boot, then get configured, all through the real
// Pulumi engine. The VMmanager emulator runs in this process with the lab hook, so each
// `host_create` boots an nspawn VM (lab/vm.sh) with the requested address and each `host_delete`
// removes it. The stack is the smallest the datacenter accepts: a 3-member Patroni/etcd cluster and
// the PgBouncer pair behind its VIP (Redis off; no app tier, which takes a `hastack:site` section),
// all five hosts `vm: true`.
// Needs root. Own lab: bridge hsvmm0, 10.213.13.0/24, disks /var/lib/hastack-vmm, state lab/.vmm-state,
// cgroup hastack-vmm; the main lab (hsbr0) and the two-site lab (hsbr1/2, 10.213.11-12) are untouched.
import { execFile, execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import axios from "axios";
import { ConfigMap, Stack } from "@pulumi/pulumi/automation";
import { changes, openStack, readStateFiles, REPO } from "../../engine/automation";
import { offlineCertificates, offlinePasswords, secretLeaves } from "../../engine/offline-secrets";
import { VmInputs, vmProvider } from "../../inventory/vmmanager";
import { LabVmManager, startLabVmManager, viaVmManager, VMM_USER } from "../../lab/vmmanager";
import { FACTS_TYPE } from "../../policy/facts";
import { until } from "../support/until";

const run = promisify(execFile);
const LAB = path.join(REPO, "lab");
const STATE = path.join(LAB, ".vmm-state");
const LAB_ROOT = "/var/lib/hastack-vmm";
const ENV = {
  ...process.env,
  HASTACK_LAB_STATE: STATE, HASTACK_LAB_ROOT: LAB_ROOT, HASTACK_LAB_BRIDGE: "hsvmm0", HASTACK_LAB_CGROUP: "hastack-vmm",
  HASTACK_LAB_SUBNET_BASES: "10.213.13.", HASTACK_LAB_HOST_ADDR: "10.213.13.1",
};
const SUBNET = "10.213.13.0/24";
const STACK = "vmmlab";
// host names unlike the other labs' (pg1, d1pg1): a VM's veth is vb-<name>, one namespace for all labs
const PG = [{ name: "vmpg1", address: "10.213.13.11" }, { name: "vmpg2", address: "10.213.13.12" }, { name: "vmpg3", address: "10.213.13.13" }];
const PX = [{ name: "vmpx1", address: "10.213.13.21" }, { name: "vmpx2", address: "10.213.13.22" }];
const VIP = "10.213.13.20";
const VM_TYPE = "pulumi-nodejs:dynamic/hastack:VmManagerVm";

jest.setTimeout(20 * 60 * 1000);
const progress = (msg: string) => process.stderr.write(`e2e-vmm: ${new Date().toISOString()} ${msg}\n`);
beforeEach(() => progress(`start: ${expect.getState().currentTestName}`));
afterEach(() => progress(`end: ${expect.getState().currentTestName}`));

const labDown = () => execFileSync("bash", [path.join(LAB, "down.sh")], { env: ENV, stdio: "inherit" });

/** ssh into one of this lab's VMs by name; `stdin` carries anything secret. */
async function ssh(name: string, cmd: string, stdin?: string): Promise<string> {
  const p = run("bash", [path.join(LAB, "ssh.sh"), name, cmd], { env: ENV, timeout: 30000 });
  p.child.stdin!.end(stdin ?? "");
  return (await p).stdout.trim();
}

/** `vm.sh status` of this lab: machine name → "running" | "stopped". */
function machines(): Record<string, string> {
  const out = execFileSync("bash", [path.join(LAB, "vm.sh"), "status"], { env: ENV, encoding: "utf8" });
  return Object.fromEntries(out.trim().split("\n").slice(1).filter(Boolean).map((l) => l.split(/\s+/)).map((f) => [f[0], f[2]]));
}

/** Live systemd-nspawn processes of this lab's disks (by the overlay path in their command line). */
function nspawnsOfThisLab(): string[] {
  return fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).flatMap((p) => {
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").join(" ");
      return cmd.includes("systemd-nspawn") && cmd.includes(` -D ${LAB_ROOT}/`) ? [cmd] : [];
    } catch { return []; }
  });
}

async function leader(): Promise<{ name: string; address: string } | undefined> {
  for (const m of PG) {
    try { if ((await axios.get(`http://${m.address}:8008/primary`, { timeout: 2000, validateStatus: () => true })).status === 200) return m; } catch { /* down */ }
  }
  return undefined;
}

const sql = (q: string) => `cd /tmp && runuser -u postgres -- psql -X -tA -d workspad -c "${q}"`;

describe("VMmanager VMs that boot for real, then get configured (needs root: nspawn VMs on hsvmm0)", () => {
  let vmm: LabVmManager;
  let stack: Stack;
  const passwords = offlinePasswords() as Record<string, string>;
  // no app tier: the stack PKI signs nothing, only its CA certificate is needed (as in lab/sites.ts)
  const { caCertPem } = offlineCertificates([]);
  const durations: Record<string, number> = {};
  const timed = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try { return await f(); } finally { durations[what] = Math.round((Date.now() - t0) / 1000); progress(`${what}: ${durations[what]} s`); }
  };
  const hostNamed = (machine: string) => [...vmm.emu.hosts.values()].find((h) => h.name === `${STACK}-${machine}`);

  /** The stack config as for hand-made hosts, then turned into VMmanager VMs the way lab/vmmanager.ts does it. */
  const config = (allowDeletingDataVms: boolean): ConfigMap => {
    const obj = (v: unknown) => ({ value: JSON.stringify(v) });
    return viaVmManager({
      "hastack:subnet": { value: SUBNET },
      "hastack:sshPrivateKey": { value: fs.readFileSync(path.join(STATE, "id_ed25519"), "utf8"), secret: true },
      "hastack:ssh": obj({ user: "root", port: 22 }),
      // a one-site "site" stack: the datacenter's only form without an app tier (lab/sites.ts has two)
      "hastack:site": obj({ name: STACK, peers: [], primarySite: STACK, epoch: 1 }),
      "hastack:postgres": obj({ nodes: PG, failoverProfile: "aggressive" }),
      "hastack:proxy": obj({ nodes: PX, vip: VIP, interface: "host0" }),
      "hastack:redis": obj({ enabled: false }),
      "hastack:firewall": obj({ adminSources: ["10.213.13.1/32"] }),
      ...secretLeaves("hastack:passwords", passwords),
      ...secretLeaves("hastack:certificates", { caCertPem }),
      // the policy pack refuses unprotected database VMs unless the stack says why (README "Policies")
      ...(allowDeletingDataVms ? { "hastack:policy": obj({ waivers: { unprotectedDataVms: "the lab test deletes its VMs" } }) } : {}),
    }, { url: vmm.emu.url, password: vmm.password, allowDeletingDataVms });
  };
  const open = async (allowDeletingDataVms: boolean) => {
    const workDir = path.join(STATE, "project");
    fs.mkdirSync(workDir, { recursive: true });
    fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(workDir, "Pulumi.yaml"));
    stack = await openStack({ stackName: STACK, config: config(allowDeletingDataVms), workDir },
      { backendDir: path.join(STATE, "pulumi"), passphrase: "hastack-vmm-lab" });
  };
  const out = { onOutput: (s: string) => process.stdout.write(s) };

  beforeAll(async () => {
    labDown(); // what an interrupted run left
    execFileSync("bash", [path.join(LAB, "vm.sh"), "key"], { env: ENV, stdio: ["ignore", "ignore", "inherit"] });
    vmm = await startLabVmManager({ subnet: SUBNET, namePrefix: `${STACK}-`, password: crypto.randomBytes(18).toString("base64url"), env: ENV });
    await open(false);
  });

  afterAll(async () => {
    progress(`durations (s): ${JSON.stringify(durations)}`);
    await vmm?.emu.close();
    if (!process.env.HASTACK_KEEP_LAB) labDown();
  });

  it("a boot that fails fails host_create; the provider deletes the VM record and no machine is left", async () => {
    // the pool's first address is the lab host's own on the bridge: VMmanager hands it out, vm.sh refuses to boot on it
    const e = await vmProvider.create!({
      url: vmm.emu.url, user: VMM_USER, password: vmm.password, vmName: `${STACK}-vmbad`, role: "proxy", address: "10.213.13.1",
      cluster: 1, osTemplate: 1, ipPool: 1, cpu: 1, ramMiB: 1024, diskGiB: 10, deletionProtected: false,
      timing: { pollMs: 200, backoffMs: 50, attempts: 3 },
    } as VmInputs).catch((x) => x);
    expect(String(e?.message)).toMatch(/VMmanager could not create VM vmmlab-vmbad .*address '10\.213\.13\.1' not usable for a VM.*the VM it left \(VMmanager id \d+\) was deleted/);
    expect(vmm.emu.hosts.size).toBe(0);
    expect(machines()).toEqual({});
    expect(nspawnsOfThisLab()).toEqual([]);
  });

  it("pulumi up from nothing creates the five VMs through the API (each a booted nspawn VM) and configures them", async () => {
    expect(nspawnsOfThisLab()).toEqual([]);
    const r = await timed("first up", () => stack.up(out));
    expect(r.summary.result).toBe("succeeded");
    const all = [...PG, ...PX];
    expect([...vmm.emu.hosts.values()].map((h) => [h.name, h.ip4[0].ip, h.state]).sort())
      .toEqual(all.map((h) => [`${STACK}-${h.name}`, h.address, "active"]).sort());
    expect(vmm.hook.created.sort()).toEqual(all.map((h) => h.name).sort());
    expect(machines()).toEqual(Object.fromEntries(all.map((h) => [h.name, "running"])));
    expect(nspawnsOfThisLab()).toHaveLength(5);
    // each VM is the host it claims: its hostname and address from inside
    for (const h of all) expect(await ssh(h.name, "hostname; ip -4 -br addr show host0 | awk '{print $3}'")).toBe(`${h.name}\n${h.address}/24`);
    expect(r.outputs.postgres.value.members.map((m: { name: string }) => m.name).sort()).toEqual(PG.map((m) => m.name));
  });

  let relation = "", leaderName = "";
  it("the configured cluster works: a write through the PgBouncer VIP lands on the Patroni leader and streams to the replicas", async () => {
    const l = await until("a Patroni leader", leader, 60);
    leaderName = l.name;
    const pgpass = `*:*:*:workspad:${passwords.postgresApp.replace(/\\/g, "\\\\").replace(/:/g, "\\:")}\n`;
    const mark = `vmm-${Date.now()}`;
    const res = await ssh("vmpx2", `umask 077; f=$(mktemp); trap 'rm -f "$f"' EXIT; cat > "$f"; PGPASSFILE="$f" PGCONNECT_TIMEOUT=5 psql -X -qtA -h ${VIP} -p 6432 -U workspad -d workspad -c "create table if not exists notes(body text); insert into notes values ('${mark}') returning host(inet_server_addr())"`, pgpass);
    expect(res).toBe(l.address);
    expect(await ssh(l.name, sql(`select count(*) from notes where body = '${mark}'`))).toBe("1");
    for (const r of PG.filter((m) => m.name !== l.name)) {
      await until(`${mark} on ${r.name}`, async () => (await ssh(r.name, sql(`select count(*) from notes where body = '${mark}'`))) === "1", 60);
      expect(await ssh(r.name, sql("select pg_is_in_recovery()"))).toBe("t");
    }
    relation = await ssh(l.name, sql("select current_setting('data_directory') || '/' || pg_relation_filepath('notes')"));
    expect(relation).toMatch(/^\/var\/lib\/postgresql\/15\/hastack\/base\/\d+\/\d+$/);
  });

  it("a second pulumi up changes nothing", async () => {
    const r = await timed("second up", () => stack.up(out));
    expect(changes(r.summary.resourceChanges)).toEqual({});
  });

  it("keeps the VMmanager password out of the state in clear", () => {
    const state = readStateFiles(path.join(STATE, "pulumi"));
    expect(state).toContain(`${STACK}-vmpg1`);
    expect(state).not.toContain(vmm.password);
  });

  it("pulumi destroy refuses to delete the database VMs: they stay active and running, their data on disk", async () => {
    const e = await timed("refused destroy", () => stack.destroy(out).catch((x) => x));
    expect(e).toBeInstanceOf(Error);
    expect(String(e.message)).toMatch(new RegExp(`VM ${STACK}-vmpg\\d \\(VMmanager id \\d+, postgres\\) is protected from deletion because it holds postgres data\\. To delete it, set hastack:vmmanager\\.allowDeletingDataVms to true`));
    const m = machines();
    for (const h of PG) {
      expect(hostNamed(h.name)?.state).toBe("active");
      expect(m[h.name]).toBe("running");
    }
    // the table written above is still on the leader's disk (the services were stopped, nothing deleted)
    expect(relation).not.toBe("");
    expect(await ssh(leaderName, `test -e ${relation} && echo kept || echo gone`)).toBe("kept");
    // the proxies are not protected: each one is either deleted with its machine, or (if the engine
    // stopped at the refusal first) still both a VMmanager host and a running machine, never half
    for (const h of PX) expect([hostNamed(h.name) ? "active" : "deleted", m[h.name] ?? "deleted"]).toEqual(hostNamed(h.name) ? ["active", "running"] : ["deleted", "deleted"]);
  });

  it("pulumi refresh shows a VM deleted in VMmanager (its machine gone too)", async () => {
    const h = hostNamed("vmpg3")!;
    vmm.emu.removeHost(h.id);
    await vmm.hook.deleteHost(h);
    expect(machines().vmpg3).toBeUndefined();
    const r = await timed("refresh", () => stack.refresh(out));
    expect(changes(r.summary.resourceChanges)).toEqual({ delete: 1 });
    const vms = (await stack.exportStack()).deployment.resources.filter((x: { type: string }) => x.type === VM_TYPE);
    expect(vms.map((x: { outputs: { vmName: string } }) => x.outputs.vmName)).not.toContain(`${STACK}-vmpg3`);
  });

  it("with allowDeletingDataVms, an up of the VMs changes only the flag, and destroy deletes every VM and its machine", async () => {
    await open(true);
    const resources = (await stack.exportStack()).deployment.resources as { type: string; urn: string }[];
    const vms = resources.filter((x) => x.type === VM_TYPE).map((x) => x.urn);
    const facts = resources.filter((x) => x.type === FACTS_TYPE).map((x) => x.urn);
    expect(facts).toHaveLength(1);
    // the refused destroy took the configuration away: a whole `up` would rebuild the datacenter
    // only to delete it, so this one targets the VMs (what the flag lives on) and the policy marker
    // (which carries the waiver the policy pack needs to let unprotected database VMs through)
    const up = await timed("flag up", () => stack.up({ ...out, target: [...vms, ...facts] }));
    expect(changes(up.summary.resourceChanges)).toEqual({ update: 3 }); // vmpg1, vmpg2: protection off; the marker: the waiver
    const d = await timed("destroy", () => stack.destroy(out));
    expect(d.summary.result).toBe("succeeded");
    expect(vmm.emu.hosts.size).toBe(0);
    expect(machines()).toEqual({});
    expect(nspawnsOfThisLab()).toEqual([]);
    expect(fs.readdirSync(LAB_ROOT)).toEqual([]);
  });
});
