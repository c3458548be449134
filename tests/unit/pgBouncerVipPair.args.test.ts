import {
  PgBouncerVipPairDefaults, checkAppPassword, checkKeepalivedAuthPass, checkPatroniMembers, checkPgName, resolvePgBouncerVipPairSettings,
} from "../../components/pgBouncerVipPair/args";
import { ConfigError } from "../../components/common/validate";

const SUBNET = "10.213.7.0/24";
const nodes = [{ name: "px1", address: "10.213.7.21" }, { name: "px2", address: "10.213.7.22" }];
const base = { nodes, vip: "10.213.7.50" };
const ALL = ["10.213.7.11", "10.213.7.12", "10.213.7.13", "10.213.7.21", "10.213.7.22"];
const PATRONI_PORTS = [{ name: "hastack:postgres.pgPort", port: 5432 }, { name: "hastack:postgres.restApiPort", port: 8008 }];

function fails(raw: unknown, message: string, subnet = SUBNET) {
  expect(() => resolvePgBouncerVipPairSettings(raw, subnet, ALL, PATRONI_PORTS)).toThrow(ConfigError);
  expect(() => resolvePgBouncerVipPairSettings(raw, subnet, ALL, PATRONI_PORTS)).toThrow(message);
}

describe("resolvePgBouncerVipPairSettings", () => {
  test("applies the documented defaults", () => {
    const r = resolvePgBouncerVipPairSettings(base, SUBNET, ALL, PATRONI_PORTS);
    expect(r).toEqual({
      nodes, vip: "10.213.7.50", vipPrefix: 24, priorities: [200, 190],
      ...PgBouncerVipPairDefaults,
    });
    expect(PgBouncerVipPairDefaults).toEqual({
      port: 6432, haproxyPort: 5000, poolMode: "session", defaultPoolSize: 20, maxClientConn: 500, authType: "scram-sha-256",
      interface: "eth0", virtualRouterId: 51, unicast: false, checkIntervalSeconds: 1, checkFall: 2, checkRise: 2,
      vrrpVersion: 3, advertIntervalSeconds: 0.3,
    });
  });

  test("keeps a VRRPv2 pair with whole-second adverts, and VRRPv3 at its centisecond bounds", () => {
    expect(resolvePgBouncerVipPairSettings({ ...base, vrrpVersion: 2, advertIntervalSeconds: 1 }, SUBNET)).toMatchObject({ vrrpVersion: 2, advertIntervalSeconds: 1 });
    expect(resolvePgBouncerVipPairSettings({ ...base, advertIntervalSeconds: 0.1 }, SUBNET).advertIntervalSeconds).toBe(0.1);
    expect(resolvePgBouncerVipPairSettings({ ...base, advertIntervalSeconds: 40.95 }, SUBNET).advertIntervalSeconds).toBe(40.95);
  });
  test("fails if vrrpVersion is not 2 or 3", () => {
    fails({ ...base, vrrpVersion: "3" }, 'Invalid hastack:proxy.vrrpVersion: got "3"; expected 2 or 3 (VRRP protocol version).');
  });
  test.each([0.05, 0.333, 41, -1, "0.3"])("fails if the VRRPv3 advert interval is %j", (v) => {
    fails({ ...base, advertIntervalSeconds: v },
      `Invalid hastack:proxy.advertIntervalSeconds: got ${JSON.stringify(v)}; expected seconds 0.1..40.95 in steps of 0.01 (VRRPv3 counts centiseconds).`);
  });
  test("fails if a sub-second advert interval is asked of VRRPv2", () => {
    fails({ ...base, vrrpVersion: 2 },
      "Invalid hastack:proxy.advertIntervalSeconds: got 0.3; expected whole seconds 1..255 with vrrpVersion 2 (sub-second adverts need vrrpVersion 3).");
  });

  test("keeps given values and gives descending priorities to any number of nodes", () => {
    const three = [...nodes, { name: "px3", address: "10.213.7.23" }];
    const r = resolvePgBouncerVipPairSettings({ ...base, nodes: three, port: 6543, interface: "host0", unicast: true, poolMode: "transaction" },
      SUBNET, ALL);
    expect(r.priorities).toEqual([200, 190, 180]);
    expect(r).toMatchObject({ port: 6543, interface: "host0", unicast: true, poolMode: "transaction" });
    expect(resolvePgBouncerVipPairSettings({ ...base, nodes: [nodes[0]] }, SUBNET).priorities).toEqual([200]);
  });

  test("fails if the config is not an object", () => {
    fails("px1", 'Invalid hastack:proxy: got "px1"; expected an object with at least nodes and vip.');
  });
  test("fails if the stack subnet is not a CIDR", () => {
    fails(base, 'Invalid hastack:subnet: got "10.213.7.0"; expected an IPv4 CIDR such as 10.213.7.0/24.', "10.213.7.0");
  });
  test("fails if an unknown key is given", () => {
    fails({ ...base, poolmode: "session" }, 'Invalid hastack:proxy.poolmode: got "session"; expected no such key; known keys are nodes, vip, port, haproxyPort, poolMode, defaultPoolSize, maxClientConn, authType, interface, virtualRouterId, unicast, checkIntervalSeconds, checkFall, checkRise, vrrpVersion, advertIntervalSeconds.');
  });
  test("fails if nodes is missing or empty", () => {
    fails({ vip: base.vip }, "Invalid hastack:proxy.nodes: got nothing; expected a list of at least 1 {name, address} entries.");
    fails({ ...base, nodes: [] }, "Invalid hastack:proxy.nodes: got []; expected a list of at least 1 {name, address} entries.");
  });
  test("fails if a node name is not a host name", () => {
    fails({ ...base, nodes: [nodes[0], { name: "Px_2", address: "10.213.7.22" }] },
      `Invalid hastack:proxy.nodes[1].name: got "Px_2"; expected a lower-case name of letters, digits and '-', starting with a letter.`);
  });
  test("fails if a node address is not IPv4", () => {
    fails({ ...base, nodes: [nodes[0], { name: "px2", address: "10.213.7.300" }] },
      'Invalid hastack:proxy.nodes[1].address: got "10.213.7.300"; expected an IPv4 address such as 192.168.1.130.');
  });
  test("fails if there are more than 10 nodes", () => {
    const many = Array.from({ length: 11 }, (_, i) => ({ name: `px${i}`, address: `10.213.7.${30 + i}` }));
    fails({ ...base, nodes: many }, "Invalid hastack:proxy.nodes: got 11; expected at most 10 nodes.");
  });
  test("fails if two nodes share a name", () => {
    fails({ ...base, nodes: [nodes[0], { name: "px1", address: "10.213.7.22" }] },
      'Invalid hastack:proxy.nodes[1].name: got "px1"; expected a name no other proxy node has.');
  });
  test("fails if two nodes share an address", () => {
    fails({ ...base, nodes: [nodes[0], { name: "px2", address: "10.213.7.21" }] },
      'Invalid hastack:proxy.nodes[1].address: got "10.213.7.21"; expected an address no other proxy node has.');
  });
  test("fails if a node is outside the stack subnet", () => {
    fails({ ...base, nodes: [nodes[0], { name: "px2", address: "10.213.8.22" }] },
      'Invalid hastack:proxy.nodes[1].address: got "10.213.8.22"; expected an address inside the stack subnet 10.213.7.0/24 (VRRP needs one L2 segment).');
  });
  test("fails if the VIP is missing or not IPv4", () => {
    fails({ nodes }, "Invalid hastack:proxy.vip: got nothing; expected an IPv4 address such as 10.213.7.50.");
    fails({ ...base, vip: "10.213.7.50/24" }, 'Invalid hastack:proxy.vip: got "10.213.7.50/24"; expected an IPv4 address such as 10.213.7.50.');
  });
  test("fails if the VIP is outside the stack subnet", () => {
    fails({ ...base, vip: "192.168.1.50" }, 'Invalid hastack:proxy.vip: got "192.168.1.50"; expected an address inside the stack subnet 10.213.7.0/24.');
  });
  test("fails if the VIP is the address of a stack host", () => {
    fails({ ...base, vip: "10.213.7.11" }, 'Invalid hastack:proxy.vip: got "10.213.7.11"; expected an address no host of the stack has.');
  });
  test("fails if the VIP is a proxy node's own address even when the host list omits it", () => {
    expect(() => resolvePgBouncerVipPairSettings({ ...base, vip: "10.213.7.22" }, SUBNET, []))
      .toThrow('Invalid hastack:proxy.vip: got "10.213.7.22"; expected an address no host of the stack has.');
  });
  test("fails if port is not a TCP port", () => {
    fails({ ...base, port: 70000 }, "Invalid hastack:proxy.port: got 70000; expected a TCP port 1..65535.");
  });
  test("fails if haproxyPort is not a TCP port", () => {
    fails({ ...base, haproxyPort: "5000" }, 'Invalid hastack:proxy.haproxyPort: got "5000"; expected a TCP port 1..65535.');
  });
  test("fails if haproxyPort equals port", () => {
    fails({ ...base, haproxyPort: 6432 }, "Invalid hastack:proxy.haproxyPort: got 6432; expected a port other than hastack:proxy.port (6432).");
  });
  test("fails if port clashes with a Patroni port", () => {
    fails({ ...base, port: 5432 }, "Invalid hastack:proxy.port: got 5432; expected a port other than hastack:postgres.pgPort (5432).");
  });
  test("fails if haproxyPort clashes with a Patroni port", () => {
    fails({ ...base, haproxyPort: 8008 }, "Invalid hastack:proxy.haproxyPort: got 8008; expected a port other than hastack:postgres.restApiPort (8008).");
  });
  test("fails if poolMode is unknown", () => {
    fails({ ...base, poolMode: "Session" }, 'Invalid hastack:proxy.poolMode: got "Session"; expected one of "session", "transaction", "statement".');
  });
  test("fails if defaultPoolSize is not a positive integer", () => {
    fails({ ...base, defaultPoolSize: 0 }, "Invalid hastack:proxy.defaultPoolSize: got 0; expected an integer 1..10000.");
  });
  test("fails if maxClientConn is out of range", () => {
    fails({ ...base, maxClientConn: 2.5 }, "Invalid hastack:proxy.maxClientConn: got 2.5; expected an integer 1..100000.");
  });
  test("fails if maxClientConn is below defaultPoolSize", () => {
    fails({ ...base, maxClientConn: 10 }, "Invalid hastack:proxy.maxClientConn: got 10; expected at least hastack:proxy.defaultPoolSize (20).");
  });
  test("fails if authType is unknown", () => {
    fails({ ...base, authType: "trust" }, 'Invalid hastack:proxy.authType: got "trust"; expected "scram-sha-256" or "md5".');
  });
  test("fails if interface is not an interface name", () => {
    fails({ ...base, interface: "eth0 dev lo" }, 'Invalid hastack:proxy.interface: got "eth0 dev lo"; expected a network interface name of 1..15 letters, digits and _.@- (not "." or "..").');
  });
  test("fails if virtualRouterId is outside 1..255", () => {
    fails({ ...base, virtualRouterId: 256 }, "Invalid hastack:proxy.virtualRouterId: got 256; expected an integer 1..255.");
  });
  test("fails if unicast is not a boolean", () => {
    fails({ ...base, unicast: "yes" }, 'Invalid hastack:proxy.unicast: got "yes"; expected true or false.');
  });
  test("fails if checkIntervalSeconds is outside 1..60", () => {
    fails({ ...base, checkIntervalSeconds: 0 }, "Invalid hastack:proxy.checkIntervalSeconds: got 0; expected an integer 1..60.");
  });
  test("fails if checkFall is outside 1..10", () => {
    fails({ ...base, checkFall: 11 }, "Invalid hastack:proxy.checkFall: got 11; expected an integer 1..10.");
  });
  test("fails if checkRise is outside 1..10", () => {
    fails({ ...base, checkRise: -1 }, "Invalid hastack:proxy.checkRise: got -1; expected an integer 1..10.");
  });
});

describe("values checked when they resolve", () => {
  const AUTH = `Invalid hastack:passwords.proxyKeepalived: got "<secret of 11 characters>"; expected 1..8 printable ASCII characters without spaces, '"' or '\\' (e.g. RandomPassword { length: 8, special: false }).`;
  test("accepts an 8-character RandomPassword with its default specials", () => {
    expect(() => checkKeepalivedAuthPass("a#b!{c}$")).not.toThrow();
    expect(() => checkKeepalivedAuthPass("Ab3dE6gH")).not.toThrow();
  });
  test("fails if keepalivedAuthPass is longer than 8 characters, without showing it", () => {
    expect(() => checkKeepalivedAuthPass("jhYg/=\\F'\"$")).toThrow(AUTH);
  });
  test("fails if keepalivedAuthPass holds a quote, a backslash or a space", () => {
    for (const p of ['ab"cd', "ab\\cd", "ab cd"]) {
      expect(() => checkKeepalivedAuthPass(p)).toThrow(`Invalid hastack:passwords.proxyKeepalived: got "<secret of 5 characters>"`);
    }
  });
  test("fails if keepalivedAuthPass is empty", () => {
    expect(() => checkKeepalivedAuthPass("")).toThrow('Invalid hastack:passwords.proxyKeepalived: got "<secret of 0 characters>"');
  });
  test("fails if the database or app user is not a plain identifier", () => {
    expect(() => checkPgName("database", "works pad")).toThrow(
      `Invalid database: got "works pad"; expected a PostgreSQL identifier of letters, digits and '_', not starting with a digit, at most 63 characters.`);
    expect(() => checkPgName("appUser", "workspad")).not.toThrow();
  });
  test("fails if the Patroni member list is empty or malformed", () => {
    expect(() => checkPatroniMembers([])).toThrow("Invalid patroniMembers: got []; expected a list of at least 1 {name, address} entries.");
    expect(() => checkPatroniMembers([{ name: "pg1", address: "pg1.local" }])).toThrow(
      'Invalid patroniMembers[0].address: got "pg1.local"; expected an IPv4 address such as 192.168.1.130.');
  });
});

describe("hastack:proxy VIPs and names the daemons cannot take (issue 7 §4)", () => {
  test("fails if the VIP is the subnet's network address", () => {
    fails({ ...base, vip: "10.213.7.0" }, 'Invalid hastack:proxy.vip: got "10.213.7.0"; expected a host address of 10.213.7.0/24, not its network (10.213.7.0) or broadcast (10.213.7.255) address.');
  });
  test("fails if the VIP is the subnet's broadcast address", () => {
    fails({ ...base, vip: "10.213.7.255" }, 'Invalid hastack:proxy.vip: got "10.213.7.255"; expected a host address of 10.213.7.0/24, not its network (10.213.7.0) or broadcast (10.213.7.255) address.');
  });
  test("fails if the interface is '.', '..' or holds ':' (an alias label, not an interface)", () => {
    for (const i of [".", "..", "eth0:1"]) fails({ ...base, interface: i }, `Invalid hastack:proxy.interface: got ${JSON.stringify(i)}; expected a network interface name`);
  });
  test("fails if the interface is longer than IFNAMSIZ allows (15)", () => {
    fails({ ...base, interface: "enp0s31f6abcdefg" }, 'Invalid hastack:proxy.interface: got "enp0s31f6abcdefg"');
    expect(() => resolvePgBouncerVipPairSettings({ ...base, interface: "enp0s31f6abcdef" }, SUBNET, ALL)).not.toThrow();
  });
  test("fails if the subnet is written with host bits set", () => {
    fails(base, 'Invalid hastack:subnet: got "10.213.7.9/24"; expected the subnet written with its network address, 10.213.7.0/24.', "10.213.7.9/24");
  });
  test("fails if the subnet is a /31 or /32", () => {
    fails(base, 'Invalid hastack:subnet: got "10.213.7.0/31"; expected a prefix of /30 or shorter', "10.213.7.0/31");
  });
  test("fails if the app password is longer than PgBouncer 1.18's auth_file takes (2047 bytes), without showing it", () => {
    expect(() => checkAppPassword("x".repeat(2047))).not.toThrow();
    expect(() => checkAppPassword("x".repeat(2048))).toThrow(
      `Invalid hastack:passwords.postgresApp: got "<secret of 2048 characters>"; expected a non-empty password on one line of at most 2047 bytes (PgBouncer's auth_file limit).`);
    // bytes, not characters: 1024 × "é" is 2048 bytes
    expect(() => checkAppPassword("é".repeat(1024))).toThrow("Invalid hastack:passwords.postgresApp");
  });
  test("fails if the app password is empty or spans lines", () => {
    for (const p of ["", "a\nb", "a\0b"]) expect(() => checkAppPassword(p)).toThrow("Invalid hastack:passwords.postgresApp");
  });
});

describe("hastack:proxy limits of the packaged PgBouncer", () => {
  test("fails if maxClientConn plus the pool exceeds the 1024 open files pgbouncer.service runs with", () => {
    fails({ ...base, maxClientConn: 990 }, "Invalid hastack:proxy.maxClientConn: got 990; expected at most 980 (1000 file descriptors for clients and the 20 server connections of defaultPoolSize");
    expect(() => resolvePgBouncerVipPairSettings({ ...base, maxClientConn: 980 }, SUBNET, ALL)).not.toThrow();
  });
});
