// VMmanager VMs through the REAL Pulumi engine (Automation API, local file backend) against the
// emulator on loopback: up from nothing, a second up with no changes, refresh after a VM is deleted
// and another resized behind Pulumi's back, destroy refused for protected VMs and allowed with the flag.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { changes, openStack, readStateFiles, REPO } from "../../engine/automation";
import { planVms, resolveVmManagerSettings, vmsFor } from "../../inventory/vmmanager";
import { startEmulator, VmManagerEmulator } from "../../inventory/vmmanager/emulator";

const PASSWORD = "engine-VMM-pass/\"'1";
const FAST = { backoffMs: 20, maxBackoffMs: 200, pollMs: 50, attempts: 6, taskTimeoutMs: 60000 };
const SECTIONS = {
  postgres: { nodes: [{ name: "pg1", address: "10.213.7.11", vm: true }, { name: "pg2", address: "10.213.7.12", vm: true }] },
  workspad: { nodes: [{ name: "wp1", address: "10.213.7.31", vm: true }, { name: "wp2", address: "10.213.7.32", vm: false }] },
};

describe("VMmanager VMs through the real Pulumi engine", () => {
  let emu: VmManagerEmulator;
  let stack: Stack;
  let allowDeletingDataVms = false;
  let adopt: Record<string, number> | undefined;
  const made: string[] = [];
  const tmp = (prefix: string) => { const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix)); made.push(d); return d; };
  const backendDir = tmp("hastack-vmm-backend-");
  const byName = (n: string) => [...emu.hosts.values()].find((h) => h.name === n);
  const quiet = { onOutput: () => undefined };

  // the program: VMs only, from the same config resolution the stack uses
  const program = async () => {
    const settings = resolveVmManagerSettings({
      url: emu.url, user: "ops@example.com", password: PASSWORD, cluster: 1, osTemplate: 1, ipPool: 1,
      sizes: { postgres: { cpu: 2, ramMiB: 2048, diskGiB: 20 }, workspad: { cpu: 1, ramMiB: 1024, diskGiB: 10 } },
      allowDeletingDataVms, adopt,
    })!;
    const vms = vmsFor("vmmtest", settings, planVms(SECTIONS, settings), undefined, FAST);
    return Object.fromEntries(Object.entries(vms).map(([n, v]) => [n, v.address]));
  };

  beforeAll(async () => {
    emu = await startEmulator({ users: { "ops@example.com": PASSWORD }, taskMs: 100 });
    // the dynamic-provider plugin ships in @pulumi/pulumi; the engine finds it on PATH
    process.env.PATH = `${path.join(REPO, "node_modules", "@pulumi", "pulumi")}:${process.env.PATH}`;
    // a throwaway project; the plugin runs there and resolves axios through this link
    const workDir = tmp("hastack-vmm-project-");
    fs.writeFileSync(path.join(workDir, "Pulumi.yaml"), "name: hastack-vmm\nruntime: nodejs\n");
    fs.symlinkSync(path.join(REPO, "node_modules"), path.join(workDir, "node_modules"));
    stack = await openStack({ stackName: "vmmtest", projectName: "hastack-vmm", config: {}, program, workDir }, { backendDir, passphrase: "vmm-engine-test" });
  }, 900000);

  afterAll(async () => {
    await emu?.close();
    for (const d of made) fs.rmSync(d, { recursive: true, force: true });
  });

  it("creates the VMs marked vm: true from nothing, each with its planned address", async () => {
    const r = await stack.up(quiet);
    expect(changes(r.summary.resourceChanges)).toEqual({ create: 4 }); // the stack + 3 VMs
    expect(Object.fromEntries(Object.entries(r.outputs).map(([k, v]) => [k, v.value]))).toEqual({ pg1: "10.213.7.11", pg2: "10.213.7.12", wp1: "10.213.7.31" });
    expect([...emu.hosts.values()].map((h) => [h.name, h.ip4[0].ip, h.state]).sort()).toEqual([
      ["vmmtest-pg1", "10.213.7.11", "active"], ["vmmtest-pg2", "10.213.7.12", "active"], ["vmmtest-wp1", "10.213.7.31", "active"],
    ]);
  }, 600000);

  it("changes nothing on a second up", async () => {
    const r = await stack.up(quiet);
    expect(changes(r.summary.resourceChanges)).toEqual({});
  }, 600000);

  it("keeps the VMmanager password out of the state in clear", () => {
    const state = readStateFiles(backendDir);
    expect(state).toContain("vmmtest-pg1");
    expect(state).not.toContain("engine-VMM-pass");
  });

  it("shows on refresh a VM deleted and another resized behind Pulumi's back; the next up puts both back", async () => {
    emu.removeHost(byName("vmmtest-wp1")!.id);
    emu.changeHost(byName("vmmtest-pg2")!.id, { cpu_number: 6 });
    const r = await stack.refresh(quiet);
    expect(changes(r.summary.resourceChanges)).toEqual({ delete: 1, update: 1 });
    const up = await stack.up(quiet);
    expect(changes(up.summary.resourceChanges)).toEqual({ create: 1, update: 1 });
    expect(byName("vmmtest-wp1")?.ip4[0].ip).toBe("10.213.7.31");
    expect(byName("vmmtest-pg2")?.cpu_number).toBe(2);
  }, 600000);

  it("refuses to destroy the protected database VMs with a clear error, and keeps them", async () => {
    const e = await stack.destroy(quiet).catch((x) => x);
    expect(e).toBeInstanceOf(Error);
    expect(String(e.message)).toMatch(/VM vmmtest-pg\d \(VMmanager id \d+, postgres\) is protected from deletion because it holds postgres data\. To delete it, set hastack:vmmanager\.allowDeletingDataVms to true/);
    expect(byName("vmmtest-pg1")?.state).toBe("active");
    expect(byName("vmmtest-pg2")?.state).toBe("active");
  }, 600000);

  it("with allowDeletingDataVms, an up changes only the flag and destroy then deletes every VM", async () => {
    allowDeletingDataVms = true;
    const up = await stack.up(quiet);
    // wp1 (unprotected) may have gone in the refused destroy; then it comes back, but nothing is replaced
    const c = changes(up.summary.resourceChanges);
    expect({ update: c.update, replace: c.replace, delete: c.delete }).toEqual({ update: 2, replace: undefined, delete: undefined });
    const d = await stack.destroy(quiet);
    expect(d.summary.result).toBe("succeeded");
    expect(emu.hosts.size).toBe(0);
  }, 600000);

  it("adopts an existing VM by id instead of creating one (the dynamic-provider stand-in for pulumi import)", async () => {
    const legacy = emu.addHost({ name: "made-by-hand", ip: "10.213.7.11", cpu: 2, ramMib: 2048, diskMib: 20480 });
    adopt = { pg1: legacy.id };
    const up = await stack.up(quiet);
    expect(changes(up.summary.resourceChanges)).toEqual({ create: 4 }); // the stack (destroyed above) + 3 VMs
    expect(up.outputs.pg1.value).toBe("10.213.7.11");
    // two new VMs; pg1 is the hand-made one, now managed (and deleted by destroy)
    expect([...emu.hosts.values()].map((h) => h.name).sort()).toEqual(["made-by-hand", "vmmtest-pg2", "vmmtest-wp1"]);
    await stack.destroy(quiet);
    expect(emu.hosts.size).toBe(0);
  }, 600000);
});
