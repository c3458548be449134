// The list form of hastack:redis: named groups resolved and checked alone and against each other and the other
// sections (pure, before any resource), what each group renders on a host, and what the program registers for them.
import { ConfigError } from "../../components/common/validate";
import { resolveRedisGroups, resolveRedisSentinelGroupSettings } from "../../components/redisSentinelGroup/args";
import {
  redisLayout, renderHaproxyCfg, renderHaproxyUnit, renderKeepalivedUnit, renderRedisApplyScript, renderRedisKeepalived, renderRedisMainScript,
  renderRedisManaged, renderSentinelConf,
} from "../../components/redisSentinelGroup/render";
import { chooseInitialMaster } from "../../components/redisSentinelGroup/initialMaster";
import { resolveDatacenter } from "../../stacks/datacenter";
import { readStackConfig } from "../../stacks/config";
import { firewallPlan } from "../../stacks/firewall";
import { checkSuppliedPasswords } from "../../stacks/secretRules";
import { installMocks, isSecret, recorded, resetRecorded, resolve, settle } from "./mocks";

const SUBNET = "192.168.1.0/24";
const RD = [1, 2, 3].map((n) => ({ name: `rd${n}`, address: `192.168.1.15${n}` }));
const pubsub = { name: "pubsub", masterName: "pubsub", nodes: RD };
const kv = { name: "kv", masterName: "kv", nodes: RD, port: 6389, sentinelPort: 26389, haproxyPort: 6390 };

function err(f: () => unknown): string {
  try { f(); } catch (e) { expect(e).toBeInstanceOf(ConfigError); return (e as Error).message; }
  throw new Error("expected a ConfigError");
}

describe("resolveRedisGroups", () => {
  it("reads the single-object form exactly as before, as at most one group without a name", () => {
    const one = { enabled: true, nodes: RD, vip: "192.168.1.150" };
    expect(resolveRedisGroups(one, SUBNET)).toEqual([resolveRedisSentinelGroupSettings(one, SUBNET)]);
    expect(resolveRedisGroups(one, SUBNET)[0]).not.toHaveProperty("group");
    expect(resolveRedisGroups({ enabled: false }, SUBNET)).toEqual([]);
    expect(resolveRedisGroups(undefined, SUBNET)).toEqual([]);
    expect(resolveRedisGroups([], SUBNET)).toEqual([]);
  });

  it("resolves each named group with its own settings and per-node replicaPriority", () => {
    const [a, b] = resolveRedisGroups([{ ...pubsub, nodes: [RD[0], RD[1], { ...RD[2], replicaPriority: 0 }] }, kv], SUBNET);
    expect(a).toMatchObject({ group: "pubsub", masterName: "pubsub", port: 6379, sentinelPort: 26379, haproxyPort: 6380, quorum: 2,
      replicaPriorities: [undefined, undefined, 0], minReplicasToWrite: 1 });
    // nodes keep their plain {name, address} shape
    expect(a.nodes).toEqual(RD);
    expect(b).toMatchObject({ group: "kv", masterName: "kv", port: 6389, sentinelPort: 26389, haproxyPort: 6390 });
    expect(b).not.toHaveProperty("replicaPriorities");
  });

  it("refuses bad names, a name or master name used twice, `enabled` in a group, and bad priorities, naming the key", () => {
    expect(err(() => resolveRedisGroups([{ ...pubsub, name: "Pub_Sub" }], SUBNET))).toBe(
      `Invalid hastack:redis[0].name: got "Pub_Sub"; expected 1..20 lower-case letters, digits and '-', starting with a letter (it names the group's units, files and resources).`);
    expect(err(() => resolveRedisGroups([pubsub, { ...kv, name: "pubsub" }], SUBNET))).toBe(
      `Invalid hastack:redis[1].name: got "pubsub"; expected a name no other group has (hastack:redis[0] is "pubsub").`);
    const { masterName: _a, ...pubsubDefault } = pubsub;
    const { masterName: _b, ...kvDefault } = kv;
    expect(err(() => resolveRedisGroups([pubsubDefault, kvDefault], SUBNET))).toBe(
      `Invalid hastack:redis[1].masterName: got "hastack"; expected a master name no other group has (hastack:redis[0] ("pubsub") uses "hastack"; ` +
      `the default is "hastack", so set masterName on every group but one).`);
    expect(err(() => resolveRedisGroups([{ ...pubsub, enabled: true }], SUBNET))).toMatch(/^Invalid hastack:redis\[0\]\.enabled: got true; expected no such key; known keys are name, nodes/);
    expect(err(() => resolveRedisGroups([{ ...pubsub, nodes: [RD[0], { ...RD[1], replicaPriority: -1 }, RD[2]] }], SUBNET))).toBe(
      "Invalid hastack:redis[0].nodes[1].replicaPriority: got -1; expected an integer 0..2147483647 (Redis replica-priority: lower is promoted first, 0 never).");
    expect(err(() => resolveRedisGroups([{ ...pubsub, nodes: RD.map((n) => ({ ...n, replicaPriority: 0 })) }], SUBNET))).toMatch(
      /^Invalid hastack:redis\[0\]\.nodes\[\*\]\.replicaPriority: got \[0,0,0\]; expected at least one node whose replicaPriority is not 0/);
    expect(err(() => resolveRedisGroups([{ ...kv, quorum: 4 }], SUBNET))).toBe(
      "Invalid hastack:redis[0].quorum: got 4; expected an integer 1..3 (the number of Sentinels).");
    expect(err(() => resolveRedisGroups(["kv"], SUBNET))).toMatch(/^Invalid hastack:redis\[0\]: got "kv"; expected a group/);
  });
});

describe("a new group's first master", () => {
  it("passes over a replicaPriority-0 node among equals, never over newer data", () => {
    expect(chooseInitialMaster(RD, [{}, {}, {}], [false, true, true]).name).toBe("rd2");
    expect(chooseInitialMaster(RD, [{ offset: 9n }, { offset: 9n }, {}], [false, true, true]).name).toBe("rd2");
    expect(chooseInitialMaster(RD, [{ offset: 10n }, { offset: 9n }, {}], [false, true, true]).name).toBe("rd1");
    expect(chooseInitialMaster(RD, [{}, { offset: 1n }, { offset: 1n }]).name).toBe("rd2");
  });
});

describe("what a named group puts on a host", () => {
  const [g] = resolveRedisGroups([{ ...kv, nodes: [RD[0], RD[1], { ...RD[2], replicaPriority: 0 }], vip: "192.168.1.160", virtualRouterId: 60 }], SUBNET);
  it("its own files, data dir, pid files and units", () => {
    const managed = renderRedisManaged(g, RD[2], "pw");
    expect(managed).toContain("pidfile /run/redis-kv/redis-server.pid\n");
    expect(managed).toContain("logfile /var/log/redis/redis-server-kv.log\n");
    expect(managed).toContain("dir /var/lib/redis/kv\n");
    expect(managed).toContain("aclfile /etc/redis/hastack-kv-users.acl\n");
    expect(managed).toContain("port 6389\n");
    expect(managed).toMatch(/\nreplica-priority 0\n$/);
    expect(renderRedisManaged(g, RD[0], "pw")).not.toContain("replica-priority");
    const main = renderRedisMainScript(g, RD[0], RD[0].address);
    expect(main).toContain("include /etc/redis/hastack-kv.conf");
    expect(main).toContain("systemctl stop redis-server@kv ");
    expect(main).toContain("mv -f \"$NEW\" /etc/redis/redis-kv.conf");
    expect(main).not.toMatch(/\/etc\/redis\/redis\.conf|systemctl stop redis-server /);
    const sentinel = renderSentinelConf(g, RD[0], "pw", "@MASTER@");
    expect(sentinel).toContain("port 26389\n");
    expect(sentinel).toContain("pidfile /run/sentinel-kv/redis-sentinel.pid\n");
    expect(sentinel).toContain("sentinel monitor kv @MASTER@ 6389 2\n");
    const apply = renderRedisApplyScript(g);
    expect(apply).toContain("systemctl restart redis-server@kv;");
    expect(apply).toContain("|replica-priority|user)");
    expect(apply).toContain("/etc/redis/redis-kv.conf");
  });
  it("an HAProxy and a keepalived process of its own", () => {
    const cfg = renderHaproxyCfg(g, "pw");
    expect(cfg).toContain("bind :6390\n");
    expect(cfg).not.toContain("stats socket");
    expect(cfg).not.toMatch(/^\s+daemon$/m);
    const unit = renderHaproxyUnit("kv");
    expect(unit).toContain("ExecStart=/usr/sbin/haproxy -Ws -f /etc/haproxy/redis-kv.cfg -p /run/hastack-redis-haproxy-kv.pid\n");
    const ka = renderRedisKeepalived(g, 0, "secret");
    expect(ka).toContain("vrrp_instance hastack_redis_kv {");
    expect(ka).toContain("script \"/etc/keepalived/hastack-redis-kv-check.sh\"");
    expect(ka).toContain("virtual_router_id 60\n");
    expect(renderKeepalivedUnit("kv")).toContain("--use-file=/etc/keepalived/redis-kv.conf --pid=/run/hastack-redis-keepalived-kv.pid ");
    expect(redisLayout("kv").units).toEqual({ redis: "redis-server@kv", sentinel: "redis-sentinel@kv", haproxy: "hastack-redis-haproxy-kv",
      keepalived: "hastack-redis-keepalived-kv" });
  });
});

// the whole program under mocks takes ~40 s on a loaded 2-core machine (CI runs three streams side by side)
const PROGRAM_TIMEOUT_MS = 240000;
const DB_PASSWORDS = { postgresSuperuser: "su-pw-1", postgresReplication: "repl-pw-2", postgresRewind: "rew-pw-3", postgresApp: "app-pw-4" };
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const base = (redis: unknown): Record<string, unknown> => ({
  subnet: SUBNET, sshPrivateKey: KEY, ssh: { trustOnFirstUse: true },
  site: { name: "dc", peers: [], primarySite: "dc", epoch: 1 },
  postgres: { nodes: [130, 131, 132].map((a, i) => ({ name: `pg${i + 1}`, address: `192.168.1.${a}` })) },
  proxy: { nodes: [{ name: "px1", address: "192.168.1.140" }, { name: "px2", address: "192.168.1.141" }], vip: "192.168.1.200" },
  redis,
  // a site stack (no app tier) sets the database's role passwords itself
  passwords: DB_PASSWORDS,
});
const resolveDc = (redis: unknown) => {
  const c = base(redis);
  return resolveDatacenter(readStackConfig((k) => c[k]));
};

describe("groups against each other and the other sections", () => {
  it("refuses two groups on one host with one port, naming both settings", () => {
    expect(err(() => resolveDc([pubsub, { ...kv, sentinelPort: 26379 }]))).toBe(
      "Invalid hastack:redis[1].sentinelPort: got 26379; expected a port not already used on 192.168.1.151 by hastack:redis[0].sentinelPort.");
    // on other hosts the same ports are fine
    const other = [4, 5, 6].map((n) => ({ name: `rd${n}`, address: `192.168.1.16${n}` }));
    expect(resolveDc([pubsub, { ...kv, port: 6379, sentinelPort: 26379, haproxyPort: 6380, nodes: other }]).redisGroups).toHaveLength(2);
  });
  it("refuses a group port that another section uses on the same host", () => {
    const onPg = [130, 131, 132].map((a, i) => ({ name: `pg${i + 1}`, address: `192.168.1.${a}` }));
    expect(err(() => resolveDc([{ ...kv, nodes: onPg, port: 5432 }]))).toBe(
      "Invalid hastack:redis[0].port: got 5432; expected a port not already used on 192.168.1.130 by hastack:postgres.pgPort.");
  });
  it("refuses a group on a PgBouncer host", () => {
    expect(err(() => resolveDc([{ ...kv, nodes: [RD[0], RD[1], { name: "px1", address: "192.168.1.140" }] }]))).toBe(
      `Invalid hastack:redis[0].nodes[2]: got "px1"; expected a host that is not also in hastack:proxy (its HAProxy, keepalived and VRRP filter are that section's).`);
  });
  it("refuses two groups with one virtual_router_id, or a group with the proxy's", () => {
    expect(err(() => resolveDc([{ ...pubsub, vip: "192.168.1.160" }, { ...kv, vip: "192.168.1.161" }]))).toBe(
      "Invalid hastack:redis[1].virtualRouterId: got 53; expected an id other than hastack:redis[0].virtualRouterId (53): both VIPs share the stack subnet's L2 segment.");
    expect(err(() => resolveDc([{ ...kv, vip: "192.168.1.161", virtualRouterId: 51 }]))).toMatch(
      /^Invalid hastack:redis\[0\]\.virtualRouterId: got 51; expected an id other than hastack:proxy\.virtualRouterId \(51\)/);
    expect(err(() => resolveDc([{ ...pubsub, vip: "192.168.1.200" }]))).toMatch(/^Invalid hastack:redis\[0\]\.vip: got "192.168.1.200"; expected/);
  });
  it("gives each group a firewall table of its own ports, admitting every group's VRRP", () => {
    const r = resolveDc([{ ...pubsub, vip: "192.168.1.160", virtualRouterId: 60 },
      { ...kv, nodes: [RD[0], RD[1], { name: "rd4", address: "192.168.1.154" }], vip: "192.168.1.161", virtualRouterId: 61 }]);
    const plan = firewallPlan({ ...r, firewall: { enabled: true, adminSources: [] }, sshPort: 22 });
    const kvTable = plan.find((t) => t.layer === "cache-kv" && t.host.name === "rd4")!.table;
    expect(kvTable.name).toBe("cache_kv");
    expect(kvTable.guards).toEqual([{ name: "redis", ports: [6389, 26389, 6390], sources: ["192.168.1.151", "192.168.1.152", "192.168.1.154"] }]);
    expect(kvTable.vrrpPeers).toEqual(["192.168.1.151", "192.168.1.152", "192.168.1.153", "192.168.1.154"]);
    expect(plan.filter((t) => t.host.name === "rd1").map((t) => t.table.name)).toEqual(["cache_pubsub", "cache_kv"]);
  });
});

describe("the program with named groups", () => {
  it("registers each group under its own name, with its own passwords, firewall tables and outputs", async () => {
    resetRecorded();
    jest.resetModules();
    const c = base([{ ...pubsub, vip: "192.168.1.160", virtualRouterId: 60 }, kv]);
    c.passwords = { ...DB_PASSWORDS, redisGroups: { kv: { app: "kv-app-pw", sentinel: "kv-internal-pw" } } };
    await installMocks(Object.fromEntries(Object.entries(c).map(([k, v]) => [`hastack:${k}`, typeof v === "string" ? v : JSON.stringify(v)])), "hastack", "dc");
    const { program } = await import("../../stacks/program");
    const outputs = await program() as Record<string, any>;
    await settle(200);
    const names = recorded.map((r) => r.name);
    expect(names.filter((n) => /^dc-cache(-|$)/.test(n) && recorded.find((r) => r.name === n)!.type === "hastack:cache:RedisSentinelGroup").sort())
      .toEqual(["dc-cache-kv", "dc-cache-pubsub"]);
    for (const g of ["pubsub", "kv"]) for (const h of RD) {
      expect(names).toContain(`dc-cache-${g}-${h.name}-group-setup`);
      expect(names).toContain(`dc-cache-${g}-${h.name}-redis-restart`);
      expect(names).toContain(`dc-cache-${g}-${h.name}-firewall`);
    }
    // pubsub's passwords generated for it alone; kv's supplied (no RandomPassword but its VRRP one, which it has no VIP for)
    expect(names.filter((n) => /^dc-redis-/.test(n)).sort()).toEqual(["dc-redis-pubsub-app", "dc-redis-pubsub-keepalived", "dc-redis-pubsub-sentinel"]);
    expect(names.filter((n) => /^dc-(redis|redisSentinel|redisKeepalived)$/.test(n))).toEqual([]);
    expect(await resolve(outputs.redisGroups.kv.port)).toBe(6390);
    expect(await resolve(outputs.redisGroups.pubsub.vip)).toBe("192.168.1.160");
    expect(await isSecret(outputs.redisGroupPasswords)).toBe(true);
    expect((await resolve(outputs.redisGroupPasswords)).kv).toBe("kv-app-pw");
    expect(outputs.redis).toBeUndefined();
  }, PROGRAM_TIMEOUT_MS);
});

describe("hastack:passwords.redisGroups", () => {
  it("takes {group: {app, sentinel, keepalived}} and refuses unknown kinds, empty values and one password for both logins", () => {
    expect(() => checkSuppliedPasswords({ redisGroups: { kv: { app: "a1", sentinel: "s1", keepalived: "k1" } } })).not.toThrow();
    expect(err(() => checkSuppliedPasswords({ redisGroups: { kv: { ap: "a1" } } }))).toBe(
      `Invalid hastack:passwords.redisGroups.kv.ap: got "<secret of 2 characters>"; expected no such password; known kinds are app, sentinel, keepalived, appPrevious.`);
    expect(err(() => checkSuppliedPasswords({ redisGroups: { kv: { app: "" } } }))).toBe(
      `Invalid hastack:passwords.redisGroups.kv.app: got "<secret of 0 characters>"; expected a non-empty password.`);
    expect(err(() => checkSuppliedPasswords({ redisGroups: { kv: { app: "same", sentinel: "same" } } }))).toMatch(
      /^Invalid hastack:passwords\.redisGroups\.kv\.sentinel: got "<secret of 4 characters>, the same as hastack:passwords\.redisGroups\.kv\.app"/);
  });
});

describe("one group's change", () => {
  it("reaches only that group's steps: a kv setting leaves every pubsub resource as it was", async () => {
    const inputsOf = async (kvMaxmemory: string) => {
      resetRecorded();
      jest.resetModules();
      const c = base([pubsub, { ...kv, maxmemory: kvMaxmemory }]);
      c.passwords = { ...DB_PASSWORDS, redisGroups: { pubsub: { app: "p1", sentinel: "p2" }, kv: { app: "k1", sentinel: "k2" } } };
      await installMocks(Object.fromEntries(Object.entries(c).map(([k, v]) => [`hastack:${k}`, typeof v === "string" ? v : JSON.stringify(v)])), "hastack", "dc");
      const { program } = await import("../../stacks/program");
      await program();
      await settle(200);
      return new Map(recorded.filter((r) => r.name.startsWith("dc-cache-")).map((r) => [r.name, JSON.stringify(r.inputs)]));
    };
    const a = await inputsOf("64mb"), b = await inputsOf("128mb");
    expect([...b.keys()]).toEqual([...a.keys()]);
    const changed = [...a.keys()].filter((n) => a.get(n) !== b.get(n));
    // the settings file and its rolling restart on each kv node, nothing of pubsub
    expect(changed.sort()).toEqual(RD.flatMap((h) => [`dc-cache-kv-${h.name}-redis-ready`, `dc-cache-kv-${h.name}-redis-restart`, `dc-cache-kv-${h.name}-redis-settings`]).sort());
  }, PROGRAM_TIMEOUT_MS * 2);
});
