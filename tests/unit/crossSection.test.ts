// Checks across sections of one stack (stacks/topology.ts): VIPs and VRRP ids share the stack's L2
// segment, PgBouncer's pools must fit PostgreSQL's max_connections, the app role is not PgBouncer's.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError } from "../../components/common/validate";
import { checkAcrossSections, checkAppRole, checkPoolSizes, checkVrrp } from "../../stacks/topology";

const proxy = { nodes: [1, 2], vip: "10.0.0.50", virtualRouterId: 51, interface: "eth0", defaultPoolSize: 20 };
const postgres = { maxConnections: 200, appUser: "workspad" };

describe("VIPs and VRRP ids across sections", () => {
  it("fails if two sections claim one VIP", () => {
    expect(() => checkVrrp([
      { section: "hastack:proxy", vip: "10.0.0.50", virtualRouterId: 51, interface: "eth0" },
      { section: "hastack:redis", vip: "10.0.0.50", virtualRouterId: 53, interface: "eth0" },
    ])).toThrow(`Invalid hastack:redis.vip: got "10.0.0.50"; expected an address other than hastack:proxy.vip (one VIP, one owner).`);
  });
  it("fails if two sections use one virtualRouterId, even on differently named interfaces (one subnet, one segment)", () => {
    expect(() => checkVrrp([
      { section: "hastack:proxy", vip: "10.0.0.50", virtualRouterId: 51, interface: "eth0" },
      { section: "hastack:nginx", vip: "10.0.0.60", virtualRouterId: 51, interface: "ens18" },
    ])).toThrow(`Invalid hastack:nginx.virtualRouterId: got 51; expected an id other than hastack:proxy.virtualRouterId (51): both VIPs share the stack subnet's L2 segment.`);
  });
  it("accepts distinct VIPs and ids, and ignores sections without a VIP", () => {
    expect(() => checkAcrossSections({ postgres, proxy, nginx: { virtualRouterId: 51, interface: "eth0", nodes: [] } }, {})).not.toThrow();
    expect(() => checkAcrossSections({ postgres, proxy, nginx: { vip: "10.0.0.60", virtualRouterId: 51, interface: "eth0", nodes: [] } }, {}))
      .toThrow(ConfigError);
  });
});

describe("PgBouncer pools against PostgreSQL max_connections", () => {
  it("fails if every proxy's full pool does not fit in max_connections minus the superuser reserve", () => {
    expect(() => checkPoolSizes({ proxyNodes: 2, defaultPoolSize: 99, maxConnections: 200 })).toThrow(
      "Invalid hastack:proxy.defaultPoolSize: got 99; expected at most 98: 2 proxy node(s) × 1 database/user pair(s) × defaultPoolSize must fit in " +
      "hastack:postgres.maxConnections (200) minus 3 superuser-reserved connections; or raise hastack:postgres.maxConnections.");
    expect(() => checkPoolSizes({ proxyNodes: 2, defaultPoolSize: 98, maxConnections: 200 })).not.toThrow();
  });
  it("fails if the defaults meet a small max_connections", () => {
    expect(() => checkAcrossSections({ postgres: { ...postgres, maxConnections: 40 }, proxy }, {})).toThrow("Invalid hastack:proxy.defaultPoolSize: got 20; expected at most 18");
  });
});

describe("roles PgBouncer owns", () => {
  it("fails if the application role is PgBouncer's check user", () => {
    expect(() => checkAppRole("hastack_check", "hastack_check")).toThrow(
      `Invalid hastack:postgres.appUser: got "hastack_check"; expected a role other than "hastack_check", the stats-only user PgBouncer's VIP check logs in as.`);
    expect(() => checkAcrossSections({ postgres: { ...postgres, appUser: "hastack_check" }, proxy }, {})).toThrow("Invalid hastack:postgres.appUser");
  });
});

describe("resolveDatacenter runs the cross-section and secret checks before any resource", () => {
  const deb = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hastack-cross-")), "workspad.deb");
  fs.writeFileSync(deb, "deb");
  const cfg = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    subnet: "192.168.1.0/24",
    sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    ssh: { trustOnFirstUse: true },
    postgres: { nodes: [130, 131, 132].map((n, i) => ({ name: `pg${i + 1}`, address: `192.168.1.${n}` })) },
    proxy: { nodes: [{ name: "px1", address: "192.168.1.140" }, { name: "px2", address: "192.168.1.141" }], vip: "192.168.1.200" },
    workspad: { nodes: [{ name: "wp1", address: "192.168.1.122" }], packagePath: deb },
    nginx: { nodes: [{ name: "ngx1", address: "192.168.1.127" }, { name: "ngx2", address: "192.168.1.128" }], vip: "192.168.1.201" },
    ...extra,
  });
  // imported lazily: the datacenter module pulls in every component
  const resolveWith = async (c: Record<string, unknown>) => {
    const { readStackConfig } = await import("../../stacks/config");
    const { resolveDatacenter } = await import("../../stacks/datacenter");
    return resolveDatacenter(readStackConfig((k) => c[k]));
  };
  it("accepts the reference layout with both VIPs", async () => {
    await expect(resolveWith(cfg())).resolves.toBeDefined();
  });
  it("fails if nginx takes the proxy's virtualRouterId", async () => {
    const c = cfg();
    c.nginx = { ...(c.nginx as object), virtualRouterId: 51 };
    await expect(resolveWith(c)).rejects.toThrow("Invalid hastack:nginx.virtualRouterId: got 51; expected an id other than hastack:proxy.virtualRouterId (51)");
  });
  it("fails if a supplied Redis password is empty", async () => {
    await expect(resolveWith(cfg({ passwords: { redis: "" } }))).rejects.toThrow(`Invalid hastack:passwords.redis: got "<secret of 0 characters>"; expected a non-empty password.`);
  });
});
