// The engine stores the VM provider as serialised code in each VM's state and runs it in a plain
// Node process (the dynamic-provider host). This runs that exact code the way the host loads it,
// outside Jest, against the emulator: a provider that only works in-process fails here.
import { execFile } from "child_process";
import * as pulumi from "@pulumi/pulumi";
import { REPO } from "../../engine/automation";
import { vmProvider } from "../../inventory/vmmanager/provider";
import { startEmulator, VmManagerEmulator } from "../../inventory/vmmanager/emulator";

const PASSWORD = "serialised-provider-pw";

// what pulumi-resource-pulumi-nodejs does with `__provider` (require-from-string, cwd = project)
const HOST = `
const code = require("fs").readFileSync(0, "utf8");
const { text, inputs } = JSON.parse(code);
const provider = require("require-from-string")(text).handler();
(async () => {
  const created = await provider.create(inputs);
  const read = await provider.read(created.id, created.outs);
  await provider.delete(created.id, { ...created.outs, deletionProtected: false });
  console.log(JSON.stringify({ id: created.id, address: read.props.address, state: read.props.state }));
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

describe("the serialised VM provider", () => {
  let emu: VmManagerEmulator;
  beforeAll(async () => { emu = await startEmulator({ users: { "ops@example.com": PASSWORD }, taskMs: 20 }); });
  afterAll(() => emu.close());

  it("creates, reads and deletes a VM from a plain Node process, as the engine's provider host runs it", async () => {
    const sf = await pulumi.runtime.serializeFunction(() => vmProvider, { allowSecrets: true });
    // axios is loaded from node_modules at run time, not copied into state
    expect(sf.text).toContain('require("axios")');
    const inputs = {
      url: emu.url, user: "ops@example.com", password: PASSWORD, vmName: "ser-pg1", role: "postgres", address: "10.213.7.11",
      cluster: 1, osTemplate: 1, ipPool: 1, cpu: 1, ramMiB: 1024, diskGiB: 10, deletionProtected: true,
      timing: { backoffMs: 5, pollMs: 10, attempts: 3, taskTimeoutMs: 5000 },
    };
    const out = await new Promise<string>((resolve, reject) => {
      const child = execFile(process.execPath, ["-e", HOST], { cwd: REPO, timeout: 60000 }, (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout)));
      child.stdin!.end(JSON.stringify({ text: sf.text, inputs }));
    });
    expect(JSON.parse(out)).toEqual({ id: expect.stringMatching(/^\d+$/), address: "10.213.7.11", state: "active" });
    expect(emu.hosts.size).toBe(0);
    expect(emu.tasks.map((t) => [t.name, t.status])).toEqual([["host_create", "complete"], ["host_delete", "complete"]]);
  });
});
