// The VM provider's create/read/update/delete/diff against the emulator, with the faults of
// issue 10: each one ends in a clear error or recovers, and never leaves a VM the state does not know.
import { startEmulator, VmManagerEmulator } from "../../inventory/vmmanager/emulator";
import { VmInputs, VmOutputs, vmProvider as p } from "../../inventory/vmmanager/provider";

const PASSWORD = "vmm-Pass'word/1";
const FAST = { backoffMs: 5, maxBackoffMs: 20, pollMs: 10, attempts: 5, taskTimeoutMs: 5000 };

describe("VMmanager VM provider against the emulator", () => {
  let emu: VmManagerEmulator;
  let base: VmInputs;
  const vm = (name: string, address: string, extra: Partial<VmInputs> = {}): VmInputs => ({ ...base, vmName: `dc-${name}`, address, ...extra });
  const create = (i: VmInputs) => p.create(i) as Promise<{ id: string; outs: VmOutputs }>;

  beforeEach(async () => {
    emu = await startEmulator({ users: { "ops@example.com": PASSWORD }, taskMs: 20 });
    base = {
      url: emu.url, user: "ops@example.com", password: PASSWORD, vmName: "dc-pg1", role: "postgres", address: "10.213.7.11",
      cluster: 1, osTemplate: 1, ipPool: 1, cpu: 2, ramMiB: 2048, diskGiB: 20, deletionProtected: true, timing: FAST,
    };
  });
  afterEach(() => emu.close());

  it("creates a VM with the planned address, reads it back unchanged, and diffs clean against the same inputs", async () => {
    const r = await create(base);
    expect(r.outs).toMatchObject({ vmId: Number(r.id), address: "10.213.7.11", state: "active", cpu: 2, ramMiB: 2048, diskGiB: 20 });
    const read = await p.read!(r.id, r.outs);
    expect(read.id).toBe(r.id);
    expect(read.props).toEqual(r.outs);
    expect(await p.diff!(r.id, r.outs, base)).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
  });

  it("fails clearly when VMmanager cannot give the planned address, and leaves no VM", async () => {
    emu.takeAddress("10.213.7.12");
    await expect(create(vm("pg2", "10.213.7.12"))).rejects.toThrow(
      "VMmanager could not create VM dc-pg2 (postgres) with the planned address 10.213.7.12 from IP pool 1: VMmanager POST /vm/v3/host failed: HTTP 400, error 5015: IP address 10.213.7.12 is already in use");
    expect(emu.hosts.size).toBe(0);
  });

  it("deletes the VM a failed host_create task left, and says so", async () => {
    emu.failNextTask("storage local is full", "host_create");
    const e = await create(base).catch((x) => x);
    expect(e.message).toMatch(/^VMmanager could not create VM dc-pg1 .*the task failed: storage local is full; the VM it left \(VMmanager id \d+\) was deleted$/);
    expect(e.id).toBeUndefined();
    expect(emu.hosts.size).toBe(0);
  });

  it("hands the engine the id of a failed VM it could not delete either, so the state records it", async () => {
    emu.failNextTask("storage local is full", "host_create");
    emu.failNextTask("node 1 is not responding", "host_delete");
    const e = await create(base).catch((x) => x);
    expect(e.message).toMatch(/deleting the VM it left \(VMmanager id \d+\) failed too .*node 1 is not responding.*the stack state keeps it/);
    // an error with id and properties is an init error: the engine keeps the resource in state
    expect(emu.hosts.has(Number(e.id))).toBe(true);
    expect(e.properties).toMatchObject({ vmId: Number(e.id), state: "creation_failed", address: "10.213.7.11" });
    // the next up replaces it, and its deletion is allowed although the role is protected: it holds no data
    expect((await p.diff!(e.id, e.properties, base)).replaces).toEqual(["state"]);
    await p.delete!(e.id, e.properties);
    expect(emu.hosts.size).toBe(0);
  });

  it("runs the emulator's create hook inside the task, and cleans up when the hook fails", async () => {
    const booted: string[] = [];
    const hooked = await startEmulator({
      users: { "ops@example.com": PASSWORD }, taskMs: 20,
      hooks: { async createHost(h) { if (h.ip4[0].ip === "10.213.7.13") throw new Error("nspawn: bridge hsbr0 missing"); booted.push(`${h.name}@${h.ip4[0].ip}`); } },
    });
    try {
      await create({ ...base, url: hooked.url });
      expect(booted).toEqual(["dc-pg1@10.213.7.11"]);
      await expect(create({ ...vm("pg3", "10.213.7.13"), url: hooked.url })).rejects.toThrow(/the task failed: nspawn: bridge hsbr0 missing; the VM it left \(VMmanager id \d+\) was deleted$/);
      expect([...hooked.hosts.values()].map((h) => h.name)).toEqual(["dc-pg1"]);
    } finally {
      await hooked.close();
    }
  });

  it("recovers from a 503 storm, a lost answer and an expired token during one create, with exactly one VM", async () => {
    emu.unavailable(3);
    emu.loseAnswers(1);
    emu.slowTasks(80);
    // 3 × 503, login, name check, lost create, lookup by name: the 8th request meets an expired token
    emu.expireTokensAt(8);
    const r = await create(base);
    expect(r.outs.state).toBe("active");
    expect(emu.hosts.size).toBe(1);
    expect(emu.requests.map((x) => x.status)).toEqual(expect.arrayContaining([503, "answer lost", 401]));
  });

  it("fails a 503 storm longer than the retry budget with a clear error, and creates nothing", async () => {
    emu.unavailable(1000);
    await expect(create(base)).rejects.toThrow(/VMmanager POST \/auth\/v4\/public\/token failed: HTTP 503, .*still unavailable after 5 tries/);
    expect(emu.hosts.size).toBe(0);
  });

  it("refuses to create a VM whose name VMmanager already has, rather than making a second one", async () => {
    const other = emu.addHost({ name: "dc-pg1", ip: "10.213.7.99" });
    await expect(create(base)).rejects.toThrow(`VMmanager already has a VM named dc-pg1 (id ${other.id}) that this stack does not know; adopt it (hastack:vmmanager.adopt) or delete it`);
    expect(emu.hosts.size).toBe(1);
  });

  it("sees on read a VM deleted or resized behind its back", async () => {
    const a = await create(base);
    const b = await create(vm("pg2", "10.213.7.12"));
    emu.removeHost(Number(a.id));
    expect((await p.read!(a.id, a.outs)).id).toBe("");
    emu.changeHost(Number(b.id), { cpu_number: 8 });
    const r = await p.read!(b.id, b.outs);
    expect(r.props.cpu).toBe(8);
    expect(r.inputs).toMatchObject({ cpu: 8, address: "10.213.7.12" });
    expect(r.inputs.vmId).toBeUndefined();
    // the plan still says 2 CPUs: an in-place update, no replacement
    expect(await p.diff!(b.id, r.props, vm("pg2", "10.213.7.12"))).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
  });

  it("resizes in place and refuses a smaller disk before touching the VM", async () => {
    const a = await create(base);
    const bigger = { ...base, cpu: 4, ramMiB: 4096, diskGiB: 30 };
    const u = await p.update!(a.id, a.outs, bigger);
    expect(u.outs).toMatchObject({ cpu: 4, ramMiB: 4096, diskGiB: 30, vmId: Number(a.id) });
    expect(emu.hosts.get(Number(a.id))).toMatchObject({ cpu_number: 4, ram_mib: 4096, disk: { disk_mib: 30720 } });
    const c = await p.check!(bigger, { ...bigger, diskGiB: 10 });
    expect(c.failures).toEqual([{ property: "diskGiB", reason: "the disk of VM dc-pg1 is 30 GiB; VMmanager grows disks but never shrinks them, so 10 GiB cannot be applied" }]);
  });

  it("replaces (delete first) on a new address, cluster, template or pool", async () => {
    const a = await create(base);
    expect(await p.diff!(a.id, a.outs, { ...base, address: "10.213.7.19", ipPool: 2 })).toEqual({ changes: true, replaces: ["address", "ipPool"], deleteBeforeReplace: true });
    expect((await p.diff!(a.id, a.outs, { ...base, osTemplate: undefined, image: 4 })).replaces).toEqual(["osTemplate", "image"]);
  });

  it("refuses to delete a protected database VM, naming the setting that allows it, and deletes it once allowed", async () => {
    const a = await create(base);
    await expect(p.delete!(a.id, a.outs)).rejects.toThrow(
      `VM dc-pg1 (VMmanager id ${a.id}, postgres) is protected from deletion because it holds postgres data. To delete it, set hastack:vmmanager.allowDeletingDataVms to true, run pulumi up, then run this again.`);
    expect(emu.hosts.has(Number(a.id))).toBe(true);
    await p.delete!(a.id, { ...a.outs, deletionProtected: false });
    expect(emu.hosts.has(Number(a.id))).toBe(false);
  });

  it("adopts an existing VM by id when its address is the planned one, sizing it to the plan", async () => {
    const h = emu.addHost({ name: "legacy-pg1", ip: "10.213.7.11", cpu: 1, ramMib: 1024, diskMib: 10240 });
    const r = await create({ ...base, adoptId: h.id });
    expect(r.id).toBe(String(h.id));
    expect(emu.hosts.size).toBe(1);
    expect(emu.hosts.get(h.id)).toMatchObject({ cpu_number: 2, ram_mib: 2048, disk: { disk_mib: 20480 } });
    await expect(create({ ...base, address: "10.213.7.12", adoptId: h.id })).rejects.toThrow(
      `cannot adopt VMmanager host ${h.id} (legacy-pg1) for dc-pg1: it has 10.213.7.11, not the planned 10.213.7.12`);
    await expect(create({ ...base, adoptId: 999 })).rejects.toThrow("cannot adopt VMmanager host 999 for dc-pg1: VMmanager has no host with that id");
  });
});
