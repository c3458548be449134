// Wiring with fail-closed mocks: `vm: true` hosts get a VmManagerVm each, and every SSH connection
// to such a host dials the VM's address output, so each remote step on it waits for its VM.
import * as pulumi from "@pulumi/pulumi";
import { connectionFor, SshAccess } from "../../components/common/host";
import { stackVms } from "../../inventory/vmmanager/stack";

interface Rec { type: string; name: string; inputs: Record<string, any> }
const recorded: Rec[] = [];
const VM_TYPE = "pulumi-nodejs:dynamic/hastack:VmManagerVm";

beforeAll(async () => {
  await pulumi.runtime.setMocks({
    newResource(a) {
      if (a.type !== VM_TYPE) throw new Error(`unexpected resource type ${a.type}`);
      recorded.push({ type: a.type, name: a.name, inputs: a.inputs });
      return { id: "42", state: { ...a.inputs, vmId: 42, state: "active" } };
    },
    call(a) { throw new Error(`unexpected call ${a.token}`); },
  }, "hastack", "dc1", false);
});
beforeEach(() => { recorded.length = 0; });

const SSH: SshAccess = { privateKey: "k", user: "root", port: 22 };
const SETTINGS = { url: "https://vm.example.com", user: "ops@example.com", password: "vmm-secret", cluster: 1, osTemplate: 7, ipPool: 2 };
const SECTIONS = {
  postgres: { nodes: [{ name: "pg1", address: "10.0.0.11", vm: true }, { name: "pg2", address: "10.0.0.12" }] },
  nginx: { nodes: [{ name: "ngx1", address: "10.0.0.41", vm: true }] },
};
const value = <T>(o: pulumi.Input<T>) => new Promise<T>((r) => pulumi.output(o).apply((v) => r(v as T)));
// the resources an Output carries: what the engine makes a resource that uses it depend on
const deps = async (o: unknown) => [...(await (o as any).resources())] as pulumi.Resource[];

describe("VMmanager VMs in a stack", () => {
  it("makes one VM per vm: true host, named after the stack, with a secret password", async () => {
    const r = stackVms("dc", SETTINGS, SECTIONS, SSH, {});
    expect(Object.keys(r.vms)).toEqual(["pg1", "ngx1"]);
    await new Promise((res) => setTimeout(res, 50));
    expect(recorded.map((x) => x.name)).toEqual(["dc-pg1-vm", "dc-ngx1-vm"]);
    expect(recorded[0].inputs).toMatchObject({ vmName: "dc1-pg1", role: "postgres", address: "10.0.0.11", cluster: 1, osTemplate: 7, ipPool: 2, deletionProtected: true });
    expect(recorded[1].inputs).toMatchObject({ vmName: "dc1-ngx1", role: "nginx", deletionProtected: false });
    // the provider travels as code in the `__provider` input; the password does not appear in it
    expect(recorded[0].inputs.__provider).toContain("VmManagerClient");
    expect(recorded[0].inputs.__provider).not.toContain("vmm-secret");
    // the password reaches the engine as a secret (the mock sees the wire form), and stays one as an output
    expect(recorded[0].inputs.password).toEqual({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value: "vmm-secret" });
    expect(await pulumi.isSecret((r.vms.pg1 as unknown as { password: pulumi.Output<string> }).password)).toBe(true);
  });

  it("makes every connection to a VM host wait for that VM, and leaves hand-made hosts alone", async () => {
    const r = stackVms("dc", SETTINGS, SECTIONS, SSH, {});
    const toVm = connectionFor({ name: "pg1", address: "10.0.0.11" }, r.ssh);
    expect(await value(toVm.host)).toBe("10.0.0.11");
    expect(await deps(toVm.host)).toContain(r.vms.pg1);
    expect(connectionFor({ name: "pg2", address: "10.0.0.12" }, r.ssh).host).toBe("10.0.0.12");
    expect(r.ready).toEqual([r.vms.pg1, r.vms.ngx1]);
  });

  it("changes nothing for a stack without hastack:vmmanager and without vm: true hosts", () => {
    const r = stackVms("dc", undefined, { postgres: { nodes: [{ name: "pg1", address: "10.0.0.11" }] } }, SSH, {});
    expect(r).toEqual({ vms: {}, ssh: SSH, ready: [] });
    expect(recorded).toEqual([]);
  });

  it("fails before any VM exists when a host asks for a VM and the stack has no VMmanager", () => {
    expect(() => stackVms("dc", undefined, SECTIONS, SSH, {})).toThrow("Invalid hastack:vmmanager: got nothing; expected a VMmanager section, since hastack:postgres.nodes[0] (pg1) has vm: true.");
    expect(recorded).toEqual([]);
  });
});
