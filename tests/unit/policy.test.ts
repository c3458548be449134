// The policy pack's pure checks (policy/checks.ts) and `hastack:policy` (policy/settings.ts), on
// resources shaped as the pack sees them, built from the program's own render functions.
import { renderDynamicConfigJson, renderEtcdEnv } from "../../components/patroniCluster/render";
import { resolvePatroniClusterSettings } from "../../components/patroniCluster/args";
import {
  checkDataVmProtection, checkEtcdOdd, checkHostKeys, checkSecretOutputs, checkSynchronousMode, COMMAND_TYPE, etcdInitialCluster,
  factsOf, known, patroniSynchronousMode, secretPath, SeenResource, STACK_TYPE, VM_TYPE,
} from "../../policy/checks";
import { FACTS_TYPE, PolicyFactsData } from "../../policy/facts";
import { resolvePolicySettings } from "../../policy/settings";

const nodes = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `pg${i + 1}`, address: `10.0.0.${i + 11}` }));
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIunit";
const conn = (host: string, hostKey?: unknown) => ({ host, user: "root", port: 22, ...(hostKey === undefined ? {} : { hostKey }) });
const etcdFiles = (n: number): SeenResource[] => nodes(n).map((m) => ({
  type: COMMAND_TYPE, name: `dc-${m.name}-etcd-env`, props: { connection: conn(m.address, KEY),
    stdin: renderEtcdEnv({ member: m, nodes: nodes(n), clientPort: 2379, peerPort: 2380, dataDir: "/var/lib/etcd/x", clusterName: "c" }) },
}));
const facts = (f: Partial<PolicyFactsData> = {}): PolicyFactsData => ({ production: false, waivers: {}, peerEtcd: [], secretOutputs: {}, ...f });
const dynamicConfig = (synchronousMode: boolean): SeenResource => ({
  type: COMMAND_TYPE, name: "dc-db-pg1-dynamic-config",
  props: { connection: conn("10.0.0.11", KEY), stdin: renderDynamicConfigJson(resolvePatroniClusterSettings({ nodes: nodes(3), synchronousMode }, "10.0.0.0/24")) },
});

/** Reading an unknown throws, as @pulumi/policy's proxy does during a preview. */
class UnknownValueError extends Error {}
const unknownProps = (known: Record<string, unknown>, unknownKey: string) => new Proxy(known, {
  get: (o, k) => { if (k === unknownKey) throw new UnknownValueError("unknown"); return (o as Record<string | symbol, unknown>)[k]; },
});

describe("etcd-odd-members", () => {
  it("reads the members of an etcd EnvironmentFile", () => {
    expect(etcdInitialCluster(etcdFiles(3)[0].props.stdin as string)).toEqual(["pg1", "pg2", "pg3"]);
    expect(etcdInitialCluster("ETCD_NAME=pg1\n")).toBeUndefined();
  });
  it("passes an odd cluster, fails an even one (once, not once per member file)", () => {
    expect(checkEtcdOdd(etcdFiles(3))).toEqual([]);
    const v = checkEtcdOdd(etcdFiles(4));
    expect(v).toHaveLength(1);
    expect(v[0]).toMatch(/4 members \(pg1,pg2,pg3,pg4\)/);
  });
  it("fails an even peer site from the facts, and passes odd peers", () => {
    expect(checkEtcdOdd(etcdFiles(3), facts({ peerEtcd: [{ site: "dc2", members: 3 }] }))).toEqual([]);
    expect(checkEtcdOdd(etcdFiles(3), facts({ peerEtcd: [{ site: "dc2", members: 2 }] }))).toEqual([expect.stringMatching(/peer site dc2 .* 2 members/)]);
  });
});

describe("production-synchronous-mode", () => {
  it("reads synchronous_mode from Patroni's dynamic configuration only", () => {
    expect(patroniSynchronousMode(dynamicConfig(false).props.stdin as string)).toBe(false);
    expect(patroniSynchronousMode(dynamicConfig(true).props.stdin as string)).toBe(true);
    expect(patroniSynchronousMode(JSON.stringify({ synchronous_mode: false }))).toBeUndefined();
    expect(patroniSynchronousMode("not json")).toBeUndefined();
  });
  it("fails synchronous_mode off in production, passes it on, passes it off outside production or waived", () => {
    expect(checkSynchronousMode([dynamicConfig(false)], facts({ production: true }))).toHaveLength(1);
    expect(checkSynchronousMode([dynamicConfig(true)], facts({ production: true }))).toEqual([]);
    expect(checkSynchronousMode([dynamicConfig(false)], facts())).toEqual([]);
    expect(checkSynchronousMode([dynamicConfig(false)], facts({ production: true, waivers: { synchronousModeOff: "ticket OPS-1: async" } }))).toEqual([]);
  });
});

describe("data-vms-deletion-protected", () => {
  const vm = (role: string, deletionProtected: boolean): SeenResource => ({ type: VM_TYPE, name: `dc-${role}-vm`, props: { role, deletionProtected } });
  it("fails an unprotected database or Redis VM, not a protected one nor another role's", () => {
    expect(checkDataVmProtection([vm("postgres", false)], facts())).toHaveLength(1);
    expect(checkDataVmProtection([vm("redis", false)], facts())).toHaveLength(1);
    expect(checkDataVmProtection([vm("postgres", true), vm("proxy", false), vm("nginx", false)], facts())).toEqual([]);
  });
  it("passes when waived", () => {
    expect(checkDataVmProtection([vm("postgres", false)], facts({ waivers: { unprotectedDataVms: "decommissioning, OPS-3" } }))).toEqual([]);
  });
});

describe("ssh-host-keys-pinned", () => {
  const cmd = (host: string, hostKey?: unknown): SeenResource => ({ type: COMMAND_TYPE, name: `step-${host}`, props: { connection: conn(host, hostKey) } });
  const tofu: SeenResource = { type: "pulumi-nodejs:dynamic:Resource", name: "dc-pg1-host-key", props: { address: "10.0.0.11", port: 22 } };
  it("fails a connection without a host key in any stack", () => {
    expect(checkHostKeys([cmd("10.0.0.11")], facts())).toEqual([expect.stringMatching(/10\.0\.0\.11 is reached without a host key/)]);
    expect(checkHostKeys([cmd("10.0.0.11", KEY)], facts())).toEqual([]);
  });
  it("a key learnt on first use fails in production unless waived, passes outside production", () => {
    expect(checkHostKeys([cmd("10.0.0.11", KEY), tofu], facts({ production: true }))).toEqual([expect.stringMatching(/10\.0\.0\.11 has no pinned SSH host key/)]);
    expect(checkHostKeys([cmd("10.0.0.11", KEY), tofu], facts())).toEqual([]);
    expect(checkHostKeys([cmd("10.0.0.11", KEY), tofu], facts({ production: true, waivers: { unpinnedHostKeys: "example stack, OPS-2" } }))).toEqual([]);
  });
  it("a key not known yet in a preview (TOFU before first contact) is not a missing key", () => {
    const r: SeenResource = { type: COMMAND_TYPE, name: "step", props: { connection: unknownProps(conn("10.0.0.11"), "hostKey") } };
    expect(checkHostKeys([r], facts())).toEqual([]);
  });
});

describe("secret-outputs-marked", () => {
  const stack = (outputs: Record<string, unknown>): SeenResource => ({ type: STACK_TYPE, name: "hastack-prod", props: outputs });
  it("finds a secret by name, by private key, by connection string; never returns the value", () => {
    expect(secretPath({ user: "u", password: "hunter2hunter2" }, "o")).toBe("o.password");
    expect(secretPath("-----BEGIN OPENSSH PRIVATE KEY-----\nabc", "k")).toBe("k (a private key)");
    expect(secretPath("postgres://app:s3cret-value@10.0.0.1:6432/db", "dsn")).toMatch(/^dsn \(a connection string/);
    expect(secretPath("host=10.0.0.1 port=6432 dbname=db user=app password=s3cret", "dsn")).toMatch(/^dsn \(a connection string/);
    expect(secretPath({ vip: "10.0.0.1", port: 6432, members: [{ name: "pg1" }] }, "o")).toBeUndefined();
  });
  it("fails a secret-carrying output exported plain; passes it marked, and passes plain outputs without secrets", () => {
    const outs = { dbVip: "10.0.0.1", redisPassword: "plain-value-123", dsn: "postgres://a:b-secret@h/db" };
    const v = checkSecretOutputs([stack(outs)], facts({ secretOutputs: { dbVip: false, redisPassword: false, dsn: false } }));
    expect(v).toHaveLength(2);
    expect(v.join("\n")).not.toContain("plain-value-123");
    expect(checkSecretOutputs([stack(outs)], facts({ secretOutputs: { dbVip: false, redisPassword: true, dsn: true } }))).toEqual([]);
  });
  it("an output unknown in a preview is judged by its name only", () => {
    const props = unknownProps({ dbVip: "10.0.0.1", dsn: "x" }, "dsn");
    expect(checkSecretOutputs([stack(props)], facts({ secretOutputs: { dbVip: false, dsn: false } }))).toEqual([]);
    expect(known(() => props.dbVip)).toBe("10.0.0.1");
  });
});

describe("factsOf", () => {
  it("finds the one marker, refuses two", () => {
    const f: SeenResource = { type: FACTS_TYPE, name: "policy-facts", props: facts({ production: true }) as unknown as Record<string, unknown> };
    expect(factsOf([f])?.production).toBe(true);
    expect(factsOf([])).toBeUndefined();
    expect(() => factsOf([f, f])).toThrow(/2 hastack:policy:PolicyFacts resources/);
  });
});

describe("hastack:policy fails if", () => {
  it("is absent or {}: a non-production stack without waivers", () => {
    expect(resolvePolicySettings(undefined)).toEqual({ production: false, waivers: {} });
    expect(resolvePolicySettings({})).toEqual({ production: false, waivers: {} });
  });
  it.each([
    ["not an object", "yes", /Invalid hastack:policy: got "yes"; expected an object/],
    ["an unknown key", { prod: true }, /Invalid hastack:policy\.prod: got true; expected no such key; known keys are production, waivers/],
    ["production not a boolean", { production: "true" }, /Invalid hastack:policy\.production: got "true"; expected true or false/],
    ["an unknown waiver", { waivers: { everything: "because I said so" } }, /Invalid hastack:policy\.waivers\.everything: .*known waivers are synchronousModeOff, unpinnedHostKeys, unprotectedDataVms/],
    ["a waiver without a reason", { waivers: { synchronousModeOff: "ok" } }, /Invalid hastack:policy\.waivers\.synchronousModeOff: got "ok"; expected a reason of at least 10 characters/],
    ["waivers not an object", { waivers: ["synchronousModeOff"] }, /Invalid hastack:policy\.waivers: /],
  ])("%s", (_what, raw, message) => {
    expect(() => resolvePolicySettings(raw)).toThrow(message);
  });
});
