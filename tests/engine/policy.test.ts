// The policy pack (policy/) through the real CLI: `pulumi preview --policy-pack policy` of a small
// probe stack, started through our analyzer launcher (scripts/setup-engine.sh). Each probe registers
// what the hastack program registers for the rule in question (the same putFile/runScript steps,
// render functions, VmManagerVm and PolicyFacts marker), once clean and once breaking one rule: the
// clean stack passes, each broken one fails preview with its policy named. No hosts, no root.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Stack } from "@pulumi/pulumi/automation";
import { openStack, POLICY_PACK } from "../../engine/automation";
import { connectionFor } from "../../components/common/host";
import { ObservedHostKey } from "../../components/common/hostKey";
import { putFile, runScript } from "../../components/common/remote";
import { resolvePatroniClusterSettings } from "../../components/patroniCluster/args";
import { renderDynamicConfigJson, renderEtcdEnv } from "../../components/patroniCluster/render";
import { planVms, resolveVmManagerSettings } from "../../inventory/vmmanager/args";
import { vmsFor } from "../../inventory/vmmanager/vm";
import { PolicyFacts } from "../../policy/facts";
import { POLICIES } from "../../policy/policies";
import { resolvePolicySettings } from "../../policy/settings";

jest.setTimeout(15 * 60 * 1000);

const SUBNET = "10.9.0.0/24";
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPolicyProbeKeyPolicyProbeKeyPolicyProbe01";
const node = (i: number) => ({ name: `pg${i}`, address: `10.9.0.${10 + i}` });

/** One probe stack; each field breaks one rule when set. */
interface Scenario {
  etcdMembers?: number;
  peerEtcdMembers?: number;
  synchronousMode?: boolean;
  allowDeletingDataVms?: boolean;
  unpinnedHost?: "tofu" | "none";
  plainSecretOutput?: boolean;
  waivers?: Record<string, string>;
}

function probeProgram(s: Scenario) {
  return async () => {
    const members = Array.from({ length: s.etcdMembers ?? 3 }, (_, i) => node(i + 1));
    const tofu = s.unpinnedHost === "tofu" ? new ObservedHostKey("dc-pg1-host-key", { address: members[0].address, port: 22 }) : undefined;
    const ssh = {
      privateKey: pulumi.secret("-----BEGIN OPENSSH PRIVATE KEY-----\nprobe\n-----END OPENSSH PRIVATE KEY-----\n"), user: "root", port: 22,
      hostKeys: Object.fromEntries(members.map((m, i) => [m.address, i === 0 && tofu ? tofu.key : KEY])) as Record<string, pulumi.Input<string>>,
    };
    if (s.unpinnedHost === "none") delete ssh.hostKeys[members[0].address];
    // the settings resolver refuses an even member count, so the even probe renders the file around it
    const pg = resolvePatroniClusterSettings({ nodes: members.slice(0, 3), synchronousMode: s.synchronousMode ?? true }, SUBNET);
    for (const m of members) {
      putFile(`dc-${m.name}-etcd-env`, { connection: connectionFor(m, ssh), path: "/etc/default/etcd",
        content: renderEtcdEnv({ member: m, nodes: members, clientPort: 2379, peerPort: 2380, dataDir: "/var/lib/etcd/hastack", clusterName: "hastack" }) }, {});
    }
    runScript("dc-pg1-dynamic-config", { connection: connectionFor(members[0], ssh), create: "cat >/dev/null", stdin: renderDynamicConfigJson(pg) }, {});
    const vm = resolveVmManagerSettings({ url: "http://127.0.0.1:9", user: "probe@example.org", password: "probe-vm-password", cluster: 1, osTemplate: 1, ipPool: 1,
      allowDeletingDataVms: s.allowDeletingDataVms ?? false });
    vmsFor("dc", vm!, planVms({ postgres: { nodes: [{ ...members[0], vm: true }] } }, vm));
    const outputs: Record<string, unknown> = {
      dbVip: "10.9.0.100",
      adminPassword: s.plainSecretOutput ? "plain-probe-password" : pulumi.secret("secret-probe-password"),
    };
    new PolicyFacts("policy-facts", {
      settings: resolvePolicySettings({ production: true, waivers: s.waivers ?? {} }), outputs,
      peerEtcd: [{ site: "dc2", members: s.peerEtcdMembers ?? 3 }],
    });
    return outputs;
  };
}

describe("the policy pack through the real CLI (pulumi preview --policy-pack policy)", () => {
  let backendDir: string;
  const stacks: Stack[] = [];
  let n = 0;

  beforeAll(() => { backendDir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-policy-state-")); });
  afterAll(() => fs.rmSync(backendDir, { recursive: true, force: true }));

  /** Preview one scenario with the pack; the CLI's whole output and whether the preview failed. */
  async function preview(s: Scenario): Promise<{ failed: boolean; out: string }> {
    const stack = await openStack({ stackName: `probe${++n}`, projectName: "policyprobe", config: {}, program: probeProgram(s),
      workDir: fs.mkdtempSync(path.join(os.tmpdir(), "hastack-policy-ws-")) }, { backendDir, passphrase: "policy-probe-passphrase" });
    stacks.push(stack);
    let out = "";
    try {
      const pv = await stack.preview({ policyPacks: [POLICY_PACK], color: "never", onOutput: (x) => { out += x; } });
      return { failed: false, out: out || pv.stdout };
    } catch (e) {
      return { failed: true, out: `${out}\n${(e as Error).message}` };
    }
  }

  /** Policy names the CLI reports as violated, read from its "Policy Violations" lines. */
  const violated = (out: string) => [...new Set([...out.matchAll(/\[mandatory\]\s+([a-z-]+)\s+\(/g)].map((m) => m[1]))].sort();

  it("a clean probe stack passes every policy, and the pack reported on it", async () => {
    const r = await preview({});
    expect(violated(r.out)).toEqual([]);
    expect(r.failed).toBe(false);
    // the pack ran: the CLI names it in its summary of the preview
    expect(r.out).toMatch(/hastack@v0\.1\.0/);
  });

  const cases: [policy: string, scenario: Scenario, message: RegExp][] = [
    ["etcd-odd-members", { etcdMembers: 4 }, /etcd cluster has 4 members/],
    ["etcd-odd-members", { peerEtcdMembers: 2 }, /peer site dc2 runs an etcd cluster of 2 members/],
    ["secret-outputs-marked", { plainSecretOutput: true }, /stack output adminPassword carries a secret/],
    ["data-vms-deletion-protected", { allowDeletingDataVms: true }, /VM dc-pg1-vm \(postgres\) has no deletion protection/],
    ["production-synchronous-mode", { synchronousMode: false }, /synchronous_mode: false in a production stack/],
    ["ssh-host-keys-pinned", { unpinnedHost: "tofu" }, /host 10\.9\.0\.11 has no pinned SSH host key/],
    ["ssh-host-keys-pinned", { unpinnedHost: "none" }, /host 10\.9\.0\.11 is reached without a host key/],
  ];

  it.each(cases)("%s: triggered (%j), the preview fails naming it", async (policy, scenario, message) => {
    const r = await preview(scenario);
    expect(violated(r.out)).toEqual([policy]);
    expect(r.out).toMatch(message);
    expect(r.failed).toBe(true);
  });

  it.each([
    [{ synchronousMode: false, waivers: { synchronousModeOff: "probe: async on purpose, ticket OPS-1" } }],
    [{ unpinnedHost: "tofu" as const, waivers: { unpinnedHostKeys: "probe: keys learnt on first use, ticket OPS-2" } }],
    [{ allowDeletingDataVms: true, waivers: { unprotectedDataVms: "probe: decommissioning, ticket OPS-3" } }],
  ])("an explicit waiver lets the preview pass (%j)", async (scenario) => {
    const r = await preview(scenario);
    expect(violated(r.out)).toEqual([]);
    expect(r.failed).toBe(false);
  });

  it("every policy of the pack is triggered by a case above", () => {
    expect([...new Set(cases.map(([p]) => p))].sort()).toEqual(POLICIES.map((p) => p.name).filter((p) => p !== "hastack-policy-facts").sort());
  });
});
