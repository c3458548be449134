import { ConfigError } from "../../components/common/validate";
import { RedisSentinelGroupDefaults, checkRedisPasswords, redisBytes, resolveRedisSentinelGroupSettings } from "../../components/redisSentinelGroup/args";

const SUBNET = "10.213.7.0/24";
const NODES = [41, 42, 43].map((n) => ({ name: `redis${n - 40}`, address: `10.213.7.${n}` }));
const on = { enabled: true, nodes: NODES };

function err(raw: unknown, others: string[] = []): string {
  try {
    resolveRedisSentinelGroupSettings(raw, SUBNET, others);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("resolveRedisSentinelGroupSettings", () => {
  it("returns undefined (nothing is created) when the key is absent or enabled is false", () => {
    expect(resolveRedisSentinelGroupSettings(undefined, SUBNET)).toBeUndefined();
    expect(resolveRedisSentinelGroupSettings({ nodes: [] }, SUBNET)).toBeUndefined();
    expect(resolveRedisSentinelGroupSettings({ enabled: false, nodes: "garbage" }, SUBNET)).toBeUndefined();
  });
  it("applies every default, with a majority quorum", () => {
    const { enabled, appAllowAdminCommands, ...d } = RedisSentinelGroupDefaults;
    expect(enabled).toBe(false);
    expect(appAllowAdminCommands).toBe(false);
    expect(resolveRedisSentinelGroupSettings(on, SUBNET)).toEqual({ ...d, nodes: NODES, quorum: 2, maxmemory: undefined, vip: undefined, vipPrefix: 24 });
  });
  it("uses floor(n/2)+1 as the default quorum for 5 nodes", () => {
    const nodes = [41, 42, 43, 44, 45].map((n) => ({ name: `r${n}`, address: `10.213.7.${n}` }));
    expect(resolveRedisSentinelGroupSettings({ enabled: true, nodes }, SUBNET)!.quorum).toBe(3);
  });

  it("fails if the settings are not an object", () => {
    expect(err(true)).toBe("Invalid hastack:redis: got true; expected an object with enabled and nodes (one group), or a list of named groups.");
  });
  it("fails if enabled is not a boolean", () => {
    expect(err({ enabled: "yes" })).toBe(`Invalid hastack:redis.enabled: got "yes"; expected true or false.`);
  });
  it("fails if the subnet is not a CIDR", () => {
    expect(() => resolveRedisSentinelGroupSettings(on, "x")).toThrow(`Invalid hastack:subnet: got "x"; expected an IPv4 CIDR such as 10.213.7.0/24.`);
  });
  it("fails if an unknown key is given", () => {
    expect(err({ ...on, sentinel_port: 1 })).toMatch(/^Invalid hastack:redis\.sentinel_port: got 1; expected no such key; known keys are nodes, quorum/);
  });
  it("fails if there are fewer than 3 nodes", () => {
    expect(err({ enabled: true, nodes: NODES.slice(0, 2) }))
      .toMatch(/^Invalid hastack:redis\.nodes: got \[.*\]; expected a list of at least 3 \{name, address\} entries\.$/);
  });
  it("fails if a node name is invalid", () => {
    expect(err({ enabled: true, nodes: [{ name: "Redis 1", address: "10.213.7.41" }, ...NODES.slice(1)] }))
      .toBe(`Invalid hastack:redis.nodes[0].name: got "Redis 1"; expected a lower-case name of letters, digits and '-', starting with a letter.`);
  });
  it("fails if two nodes share a name", () => {
    expect(err({ enabled: true, nodes: [...NODES.slice(0, 2), { name: "redis1", address: "10.213.7.49" }] }))
      .toBe(`Invalid hastack:redis.nodes[2].name: got "redis1"; expected a name no other Redis node has.`);
  });
  it("fails if two nodes share an address", () => {
    expect(err({ enabled: true, nodes: [...NODES.slice(0, 2), { name: "redis9", address: "10.213.7.41" }] }))
      .toBe(`Invalid hastack:redis.nodes[2].address: got "10.213.7.41"; expected an address no other Redis node has.`);
  });
  it("fails if a node is outside the subnet", () => {
    expect(err({ enabled: true, nodes: [...NODES.slice(0, 2), { name: "redis9", address: "192.168.1.9" }] }))
      .toBe(`Invalid hastack:redis.nodes[2].address: got "192.168.1.9"; expected an address inside the stack subnet 10.213.7.0/24.`);
  });
  it("fails if the Redis port is not a port", () => {
    expect(err({ ...on, port: 0 })).toBe("Invalid hastack:redis.port: got 0; expected a TCP port 1..65535.");
  });
  it("fails if the Sentinel port is not a port", () => {
    expect(err({ ...on, sentinelPort: "26379" })).toBe(`Invalid hastack:redis.sentinelPort: got "26379"; expected a TCP port 1..65535.`);
  });
  it("fails if the HAProxy port is not a port", () => {
    expect(err({ ...on, haproxyPort: 65536 })).toBe("Invalid hastack:redis.haproxyPort: got 65536; expected a TCP port 1..65535.");
  });
  it("fails if the Sentinel port clashes with the Redis port", () => {
    expect(err({ ...on, sentinelPort: 6379 })).toBe("Invalid hastack:redis.sentinelPort: got 6379; expected a port other than hastack:redis.port (6379).");
  });
  it("fails if the HAProxy port clashes with Redis or Sentinel", () => {
    expect(err({ ...on, haproxyPort: 26379 }))
      .toBe("Invalid hastack:redis.haproxyPort: got 26379; expected a port other than hastack:redis.port (6379) and hastack:redis.sentinelPort (26379).");
  });
  it("fails if the master name has characters the configs cannot carry", () => {
    expect(err({ ...on, masterName: "my master" })).toBe(`Invalid hastack:redis.masterName: got "my master"; expected 1..64 letters, digits, '_', '.' or '-'.`);
  });
  it("fails if the quorum exceeds the number of Sentinels", () => {
    expect(err({ ...on, quorum: 4 })).toBe("Invalid hastack:redis.quorum: got 4; expected an integer 1..3 (the number of Sentinels).");
  });
  it("fails if the quorum is below 1", () => {
    expect(err({ ...on, quorum: 0 })).toBe("Invalid hastack:redis.quorum: got 0; expected an integer 1..3 (the number of Sentinels).");
  });
  it("fails if downAfterMs is too small", () => {
    expect(err({ ...on, downAfterMs: 10 })).toBe("Invalid hastack:redis.downAfterMs: got 10; expected an integer 100..3600000.");
  });
  it("fails if failoverTimeoutMs is not an integer", () => {
    expect(err({ ...on, failoverTimeoutMs: 1.5e3 + 0.5 })).toBe("Invalid hastack:redis.failoverTimeoutMs: got 1500.5; expected an integer 1000..86400000.");
  });
  it("fails if parallelSyncs exceeds the number of replicas", () => {
    expect(err({ ...on, parallelSyncs: 3 })).toBe("Invalid hastack:redis.parallelSyncs: got 3; expected an integer 1..2 (the number of replicas).");
  });
  it("fails if maxmemory is not a Redis size", () => {
    expect(err({ ...on, maxmemory: "1 GB" })).toBe(`Invalid hastack:redis.maxmemory: got "1 GB"; expected a Redis memory size such as "512mb".`);
  });
  it("fails if the interface name is invalid", () => {
    expect(err({ ...on, interface: "" })).toBe(`Invalid hastack:redis.interface: got ""; expected a network interface name of 1..15 letters, digits and _.@- (not "." or "..").`);
  });
  it("fails if the virtual router id is out of range", () => {
    expect(err({ ...on, virtualRouterId: 0 })).toBe("Invalid hastack:redis.virtualRouterId: got 0; expected an integer 1..255.");
  });
  it("fails if the vip is not IPv4", () => {
    expect(err({ ...on, vip: "vip" })).toBe(`Invalid hastack:redis.vip: got "vip"; expected an IPv4 address such as 10.213.7.70.`);
  });
  it("fails if the vip is outside the subnet", () => {
    expect(err({ ...on, vip: "10.1.1.1" })).toBe(`Invalid hastack:redis.vip: got "10.1.1.1"; expected an address inside the stack subnet 10.213.7.0/24.`);
  });
  it("fails if the vip is a Redis node's address", () => {
    expect(err({ ...on, vip: "10.213.7.42" })).toBe(`Invalid hastack:redis.vip: got "10.213.7.42"; expected an address no host of the stack has.`);
  });
  it("fails if the vip is another host's address", () => {
    expect(err({ ...on, vip: "10.213.7.11" }, ["10.213.7.11"])).toBe(`Invalid hastack:redis.vip: got "10.213.7.11"; expected an address no host of the stack has.`);
  });
});

describe("hastack:redis values Redis and keepalived would refuse or misread (issue 7 §4)", () => {
  it("fails if the VIP is the subnet's network address", () => {
    expect(err({ ...on, vip: "10.213.7.0" })).toBe(
      `Invalid hastack:redis.vip: got "10.213.7.0"; expected a host address of 10.213.7.0/24, not its network (10.213.7.0) or broadcast (10.213.7.255) address.`);
  });
  it("fails if the VIP is the subnet's broadcast address", () => {
    expect(err({ ...on, vip: "10.213.7.255" })).toContain("broadcast (10.213.7.255)");
  });
  it("fails if maxmemory overflows Redis' 64-bit size (Redis 7.0 takes it and wraps around)", () => {
    expect(err({ ...on, maxmemory: "99999999999999999gb" })).toBe(
      `Invalid hastack:redis.maxmemory: got "99999999999999999gb"; expected a Redis memory size such as "512mb".`);
    expect(err({ ...on, maxmemory: "9999999999999999gb" })).toBe(
      `Invalid hastack:redis.maxmemory: got "9999999999999999gb"; expected a size from 1mb to below 8388608tb (Redis units: k=1000, kb=1024, m, mb, g, gb).`);
  });
  it("fails if maxmemory is below 1 MB (Redis warns and evicts almost at once)", () => {
    expect(err({ ...on, maxmemory: "512kb" })).toContain("expected a size from 1mb");
    expect(resolveRedisSentinelGroupSettings({ ...on, maxmemory: "1mb" }, SUBNET)!.maxmemory).toBe("1mb");
  });
  it("reads sizes in Redis' units", () => {
    expect(redisBytes("1k")).toBe(1000n);
    expect(redisBytes("1KB")).toBe(1024n);
    expect(redisBytes("2gb")).toBe(2n * 1024n ** 3n);
  });
  it("fails if the application's Redis password is empty or spans lines, without showing it", () => {
    expect(() => checkRedisPasswords("", "internal")).toThrow(`Invalid hastack:passwords.redis: got "<secret of 0 characters>"; expected a non-empty password on one line, without NUL.`);
    expect(() => checkRedisPasswords("a\nb", "internal")).toThrow(`Invalid hastack:passwords.redis: got "<secret of 3 characters>"`);
    expect(() => checkRedisPasswords(`jhYg/=\\F'"$`, "internal")).not.toThrow();
  });
  it("fails if the Sentinel (hastack's own) Redis password is empty, without showing it", () => {
    expect(() => checkRedisPasswords("app-secret", "")).toThrow(
      `Invalid hastack:passwords.redisSentinel: got "<secret of 0 characters>"; expected a non-empty password on one line, without NUL.`);
    expect(() => checkRedisPasswords("app-secret", "x\0y")).toThrow(`Invalid hastack:passwords.redisSentinel: got "<secret of 3 characters>"`);
  });
  it("fails if Sentinel's password is the application's, without showing either", () => {
    expect(() => checkRedisPasswords("same-secret", "same-secret")).toThrow(
      `Invalid hastack:passwords.redisSentinel: got "<secret of 11 characters>, the same as hastack:passwords.redis"; ` +
      "expected a password other than hastack:passwords.redis (it opens Sentinel and hastack's admin login, which the application must not have).");
  });
  it("fails if the subnet is wider than /16", () => {
    expect(() => resolveRedisSentinelGroupSettings(on, "10.0.0.0/8")).toThrow(`Invalid hastack:subnet: got "10.0.0.0/8"; expected a prefix of /16 or longer`);
  });
});

describe("the application's Redis user (issue 7 §2)", () => {
  it("defaults to user app with every command but the dangerous ones, plus INFO", () => {
    const r = resolveRedisSentinelGroupSettings(on, SUBNET)!;
    expect(r.appUser).toBe("app");
    expect(r.appCommands).toEqual(["+@all", "-@dangerous", "+info"]);
  });
  it("accepts an explicit allow-list and a user name", () => {
    const r = resolveRedisSentinelGroupSettings({ ...on, appUser: "workspad", appCommands: ["-@all", "+@read", "+@write", "-@dangerous", "+client|setname"] }, SUBNET)!;
    expect(r.appUser).toBe("workspad");
    expect(r.appCommands).toEqual(["-@all", "+@read", "+@write", "-@dangerous", "+client|setname"]);
  });
  it("fails if the user name has characters Redis would split on", () => {
    expect(err({ ...on, appUser: "my app" })).toBe(`Invalid hastack:redis.appUser: got "my app"; expected 1..64 letters, digits, '_', '.' or '-'.`);
  });
  it.each(["default", "hastack-sentinel", "hastack-check"])("fails if the user name is hastack's own %s", (u) => {
    expect(err({ ...on, appUser: u })).toBe(
      `Invalid hastack:redis.appUser: got "${u}"; expected a name other than default, hastack-sentinel, hastack-check (hastack's own Redis users).`);
  });
  it("fails if appCommands is not a list of rules", () => {
    expect(err({ ...on, appCommands: "+@all" })).toBe(
      `Invalid hastack:redis.appCommands: got "+@all"; expected a list of 1..100 Redis ACL command rules, such as ["+@all","-@dangerous","+info"].`);
    expect(err({ ...on, appCommands: [] })).toContain("expected a list of 1..100 Redis ACL command rules");
  });
  it("fails if a rule is a key or channel pattern, or not a rule at all", () => {
    expect(err({ ...on, appCommands: ["+@all", "-@dangerous", "~cache:*"] })).toBe(
      `Invalid hastack:redis.appCommands[2]: got "~cache:*"; expected a command rule: +command, -command, +command|subcommand, +@category, -@category, allcommands or nocommands (keys and channels are always ~* and &*).`);
    expect(err({ ...on, appCommands: ["+get +set"] })).toContain("Invalid hastack:redis.appCommands[0]");
  });
  it("fails if a rule names a category Redis 7.0 does not know", () => {
    expect(err({ ...on, appCommands: ["+@reads"] })).toBe(
      `Invalid hastack:redis.appCommands[0]: got "+@reads"; expected a category Redis 7.0 knows (all, keyspace, read, write, set, sortedset, list, hash, string, bitmap, hyperloglog, geo, stream, pubsub, admin, fast, slow, blocking, dangerous, connection, transaction, scripting).`);
  });
  it("fails if a rule names a command or subcommand Redis 7.0 does not know (or the deprecated first-argument form)", () => {
    expect(err({ ...on, appCommands: ["+gett"] })).toBe(
      `Invalid hastack:redis.appCommands[0]: got "+gett"; expected a command or command|subcommand that Redis 7.0 knows (COMMAND LIST).`);
    expect(err({ ...on, appCommands: ["+client|nosuch"] })).toContain("that Redis 7.0 knows");
    expect(err({ ...on, appCommands: ["+select|db"] })).toContain("that Redis 7.0 knows");
  });
  it.each([
    [["+@all"], "acl|deluser"],
    [["+@all", "-@admin"], "flushall"],
    [["-@all", "+@read", "+config"], "config|get"],
    [["+@all", "-@dangerous", "+debug"], "debug"],
    [["+@all", "-@dangerous", "+acl"], "acl|deluser"],
    [["+@all", "-@dangerous", "+shutdown"], "shutdown"],
    [["+@all", "-@dangerous", "+replicaof", "+slaveof"], "replicaof"],
    [["+@all", "-@dangerous", "+module|load"], "module|load"],
    [["-@all", "+@keyspace"], "flushall"],
    [["allcommands", "-@admin", "-flushall", "-flushdb"], "migrate"],
  ])("fails if the rules %j grant an admin command (%s first)", (rules, first) => {
    const msg = err({ ...on, appCommands: rules });
    expect(msg).toMatch(new RegExp(`^Invalid hastack:redis\\.appCommands: got .*; expected rules that grant the application no admin command \\(these grant ${first.replace("|", "\\|")}[,;]`));
    expect(msg).toContain("or set hastack:redis.appAllowAdminCommands to true)");
  });
  it("accepts admin commands for the application only when appAllowAdminCommands is set", () => {
    expect(resolveRedisSentinelGroupSettings({ ...on, appCommands: ["+@all"], appAllowAdminCommands: true }, SUBNET)!.appCommands).toEqual(["+@all"]);
    expect(err({ ...on, appAllowAdminCommands: "yes" })).toBe(`Invalid hastack:redis.appAllowAdminCommands: got "yes"; expected true or false.`);
  });
  it("accepts subtracting a granted admin command again", () => {
    expect(() => resolveRedisSentinelGroupSettings({ ...on, appCommands: ["+@all", "-@dangerous", "+config", "-config"] }, SUBNET)).not.toThrow();
    expect(() => resolveRedisSentinelGroupSettings({ ...on, appCommands: ["+@all", "-@dangerous", "+keys", "+sort", "+client|setname"] }, SUBNET)).not.toThrow();
  });
});
