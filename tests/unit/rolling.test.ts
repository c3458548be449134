// Rolling restarts: every group of hosts restarts one member at a time, each after the previous one passed its
// health gate. Checked on the dependency graph the whole program registers (fail-closed mocks).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { installMocks, resetRecorded, settle } from "./mocks";
import { rolling } from "../../components/common/rolling";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const deb = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hastack-deb-")), "workspad.deb");
fs.writeFileSync(deb, "not really a deb");
const nodes = (prefix: string, first: number, n: number) =>
  Array.from({ length: n }, (_, i) => ({ name: `${prefix}${i + 1}`, address: `192.168.1.${first + i}` }));

function config(extra: Record<string, unknown> = {}): Record<string, string> {
  const c: Record<string, unknown> = {
    subnet: "192.168.1.0/24", sshPrivateKey: KEY, ssh: { trustOnFirstUse: true },
    postgres: { nodes: nodes("pg", 130, 3) },
    proxy: { nodes: nodes("px", 140, 2), vip: "192.168.1.200" },
    workspad: { nodes: nodes("wp", 120, 3), packagePath: deb },
    nginx: { nodes: nodes("ngx", 127, 1), failTimeoutSeconds: 7 },
    redis: { enabled: true, nodes: nodes("rd", 151, 3) },
    ...extra,
  };
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [`hastack:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));
}

interface Seen { dependsOn: string[]; props: Record<string, any> }
const seen = new Map<string, Seen>();

beforeAll(async () => {
  resetRecorded();
  await installMocks(config());
  const { readStackConfig, pulumiConfigReader } = await import("../../stacks/config");
  const { Datacenter } = await import("../../stacks/datacenter");
  const names = new WeakMap<pulumi.Resource, string>();
  // children inherit the transformation: every step's name, inputs and direct dependencies
  const record: pulumi.ResourceTransformation = (a) => {
    names.set(a.resource, a.name);
    const deps = ([] as unknown[]).concat(a.opts.dependsOn ?? []) as pulumi.Resource[];
    seen.set(a.name, { dependsOn: deps.map((d) => names.get(d) ?? "?"), props: a.props });
    return undefined;
  };
  new Datacenter("dc", readStackConfig(pulumiConfigReader()), { transformations: [record] });
  await settle(200);
});

const step = (name: string): Seen => {
  const s = seen.get(name);
  if (!s) throw new Error(`no step ${name} among the ${seen.size} registered`);
  return s;
};
/** Every step `name` waits for, directly or through other steps. */
function ancestors(name: string, acc = new Set<string>()): Set<string> {
  for (const d of step(name).dependsOn) if (!acc.has(d) && seen.has(d)) { acc.add(d); ancestors(d, acc); }
  return acc;
}

describe("rolling()", () => {
  it("hands each member the gate of the member before it, and the first none", () => {
    const gates = ["a", "b", "c"].map((n) => new pulumi.ComponentResource("hastack:test:Gate", `gate-${n}`));
    const got = rolling(["a", "b", "c"], (item, previousGate, i) => ({ item, previousGate, gate: gates[i] }), (x) => x.gate);
    expect(got.map((g) => g.previousGate)).toEqual([[], [gates[0]], [gates[1]]]);
  });
});

describe("WorksPad nodes restart one at a time behind nginx", () => {
  it("node k's restart waits for node k-1's health gate, which waits for its health check after its restart", () => {
    expect(step("dc-app-wp1-wp1-restart").dependsOn.filter((d) => /^dc-app-wp[23]-/.test(d))).toEqual([]);
    expect(step("dc-app-wp2-wp2-restart").dependsOn).toContain("dc-app-wp1-wp1-settle");
    expect(step("dc-app-wp3-wp3-restart").dependsOn).toContain("dc-app-wp2-wp2-settle");
    expect([...ancestors("dc-app-wp3-wp3-restart")]).toEqual(expect.arrayContaining(["dc-app-wp1-wp1-health", "dc-app-wp2-wp2-health",
      "dc-app-wp1-wp1-restart", "dc-app-wp2-wp2-restart"]));
  });

  it("the gate holds as long as nginx skips a node it saw fail (hastack:nginx.failTimeoutSeconds), re-run on every restart", () => {
    const settle = step("dc-app-wp1-wp1-settle");
    expect(settle.dependsOn).toEqual(["dc-app-wp1-wp1-health"]);
    expect(settle.props.create).toBeDefined();
    return new Promise<void>((done) => pulumi.output(settle.props.create).apply((c: string) => { expect(c).toMatch(/\nsleep 7$/); done(); }));
  });

  it("only the restart is serial: a node's package install does not wait for another node", () => {
    expect([...ancestors("dc-app-wp3-wp3-package-install")].filter((d) => /^dc-app-wp[12]-/.test(d))).toEqual([]);
  });
});

describe("Redis nodes and etcd members restart one at a time", () => {
  it("Redis node k restarts only after node k-1 is ready again (replica synced or master answering)", () => {
    // of the other nodes, only their HAProxy reloads: each checks every Redis with its new login before any restarts (rotation.ts)
    expect(step("dc-cache-rd1-redis-restart").dependsOn.filter((d) => /^dc-cache-rd[23]-/.test(d))).toEqual(["dc-cache-rd2-haproxy-reload", "dc-cache-rd3-haproxy-reload"]);
    expect(step("dc-cache-rd2-redis-restart").dependsOn).toContain("dc-cache-rd1-redis-ready");
    expect(step("dc-cache-rd3-redis-restart").dependsOn).toContain("dc-cache-rd2-redis-ready");
    expect(step("dc-cache-rd2-redis-ready").dependsOn).toEqual(["dc-cache-rd2-redis-restart"]);
  });

  it("etcd member k restarts only after member k-1's restart, which waits until that member is healthy", () => {
    expect(step("dc-db-pg2-etcd-restart").dependsOn).toContain("dc-db-pg1-etcd-restart");
    expect(step("dc-db-pg3-etcd-restart").dependsOn).toContain("dc-db-pg2-etcd-restart");
  });
});
