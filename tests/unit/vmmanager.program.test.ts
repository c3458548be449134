// The whole program with `vm: true` hosts, under mocks that record everything: the Datacenter makes
// the VMs, and every SSH step on a VM host dials the address its VM resource returned (the mock
// VM answers with a tagged address, so a step that took the plain string would show).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";

const VM_TYPE = "pulumi-nodejs:dynamic/hastack:VmManagerVm";
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const debDir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-vmm-deb-"));
const deb = path.join(debDir, "workspad.deb");
fs.writeFileSync(deb, "not really a deb");
afterAll(() => fs.rmSync(debDir, { recursive: true, force: true }));

interface Rec { type: string; name: string; inputs: Record<string, any> }
const recorded: Rec[] = [];

function config(): Record<string, string> {
  const c: Record<string, unknown> = {
    subnet: "192.168.1.0/24",
    sshPrivateKey: KEY,
    ssh: { trustOnFirstUse: true },
    postgres: { nodes: [{ name: "pg1", address: "192.168.1.130", vm: true }, { name: "pg2", address: "192.168.1.131", vm: true }, { name: "pg3", address: "192.168.1.132" }] },
    proxy: { nodes: [{ name: "px1", address: "192.168.1.140", vm: true }, { name: "px2", address: "192.168.1.141" }], vip: "192.168.1.200" },
    workspad: { nodes: [{ name: "wp1", address: "192.168.1.122" }], packagePath: deb },
    nginx: { nodes: [{ name: "ngx1", address: "192.168.1.127" }] },
    vmmanager: { url: "https://vm.example.com", user: "ops@example.com", password: "vmm-secret", cluster: 1, osTemplate: 7, ipPool: 2 },
  };
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [`hastack:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));
}

beforeAll(async () => {
  pulumi.runtime.setAllConfig(config());
  await pulumi.runtime.setMocks({
    newResource(a) {
      recorded.push({ type: a.type, name: a.name, inputs: a.inputs });
      const state: Record<string, any> = { ...a.inputs };
      if (a.type === VM_TYPE) Object.assign(state, { address: `vm-gave-${a.inputs.address}`, vmId: 7, state: "active" });
      if (a.type === "random:index/randomPassword:RandomPassword") state.result = "mockpasswordmockpassword".slice(0, a.inputs.length ?? 16);
      if (a.type.startsWith("tls:index/privateKey")) Object.assign(state, { privateKeyPem: "k", privateKeyOpenssh: "k" });
      if (/selfSignedCert|locallySignedCert/.test(a.type)) state.certPem = "c";
      if (a.type === "tls:index/certRequest:CertRequest") state.certRequestPem = "r";
      if (a.type === "command:remote:Command") Object.assign(state, { stdout: state.stdout ?? "", stderr: "" });
      return { id: `${a.name}-id`, state };
    },
    call(a) { throw new Error(`unexpected call ${a.token}`); },
  }, "hastack", "dc1", false);
});

describe("the program with VMmanager VMs", () => {
  let connections: { name: string; host: string }[];

  beforeAll(async () => {
    const { program } = await import("../../stacks/program");
    await program();
    await new Promise((r) => setTimeout(r, 500));
    connections = recorded.filter((r) => r.type.startsWith("command:remote:") && r.inputs.connection)
      // the connection holds the SSH key, so it reaches the mock in the wire form of a secret
      .map((r) => ({ name: r.name, host: (r.inputs.connection.value ?? r.inputs.connection).host }));
  });

  it("makes a VM for each vm: true host, protecting the database VMs", () => {
    const vms = recorded.filter((r) => r.type === VM_TYPE);
    expect(vms.map((v) => [v.name, v.inputs.vmName, v.inputs.role, v.inputs.deletionProtected])).toEqual([
      ["dc-pg1-vm", "dc1-pg1", "postgres", true], ["dc-pg2-vm", "dc1-pg2", "postgres", true], ["dc-px1-vm", "dc1-px1", "proxy", false],
    ]);
  });

  it("dials VM hosts only through their VM's address output, and hand-made hosts directly", () => {
    const hosts = new Set(connections.map((c) => c.host));
    expect(connections.length).toBeGreaterThan(10);
    for (const a of ["192.168.1.130", "192.168.1.131", "192.168.1.140"]) {
      expect(hosts.has(a)).toBe(false);
      expect(hosts.has(`vm-gave-${a}`)).toBe(true);
    }
    for (const a of ["192.168.1.132", "192.168.1.141", "192.168.1.122", "192.168.1.127"]) expect(hosts.has(a)).toBe(true);
  });
});
