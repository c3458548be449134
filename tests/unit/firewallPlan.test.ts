// Who may reach which port: the plan the datacenter turns into one nftables table per component and host.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { readStackConfig } from "../../stacks/config";
import { resolveDatacenter } from "../../stacks/datacenter";
import { firewallPlan, PlannedTable } from "../../stacks/firewall";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const deb = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hastack-deb-")), "workspad.deb");
fs.writeFileSync(deb, "not really a deb");
const h = (name: string, last: number) => ({ name, address: `10.213.7.${last}` });

function cfg(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    subnet: "10.213.7.0/24", sshPrivateKey: KEY,
    postgres: { nodes: [h("pg1", 11), h("pg2", 12), h("pg3", 13)] },
    proxy: { nodes: [h("px1", 21), h("px2", 22)], vip: "10.213.7.20" },
    workspad: { nodes: [h("wp1", 31), h("wp2", 32)], packagePath: deb },
    nginx: { nodes: [h("ngx1", 41), h("ngx2", 42)], vip: "10.213.7.40" },
    redis: { enabled: true, nodes: [h("rd1", 51), h("rd2", 52), h("rd3", 53)], vip: "10.213.7.50" },
    firewall: { adminSources: ["10.213.7.1/32"] },
    ...extra,
  };
}

function plan(c: Record<string, unknown>, remoteMembers?: string[]): PlannedTable[] {
  const sc = readStackConfig((k) => c[k]);
  return firewallPlan({ ...resolveDatacenter(sc), firewall: sc.firewall, sshPort: sc.ssh.port, remoteMembers });
}
const guard = (p: PlannedTable[], host: string, name: string) => {
  const t = p.find((x) => x.host.name === host);
  const g = t?.table.guards.find((x) => x.name === name);
  if (!g) throw new Error(`no guard ${name} on ${host}`);
  return { ports: g.ports, sources: [...g.sources].sort() };
};

describe("firewall plan", () => {
  const p = plan(cfg());

  it("gives every host one table per component it serves", () => {
    expect(p.map((t) => `${t.host.name}:${t.table.name}`)).toEqual([
      "pg1:db", "pg2:db", "pg3:db", "px1:proxy", "px2:proxy", "wp1:app", "wp2:app", "ngx1:edge", "ngx2:edge", "rd1:cache", "rd2:cache", "rd3:cache"]);
  });

  it("opens PostgreSQL and Patroni's REST API to members, proxies and operators; etcd to members only", () => {
    expect(guard(p, "pg2", "postgres")).toEqual({ ports: [5432, 8008],
      sources: ["10.213.7.1/32", "10.213.7.11", "10.213.7.12", "10.213.7.13", "10.213.7.21", "10.213.7.22"] });
    expect(guard(p, "pg2", "etcd")).toEqual({ ports: [2379, 2380], sources: ["10.213.7.11", "10.213.7.12", "10.213.7.13"] });
  });

  it("adds another site's members to PostgreSQL's sources, not to etcd's", () => {
    const two = plan(cfg(), ["10.99.0.11"]);
    expect(guard(two, "pg1", "postgres").sources).toContain("10.99.0.11");
    expect(guard(two, "pg1", "etcd").sources).not.toContain("10.99.0.11");
  });

  it("opens PgBouncer to the app nodes, the other proxy and operators, and VRRP to the proxies only", () => {
    expect(guard(p, "px1", "pgbouncer")).toEqual({ ports: [6432],
      sources: ["10.213.7.1/32", "10.213.7.21", "10.213.7.22", "10.213.7.31", "10.213.7.32"] });
    expect(p.find((t) => t.host.name === "px1")!.table.vrrpPeers).toEqual(["10.213.7.21", "10.213.7.22"]);
  });

  it("opens WorksPad to the balancers and operators; leaves the balancers' web ports open, guarding only their VRRP", () => {
    expect(guard(p, "wp2", "workspad")).toEqual({ ports: [4430], sources: ["10.213.7.1/32", "10.213.7.41", "10.213.7.42"] });
    const edge = p.find((t) => t.host.name === "ngx1")!.table;
    expect([edge.guards, edge.vrrpPeers]).toEqual([[], ["10.213.7.41", "10.213.7.42"]]);
    expect(plan(cfg({ nginx: { nodes: [h("ngx1", 41)] } })).some((t) => t.table.name === "edge")).toBe(false);
  });

  it("opens Redis, Sentinel and the Redis HAProxy to the Redis nodes, the app nodes and operators", () => {
    expect(guard(p, "rd3", "redis")).toEqual({ ports: [6379, 26379, 6380],
      sources: ["10.213.7.1/32", "10.213.7.31", "10.213.7.32", "10.213.7.51", "10.213.7.52", "10.213.7.53"] });
  });

  it("never mentions the subnet as a whole, nor the SSH port", () => {
    const text = JSON.stringify(p);
    expect(text).not.toContain("10.213.7.0/24");
    for (const t of p) for (const g of t.table.guards) expect(g.ports).not.toContain(22);
  });

  it("plans nothing when the firewall is disabled", () => {
    expect(plan(cfg({ firewall: { enabled: false } }))).toEqual([]);
  });

  it("fails if a managed port is the SSH port (SSH is never filtered)", () => {
    expect(() => plan(cfg({ ssh: { port: 6432, trustOnFirstUse: true } }))).toThrow(
      "Invalid hastack:proxy ports: got [6432]; expected ports other than hastack:ssh.port (6432): SSH is never filtered.");
  });
});
