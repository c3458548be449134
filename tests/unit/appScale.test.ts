// Scaling the app tier (issue 13) under fail-closed mocks: what a change of hastack:workspad.nodes changes (by input
// hash per URN, as the compat tests compare) and in what order the steps run (dependsOn and the inputs' resources).
// The delete order of a removed node (after every create and update) is the engine's: tests/engine/appScale.test.ts.
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { installMocks, recorded, resetRecorded, settle } from "./mocks";
import { certFixtures } from "./certFixtures";

jest.setTimeout(360000);

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const PASSWORDS = { postgresSuperuser: "a/=\\'\"$1", postgresReplication: "b/=\\'\"$2", postgresRewind: "c3-rewind-Qz7w", postgresApp: "d/=\\'\"$4",
  proxyKeepalived: "abcd1234", nginxKeepalived: "efgh5678", redis: "e/=\\'\"$5", redisSentinel: "s/=\\'\"$9", redisKeepalived: "ijkl9012",
  patroniRest: "f/=\\'\"$6", etcdRoot: "g/=\\'\"$7", etcdPatroni: "h/=\\'\"$8" };
const WP = { wp1: "192.168.1.121", wp2: "192.168.1.122", wp3: "192.168.1.123" } as const;
type Wp = keyof typeof WP;

function config(apps: readonly Wp[]): Record<string, string> {
  const fx = certFixtures();
  const cert = { certPem: fx.serverCertPem, keyPem: fx.serverKeyPem };
  const c: Record<string, unknown> = {
    subnet: "192.168.1.0/24", sshPrivateKey: KEY,
    ssh: { trustOnFirstUse: true },
    postgres: { nodes: [130, 131, 132].map((a, i) => ({ name: `pg${i + 1}`, address: `192.168.1.${a}` })) },
    proxy: { nodes: [{ name: "px1", address: "192.168.1.140" }, { name: "px2", address: "192.168.1.141" }], vip: "192.168.1.200" },
    workspad: { nodes: apps.map((n) => ({ name: n, address: WP[n] })), packagePath: "tests/unit/__fixtures__/workspad-test.deb" },
    nginx: { nodes: [{ name: "ngx1", address: "192.168.1.127" }, { name: "ngx2", address: "192.168.1.128" }], vip: "192.168.1.210" },
    redis: { enabled: true, nodes: [151, 152, 153].map((a, i) => ({ name: `rd${i + 1}`, address: `192.168.1.${a}` })), vip: "192.168.1.150" },
    passwords: PASSWORDS,
    certificates: { caCertPem: fx.caCertPem, servers: Object.fromEntries([...apps, "ngx1", "ngx2"].map((n) => [n, cert])), dataProtection: cert },
  };
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [`hastack:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));
}

interface Seen { name: string; dependsOn: string[]; inputResources: string[] }

/** The datacenter of `apps`: every resource's input hash by name, and each command's dependencies by name. */
async function build(apps: readonly Wp[]): Promise<{ inputs: Map<string, string>; seen: Map<string, Seen> }> {
  resetRecorded();
  jest.resetModules();
  await installMocks(config(apps), "hastack", "dc");
  const { pulumiConfigReader, readStackConfig } = await import("../../stacks/config");
  const { Datacenter } = await import("../../stacks/datacenter");
  const names = new Map<pulumi.Resource, string>();
  const raw: { name: string; deps: Promise<unknown>; props: Record<string, unknown> }[] = [];
  new Datacenter("dc", readStackConfig(pulumiConfigReader()), {
    transformations: [(a) => {
      names.set(a.resource, a.name);
      if (a.type.startsWith("command:")) raw.push({ name: a.name, deps: Promise.resolve(a.opts.dependsOn as unknown), props: a.props });
      return undefined;
    }],
  });
  await settle(300);
  const seen = new Map<string, Seen>();
  for (const r of raw) {
    // a list, a promise of one (the node's startAfter) or an Output of one
    let d = await r.deps;
    if (pulumi.Output.isInstance(d)) d = await new Promise((res) => (d as pulumi.Output<unknown>).apply(res));
    const list = (Array.isArray(d) ? d : d ? [d] : []) as pulumi.Resource[];
    // resources an input carries (the nginx site's text is made of the nodes' health outputs)
    const carried = new Set<string>();
    for (const v of Object.values(r.props)) {
      if (pulumi.Output.isInstance(v)) for (const x of await (v as any).allResources()) carried.add(names.get(x) ?? "?");
    }
    seen.set(r.name, { name: r.name, dependsOn: list.map((x) => names.get(x) ?? "?"), inputResources: [...carried] });
  }
  const hash = (v: unknown) => crypto.createHash("sha256").update(JSON.stringify(v)).digest("hex");
  return { inputs: new Map(recorded.map((r) => [r.name, hash(r.inputs)])), seen };
}

/** Resources created, deleted and changed (same name, other inputs) going from `a` to `b`. */
function diff(a: Map<string, string>, b: Map<string, string>) {
  return {
    created: [...b.keys()].filter((k) => !a.has(k)).sort(),
    deleted: [...a.keys()].filter((k) => !b.has(k)).sort(),
    changed: [...b.keys()].filter((k) => a.has(k) && a.get(k) !== b.get(k)).sort(),
  };
}

// what a change of the node list changes outside the added or removed node: nginx's upstream list (site → reload →
// health) and the CA check's targets, and the tables that admit the app nodes (PgBouncer, Redis)
const EDGE = ["ngx1", "ngx2"].flatMap((h) => ["ca", "health", "reload", "site"].map((s) => `dc-edge-${h}-${s}`));
const TABLES = [...["px1", "px2"].map((h) => `dc-proxy-${h}-firewall`), ...["rd1", "rd2", "rd3"].map((h) => `dc-cache-${h}-firewall`)]
  .flatMap((t) => ["admit", "load", "rules"].map((s) => `${t}-${s}`));
const CHANGED = [...EDGE, ...TABLES].sort();

describe("scaling the app tier: what changes", () => {
  let two: Map<string, string>;
  beforeAll(async () => { two = (await build(["wp1", "wp2"])).inputs; });

  it("adding a node at the end creates only that node's resources; no other node changes", async () => {
    const d = diff(two, (await build(["wp1", "wp2", "wp3"])).inputs);
    expect(d.deleted).toEqual([]);
    expect(d.created.length).toBeGreaterThan(20);
    expect(d.created.filter((n) => !/wp3/.test(n))).toEqual([]);
    expect(d.changed).toEqual(CHANGED);
  });

  it("adding it in the middle of the list changes exactly the same: the next node's new rolling predecessor is no input", async () => {
    const d = diff(two, (await build(["wp1", "wp3", "wp2"])).inputs);
    expect(d.deleted).toEqual([]);
    expect(d.created.filter((n) => !/wp3/.test(n))).toEqual([]);
    expect(d.changed).toEqual(CHANGED);
  });

  it("removing a node from the middle deletes only that node's resources; the others stay as they are", async () => {
    const three = (await build(["wp1", "wp2", "wp3"])).inputs;
    const d = diff(three, (await build(["wp1", "wp3"])).inputs);
    expect(d.created).toEqual([]);
    expect(d.deleted.length).toBeGreaterThan(20);
    expect(d.deleted.filter((n) => !/wp2/.test(n))).toEqual([]);
    // its services are stopped and disabled by a delete (serviceEnabled), its own firewall table is among the deletes
    expect(d.deleted).toEqual(expect.arrayContaining(["dc-app-wp2-wp2-enable-workspad", "dc-app-wp2-firewall-enable"]));
    expect(d.changed).toEqual(CHANGED);
  });

  it("a build with the same list changes nothing", async () => {
    expect(diff(two, (await build(["wp1", "wp2"])).inputs)).toEqual({ created: [], deleted: [], changed: [] });
  });
});

describe("scaling the app tier: in what order", () => {
  let seen: Map<string, Seen>;
  beforeAll(async () => { seen = (await build(["wp1", "wp2", "wp3"])).seen; });
  const deps = (n: string) => {
    const s = seen.get(n);
    if (!s) throw new Error(`no step ${n}; have ${[...seen.keys()].filter((k) => k.includes(n.split("-")[1])).join(", ")}`);
    return s.dependsOn;
  };
  const admits = [...["px1", "px2"].map((h) => `dc-proxy-${h}-firewall-admit`), ...["rd1", "rd2", "rd3"].map((h) => `dc-cache-${h}-firewall-admit`)];

  it("nginx takes a node into its upstream list only after that node's health gate (the site is made of their answers)", () => {
    for (const h of ["ngx1", "ngx2"]) {
      expect(seen.get(`dc-edge-${h}-site`)!.inputResources).toEqual(expect.arrayContaining(["dc-app-wp1-wp1-health", "dc-app-wp2-wp2-health", "dc-app-wp3-wp3-health"]));
      expect(deps(`dc-edge-${h}-reload`)).toEqual([`dc-edge-${h}-nginx`]);
      expect(deps(`dc-edge-${h}-health`)).toEqual([`dc-edge-${h}-reload`]);
    }
  });

  it("a node starts only once the PgBouncer and Redis tables admit it and its own table guards its port", () => {
    for (const n of ["wp1", "wp2", "wp3"]) {
      expect(deps(`dc-app-${n}-${n}-enable-workspad`)).toEqual(expect.arrayContaining([...admits, `dc-app-${n}-firewall-load`]));
      expect(deps(`dc-app-${n}-${n}-enable-workspad`)).not.toEqual(expect.arrayContaining([`dc-app-${n === "wp1" ? "wp2" : "wp1"}-firewall-load`]));
      expect(deps(`dc-app-${n}-${n}-restart`)).toEqual(expect.arrayContaining([`dc-app-${n}-${n}-enable-workspad`]));
    }
  });

  it("the PgBouncer and Redis tables admit at once and narrow (load the rendered table) only after every nginx serves the new list", () => {
    for (const t of ["dc-proxy-px1", "dc-proxy-px2", "dc-cache-rd1", "dc-cache-rd2", "dc-cache-rd3"]) {
      expect(deps(`${t}-firewall-admit`)).toEqual([`${t}-firewall-enable`]);
      expect(deps(`${t}-firewall-load`)).toEqual([`${t}-firewall-enable`, `${t}-firewall-admit`, "dc-edge-ngx1-health", "dc-edge-ngx2-health"]);
    }
    // the others keep loading without waiting for nginx (and have no admit step)
    for (const t of ["dc-db-pg1", "dc-app-wp1", "dc-edge-ngx1"]) {
      expect(deps(`${t}-firewall-load`)).toEqual([`${t}-firewall-enable`]);
      expect(seen.has(`${t}-firewall-admit`)).toBe(false);
    }
  });

  it("the admit step only adds this table's sources to the live sets; it never loads or narrows the table", () => {
    const admit = recorded.find((r) => r.name === "dc-proxy-px1-firewall-admit")!.inputs;
    expect(admit.create).toContain("nft add element inet hastack_proxy pgbouncer_src '{ 192.168.1.121, 192.168.1.122, 192.168.1.123, 192.168.1.140, 192.168.1.141 }'");
    expect(admit.create).toContain("nft add element inet hastack_proxy vrrp_src '{ 192.168.1.140, 192.168.1.141 }'");
    expect(admit.create).not.toMatch(/nft -f|delete|flush|systemctl/);
    expect(admit.delete).toBeUndefined();
  });

  it("a removed node's delete stops and disables its service (run by the engine after every create and update)", () => {
    const enable = recorded.find((r) => r.name === "dc-app-wp2-wp2-enable-workspad")!.inputs;
    expect(enable.delete.split("\n").pop()).toBe("systemctl disable --now 'workspad' >/dev/null 2>&1 || true");
  });
});
