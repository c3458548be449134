import { deleteTableScript, nftPath, renderFirewallUnit, renderNftTable, unitName } from "../../components/firewall/render";

const db = {
  name: "db",
  guards: [
    { name: "postgres", ports: [5432, 8008], sources: ["10.213.7.21", "10.213.7.11", "10.213.7.1/32", "10.213.7.11"] },
    { name: "etcd", ports: [2379, 2380], sources: ["10.213.7.11", "10.213.7.12", "10.213.7.13"] },
  ],
};

describe("firewall render", () => {
  it("renders a component's table", () => {
    expect(renderNftTable(db)).toMatchSnapshot();
    expect(renderNftTable({ name: "proxy", vrrpPeers: ["10.213.7.21", "10.213.7.22"], guards: [{ name: "pgbouncer", ports: [6432], sources: ["10.213.7.31"] }] })).toMatchSnapshot();
  });

  it("replaces only its own table, atomically: create-if-missing, delete, define, in one file", () => {
    const lines = renderNftTable(db).split("\n");
    expect(lines.slice(2, 5)).toEqual(["table inet hastack_db {}", "delete table inet hastack_db", "table inet hastack_db {"]);
    expect(lines.join("\n")).not.toMatch(/flush ruleset|table (ip|ip6|inet) (?!hastack_db)/);
  });

  it("accepts by policy and drops only traffic to the component's ports from outside the allowed sets", () => {
    const text = renderNftTable(db);
    expect(text).toContain("type filter hook input priority filter; policy accept;");
    const drops = text.split("\n").filter((l) => /\bdrop$/.test(l)).map((l) => l.trim());
    expect(drops).toEqual([
      "tcp dport { 5432, 8008 } ip saddr != @postgres_src drop",
      "tcp dport { 2379, 2380 } ip saddr != @etcd_src drop",
      "meta nfproto ipv6 tcp dport { 2379, 2380, 5432, 8008 } drop",
    ]);
    // nothing else is ever dropped or rejected: SSH and other services are out of its reach
    expect(text).not.toMatch(/reject|policy drop|dport 22\b/);
    // loopback and replies come first
    expect(text.indexOf('iif "lo" accept')).toBeLessThan(text.indexOf("drop"));
  });

  it("lists every allowed source once, sorted", () => {
    expect(renderNftTable(db)).toContain("elements = { 10.213.7.1/32, 10.213.7.11, 10.213.7.21 }");
  });

  it("admits VRRP only from the peers when the component owns a VIP", () => {
    const text = renderNftTable({ name: "edge", vrrpPeers: ["10.213.7.41", "10.213.7.42"], guards: [] });
    expect(text).toContain("ip protocol 112 ip saddr != @vrrp_src drop");
    expect(text).toContain("elements = { 10.213.7.41, 10.213.7.42 }");
    expect(text).not.toMatch(/tcp dport/);
    expect(renderNftTable(db)).not.toContain("ip protocol 112");
  });

  it("drops everything but loopback when a guard has no sources (an empty set matches no address)", () => {
    const text = renderNftTable({ name: "x", guards: [{ name: "local", ports: [5000], sources: [] }] });
    expect(text).toMatch(/set local_src \{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\tauto-merge\n\t\}/);
    expect(text).toContain("tcp dport { 5000 } ip saddr != @local_src drop");
  });

  it("refuses names and sources that would break the file", () => {
    expect(() => renderNftTable({ name: "db; flush ruleset", guards: [] })).toThrow("render: table");
    expect(() => renderNftTable({ name: "db", guards: [{ name: "pg", ports: [5432], sources: ["10.0.0.1 }"] }] })).toThrow("is not an IPv4 address or CIDR");
  });

  it("loads the table at boot after Debian's nftables.service (whose flush ruleset would remove it)", () => {
    const unit = renderFirewallUnit("db");
    expect(unit).toMatchSnapshot();
    expect(unit).toContain(`ExecStart=/usr/sbin/nft -f ${nftPath("db")}`);
    expect(unit).toContain("After=nftables.service");
    expect(unitName("db")).toBe("hastack-firewall-db.service");
    expect(deleteTableScript("db")).toBe("if nft list table inet hastack_db >/dev/null 2>&1; then nft delete table inet hastack_db; fi");
  });
});
