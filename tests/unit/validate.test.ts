import {
  ConfigError, checkRules, checkSubnet, isInterfaceName, pathInside, pathsOverlap, subnetEnds, vipRules,
} from "../../components/common/validate";
import { shq } from "../../components/common/shell";

describe("rule tables", () => {
  it("evaluates a lazy rule only after every earlier rule held", () => {
    const seen: string[] = [];
    expect(() => checkRules([
      { field: "hastack:x.a", given: 1, ok: () => (seen.push("a"), false), accepted: "a" },
      { field: "hastack:x.b", given: 2, ok: () => (seen.push("b"), true), accepted: "b" },
    ])).toThrow("Invalid hastack:x.a: got 1; expected a.");
    expect(seen).toEqual(["a"]);
  });
  it("builds a lazy accepted text only for the rule that failed", () => {
    expect(() => checkRules([{ field: "hastack:x", given: "v", ok: false, accepted: () => "computed" }])).toThrow("expected computed.");
  });
});

describe("hastack:subnet", () => {
  it("accepts /16 to /30 written with the network address", () => {
    for (const s of ["10.0.0.0/16", "192.168.1.0/24", "192.168.1.4/30"]) expect(() => checkSubnet(s)).not.toThrow();
  });
  it("fails if the subnet is 0.0.0.0/0 or wider than /16 (a VIP would make all of it on-link)", () => {
    for (const s of ["0.0.0.0/0", "10.0.0.0/8", "172.16.0.0/15"]) {
      expect(() => checkSubnet(s)).toThrow(ConfigError);
      expect(() => checkSubnet(s)).toThrow(`Invalid hastack:subnet: got "${s}"; expected a prefix of /16 or longer`);
    }
  });
  it("fails if the subnet leaves no room for a VIP (/31, /32)", () => {
    expect(() => checkSubnet("10.0.0.0/31")).toThrow(`Invalid hastack:subnet: got "10.0.0.0/31"; expected a prefix of /30 or shorter`);
  });
  it("fails if the subnet has host bits set, naming the form that is meant", () => {
    expect(() => checkSubnet("192.168.1.130/24")).toThrow(
      `Invalid hastack:subnet: got "192.168.1.130/24"; expected the subnet written with its network address, 192.168.1.0/24.`);
  });
  it("knows each subnet's network and broadcast address", () => {
    expect(subnetEnds("10.213.7.0/24")).toEqual({ network: "10.213.7.0", broadcast: "10.213.7.255" });
    expect(subnetEnds("10.1.0.0/16")).toEqual({ network: "10.1.0.0", broadcast: "10.1.255.255" });
    expect(subnetEnds("192.168.1.8/29")).toEqual({ network: "192.168.1.8", broadcast: "192.168.1.15" });
  });
});

describe("VIP rules (one table for every VIP owner)", () => {
  const check = (vip: unknown) => () => checkRules(vipRules("hastack:x.vip", vip, "192.168.1.8/29", ["192.168.1.9"], "192.168.1.10"));
  it("fails if the VIP is the network or broadcast address", () => {
    expect(check("192.168.1.8")).toThrow(`Invalid hastack:x.vip: got "192.168.1.8"; expected a host address of 192.168.1.8/29, not its network (192.168.1.8) or broadcast (192.168.1.15) address.`);
    expect(check("192.168.1.15")).toThrow("not its network (192.168.1.8) or broadcast (192.168.1.15) address");
  });
  it("checks the subnet only for an IPv4 address, and hosts only for an address inside it", () => {
    expect(check(42)).toThrow("Invalid hastack:x.vip: got 42; expected an IPv4 address such as 192.168.1.10.");
    expect(check("192.168.2.9")).toThrow("expected an address inside the stack subnet 192.168.1.8/29.");
    expect(check("192.168.1.9")).toThrow("expected an address no host of the stack has.");
    expect(check("192.168.1.10")).not.toThrow();
  });
});

describe("interface names and paths", () => {
  it("takes what the kernel takes as an interface name, minus shell characters", () => {
    for (const ok of ["eth0", "host0", "ens18", "bond0.100", "br-lan", "enp0s31f6abcdef"]) expect(isInterfaceName(ok)).toBe(true);
    for (const bad of ["", ".", "..", "eth0:1", "a/b", "eth 0", "enp0s31f6abcdefg", "eth0;reboot", 5]) expect(isInterfaceName(bad)).toBe(false);
  });
  it("tells inside from overlapping", () => {
    expect(pathInside("/var/lib/etcd/x", "/var/lib/etcd")).toBe(true);
    expect(pathInside("/var/lib/etcdx", "/var/lib/etcd")).toBe(false);
    expect(pathsOverlap("/var/lib", "/var/lib/etcd")).toBe(true);
    expect(pathsOverlap("/var/lib/etcd/", "/var/lib/etcd")).toBe(true);
    expect(pathsOverlap("/srv/a", "/srv/b")).toBe(false);
  });
});

describe("shq", () => {
  it("fails if a value holds NUL, which no shell word can carry", () => {
    expect(() => shq("a\0b")).toThrow("shq: a NUL byte cannot be passed through a shell word");
  });
  it("quotes a single quote with the close-escape-reopen form", () => {
    expect(shq("it's")).toBe(`'it'\\''s'`);
  });
});
