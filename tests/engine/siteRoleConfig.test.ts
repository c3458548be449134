// The role a switchover or failover records in each stack's own config, through the real pulumi CLI (no
// program runs): a site section written as a YAML object keeps its form and every other key; one set as a
// single JSON string (which a path set would replace whole: the sites e2e found name and peers gone) keeps
// its keys too.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { openStack, REPO } from "../../engine/automation";
import { recordRoleInStack } from "../../ops/sites";

jest.setTimeout(5 * 60 * 1000);

describe("recording a site's role in its stack file (real pulumi CLI, no hosts)", () => {
  const backendDir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-role-state-"));
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-role-ws-"));
  fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(workDir, "Pulumi.yaml"));
  const open = (stackName: string) => openStack({ stackName, config: {}, workDir, program: async () => ({}) }, { backendDir, passphrase: "role-test" });
  const site = { name: "dc1", peers: ["dc2"], primarySite: "dc1", epoch: 1, remoteSubnets: ["10.20.2.0/24"] };

  afterAll(() => { for (const d of [backendDir, workDir]) fs.rmSync(d, { recursive: true, force: true }); });

  it("sets primarySite and epoch as two leaves of a YAML object, keeping name, peers and the rest", async () => {
    const stack = await open("dc1");
    const file = path.join(workDir, "Pulumi.dc1.yaml");
    const doc = (yaml.load(fs.readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
    fs.writeFileSync(file, yaml.dump({ ...doc, config: { ...(doc.config ?? {}), "hastack:site": site } }));
    await recordRoleInStack({ name: "dc1", stack }, "dc2", 2);
    const after = yaml.load(fs.readFileSync(file, "utf8")) as { config: Record<string, unknown> };
    expect(after.config["hastack:site"]).toEqual({ ...site, primarySite: "dc2", epoch: 2 });
  });

  it("keeps every key of a section set as one JSON string", async () => {
    const stack = await open("dc2");
    await stack.setConfig("hastack:site", { value: JSON.stringify({ ...site, name: "dc2", peers: ["dc1"] }) });
    await recordRoleInStack({ name: "dc2", stack }, "dc2", 2);
    expect(JSON.parse((await stack.getConfig("hastack:site")).value)).toEqual({ ...site, name: "dc2", peers: ["dc1"], primarySite: "dc2", epoch: 2 });
  });
});
