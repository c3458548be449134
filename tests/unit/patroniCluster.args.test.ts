import { PatroniClusterDefaults, resolvePatroniClusterSettings } from "../../components/patroniCluster/args";

const SUBNET = "10.213.7.0/24";
const nodes = [
  { name: "pg1", address: "10.213.7.11" },
  { name: "pg2", address: "10.213.7.12" },
  { name: "pg3", address: "10.213.7.13" },
];
const ok = (extra: Record<string, unknown> = {}) => ({ nodes, ...extra });
const resolve = (extra: Record<string, unknown>) => () => resolvePatroniClusterSettings(ok(extra), SUBNET);
const ROLE_TEXT = "a lower-case PostgreSQL identifier of letters, digits and '_' (at most 63), not starting with a digit";

describe("resolvePatroniClusterSettings", () => {
  it("applies every default", () => {
    const s = resolvePatroniClusterSettings(ok(), SUBNET);
    expect(s).toEqual({
      nodes, subnet: SUBNET, clusterName: "hastack", allowClusterRename: false, pgVersion: 15, pgPort: 5432, restApiPort: 8008, etcdClientPort: 2379, etcdPeerPort: 2380,
      dataDir: "/var/lib/postgresql/15/hastack", database: "workspad", appUser: "workspad", superuser: "postgres", replicationUser: "replicator",
      rewindUser: "rewind", failoverProfile: "default", ttl: 30, loopWait: 10, retryTimeout: 10, synchronousMode: false, maxConnections: 200,
      maxSlotWalKeepSize: "1GB", noFailover: [], etcdDataDir: "/var/lib/etcd/hastack",
    });
    expect(PatroniClusterDefaults.dataDir).toBe(s.dataDir);
  });

  it("takes the fast failover profile's timings, and explicit timings over the profile", () => {
    const fast = resolvePatroniClusterSettings(ok({ failoverProfile: "fast" }), SUBNET);
    expect([fast.ttl, fast.loopWait, fast.retryTimeout]).toEqual([20, 4, 8]);
    const mixed = resolvePatroniClusterSettings(ok({ failoverProfile: "fast", ttl: 25, retryTimeout: 10 }), SUBNET);
    expect([mixed.ttl, mixed.loopWait, mixed.retryTimeout]).toEqual([25, 4, 10]);
  });

  it("takes the aggressive profile at the floor Patroni's rule allows (ttl = loopWait + 2 × retryTimeout)", () => {
    const a = resolvePatroniClusterSettings(ok({ failoverProfile: "aggressive" }), SUBNET);
    expect(a.ttl).toBe(a.loopWait + 2 * a.retryTimeout);
    expect(resolve({ failoverProfile: "aggressive", ttl: 6 })).toThrow("Invalid hastack:postgres.ttl: got 6; expected whole seconds from 7 to 3600.");
  });

  it("accepts five nodes", () => {
    const five = [...nodes, { name: "pg4", address: "10.213.7.14" }, { name: "pg5", address: "10.213.7.15" }];
    expect(resolvePatroniClusterSettings({ nodes: five }, SUBNET).nodes).toHaveLength(5);
  });

  it("fails if the setting is not an object", () => {
    expect(() => resolvePatroniClusterSettings("pg1,pg2", SUBNET)).toThrow('Invalid hastack:postgres: got "pg1,pg2"; expected an object with at least `nodes`.');
  });
  it("fails if the stack subnet is not a CIDR", () => {
    expect(() => resolvePatroniClusterSettings(ok(), "10.213.7.0")).toThrow('Invalid hastack:subnet: got "10.213.7.0"; expected an IPv4 CIDR such as 10.213.7.0/24.');
  });
  it("fails if there are fewer than 3 nodes", () => {
    expect(resolve({ nodes: nodes.slice(0, 1) })).toThrow(`Invalid hastack:postgres.nodes: got ${JSON.stringify(nodes.slice(0, 1))}; expected a list of at least 3 {name, address} entries.`);
  });
  it("fails if a node name is not a host name", () => {
    expect(resolve({ nodes: [nodes[0], { name: "PG_2", address: "10.213.7.12" }, nodes[2]] }))
      .toThrow(`Invalid hastack:postgres.nodes[1].name: got "PG_2"; expected a lower-case name of letters, digits and '-', starting with a letter.`);
  });
  it("fails if a node address is not IPv4", () => {
    expect(resolve({ nodes: [nodes[0], { name: "pg2", address: "10.213.7.300" }, nodes[2]] }))
      .toThrow('Invalid hastack:postgres.nodes[1].address: got "10.213.7.300"; expected an IPv4 address such as 192.168.1.130.');
  });
  it("fails if the number of nodes is even (etcd would lose quorum with half of them)", () => {
    expect(resolve({ nodes: [...nodes, { name: "pg4", address: "10.213.7.14" }] }))
      .toThrow("Invalid hastack:postgres.nodes: got 4; expected an odd number of nodes (3, 5, …) so etcd keeps a quorum.");
  });
  it("takes noFailover as member names, and refuses names not in nodes, a name twice, or a list that leaves fewer than two members able to lead", () => {
    expect(resolvePatroniClusterSettings(ok({ noFailover: ["pg3"] }), SUBNET).noFailover).toEqual(["pg3"]);
    expect(resolve({ noFailover: "pg3" })).toThrow('Invalid hastack:postgres.noFailover: got "pg3"; expected a list of member names from hastack:postgres.nodes.');
    expect(resolve({ noFailover: ["pg9"] }))
      .toThrow('Invalid hastack:postgres.noFailover[0]: got "pg9"; expected the name of a member in hastack:postgres.nodes (pg1, pg2, pg3), each once.');
    expect(resolve({ noFailover: ["pg3", "pg3"] })).toThrow("Invalid hastack:postgres.noFailover[1]: got \"pg3\"");
    expect(resolve({ noFailover: ["pg2", "pg3"] }))
      .toThrow("expected a list that leaves at least two members able to lead (with one, its loss leaves no member to fail over to).");
  });
  it("takes etcd's raft timings when set and leaves them out when not; refuses what etcd refuses, and an election longer than Patroni's retries", () => {
    const t = (extra: Record<string, unknown>) => { const x = resolvePatroniClusterSettings(ok(extra), SUBNET); return [x.etcdHeartbeatMs, x.etcdElectionMs]; };
    expect(t({})).toEqual([undefined, undefined]);
    expect(t({ etcdHeartbeatMs: 250, etcdElectionMs: 2500 })).toEqual([250, 2500]);
    expect(t({ etcdElectionMs: 2500 })).toEqual([undefined, 2500]);
    expect(resolve({ etcdHeartbeatMs: 2.5 })).toThrow("Invalid hastack:postgres.etcdHeartbeatMs: got 2.5; expected whole milliseconds from 10 to 10000.");
    expect(resolve({ etcdElectionMs: 50001 })).toThrow("expected whole milliseconds from 50 to 50000 (etcd refuses more).");
    expect(resolve({ etcdHeartbeatMs: 100, etcdElectionMs: 400 }))
      .toThrow("Invalid hastack:postgres.etcdElectionMs: got 400; expected an election timeout at least 5 × the heartbeat (etcd refuses less): here heartbeat 100 ms, election 400 ms.");
    // a heartbeat alone is checked against etcd's default election timeout, and the message says so
    expect(resolve({ etcdHeartbeatMs: 300 })).toThrow("Invalid hastack:postgres.etcdHeartbeatMs: got 300; expected an election timeout at least 5 × the heartbeat (etcd refuses less): here heartbeat 300 ms, election 1000 ms (etcd's default; set etcdElectionMs too).");
    // the aggressive profile retries etcd for 3 s: a 3 s election would make the leader demote itself
    expect(resolve({ failoverProfile: "aggressive", etcdHeartbeatMs: 300, etcdElectionMs: 3000 }))
      .toThrow("Invalid hastack:postgres.etcdElectionMs: got 3000; expected less than retryTimeout (3 s), or one etcd election outlasts Patroni's retries and the leader demotes itself.");
    expect(t({ failoverProfile: "aggressive", etcdHeartbeatMs: 250, etcdElectionMs: 2500 })).toEqual([250, 2500]);
  });
  it("fails if a node lies outside the stack subnet", () => {
    expect(resolve({ nodes: [nodes[0], { name: "pg2", address: "10.213.8.12" }, nodes[2]] }))
      .toThrow('Invalid hastack:postgres.nodes[1].address: got "10.213.8.12"; expected an address inside the stack subnet 10.213.7.0/24.');
  });
  it("fails if two nodes share a name", () => {
    expect(resolve({ nodes: [nodes[0], { name: "pg1", address: "10.213.7.12" }, nodes[2]] }))
      .toThrow('Invalid hastack:postgres.nodes[1].name: got "pg1"; expected a name no other node uses.');
  });
  it("fails if two nodes share an address", () => {
    expect(resolve({ nodes: [nodes[0], { name: "pg2", address: "10.213.7.11" }, nodes[2]] }))
      .toThrow('Invalid hastack:postgres.nodes[1].address: got "10.213.7.11"; expected an address no other node uses.');
  });
  it("fails if clusterName is not a lower-case name", () => {
    expect(resolve({ clusterName: "Has Stack" })).toThrow(`Invalid hastack:postgres.clusterName: got "Has Stack"; expected a lower-case name of letters, digits and '-', starting with a letter.`);
  });
  it("fails if pgVersion is not a supported major version", () => {
    expect(resolve({ pgVersion: "15" })).toThrow('Invalid hastack:postgres.pgVersion: got "15"; expected a PostgreSQL major version from 12 to 17.');
  });
  it.each(["pgPort", "restApiPort", "etcdClientPort", "etcdPeerPort"])("fails if %s is not a TCP port", (key) => {
    expect(resolve({ [key]: 70000 })).toThrow(`Invalid hastack:postgres.${key}: got 70000; expected a TCP port from 1 to 65535.`);
  });
  it("fails if two daemons on one host would use the same port", () => {
    expect(resolve({ restApiPort: 5432 })).toThrow("Invalid hastack:postgres.restApiPort: got 5432; expected a port not already used by pgPort on the same host.");
    expect(resolve({ etcdPeerPort: 2379 })).toThrow("Invalid hastack:postgres.etcdPeerPort: got 2379; expected a port not already used by etcdClientPort on the same host.");
  });
  it("fails if dataDir is not a safe absolute path", () => {
    expect(resolve({ dataDir: "var/lib/pg data" })).toThrow(`Invalid hastack:postgres.dataDir: got "var/lib/pg data"; expected an absolute path of letters, digits, '.', '_', '-' and '/', at least two levels deep, such as /var/lib/postgresql/15/hastack.`);
  });
  it("fails if dataDir is the packaged main cluster's directory", () => {
    expect(resolve({ dataDir: "/var/lib/postgresql/15/main" })).toThrow(`Invalid hastack:postgres.dataDir: got "/var/lib/postgresql/15/main"; expected a directory other than the packaged cluster's …/main (Patroni must not share it).`);
  });
  it("fails if database is not a plain identifier or is a system database", () => {
    expect(resolve({ database: "template1" })).toThrow(`Invalid hastack:postgres.database: got "template1"; expected ${ROLE_TEXT}, other than postgres/template0/template1.`);
  });
  it.each(["appUser", "superuser", "replicationUser", "rewindUser"])("fails if %s is not a plain identifier", (key) => {
    expect(resolve({ [key]: `bad"name` })).toThrow(`Invalid hastack:postgres.${key}: got "bad\\"name"; expected ${ROLE_TEXT}.`);
  });
  it("fails if two roles share a name", () => {
    expect(resolve({ appUser: "postgres" })).toThrow('Invalid hastack:postgres.appUser: got "postgres"; expected a role name different from superuser.');
  });
  it("fails if failoverProfile is unknown", () => {
    expect(resolve({ failoverProfile: "turbo" })).toThrow('Invalid hastack:postgres.failoverProfile: got "turbo"; expected one of "default", "fast", "aggressive".');
  });
  it("fails if ttl is below the supported minimum", () => {
    expect(resolve({ ttl: 6 })).toThrow("Invalid hastack:postgres.ttl: got 6; expected whole seconds from 7 to 3600.");
  });
  it("fails if loopWait is not a positive whole number", () => {
    expect(resolve({ loopWait: 0.5 })).toThrow("Invalid hastack:postgres.loopWait: got 0.5; expected whole seconds from 1 to 600.");
  });
  it("fails if retryTimeout is below 3 seconds", () => {
    expect(resolve({ retryTimeout: 2 })).toThrow("Invalid hastack:postgres.retryTimeout: got 2; expected whole seconds from 3 to 600.");
  });
  it("fails if ttl is shorter than loopWait + 2 × retryTimeout", () => {
    expect(resolve({ failoverProfile: "fast", retryTimeout: 10 })).toThrow("Invalid hastack:postgres.ttl: got 20; expected at least loopWait + 2 × retryTimeout = 24 (Patroni's rule, so a slow loop does not lose the leader key).");
  });
  it("fails if synchronousMode is not a boolean", () => {
    expect(resolve({ synchronousMode: "yes" })).toThrow('Invalid hastack:postgres.synchronousMode: got "yes"; expected true or false.');
  });
  it("fails if maxConnections is out of range", () => {
    expect(resolve({ maxConnections: 5 })).toThrow("Invalid hastack:postgres.maxConnections: got 5; expected a whole number from 10 to 10000.");
  });
});

describe("hastack:postgres names and directories the daemons reserve (issue 7 §4)", () => {
  const RESERVED = "a role name PostgreSQL does not reserve: not pg_*, public or none (refused by CREATE ROLE), nor current_user, " +
    "session_user, current_role, user (keywords in role specifications) or all, sameuser, samerole, samegroup, replication (pg_hba keywords)";
  it.each(["appUser", "superuser", "replicationUser", "rewindUser"])("fails if %s is a pg_* role (PostgreSQL reserves the prefix)", (k) => {
    expect(resolve({ [k]: "pg_monitor" })).toThrow(`Invalid hastack:postgres.${k}: got "pg_monitor"; expected ${RESERVED}.`);
  });
  it.each(["public", "none", "current_user", "session_user", "current_role", "user", "all", "replication"])(
    "fails if appUser is the reserved word %s", (name) => {
      expect(resolve({ appUser: name })).toThrow(`Invalid hastack:postgres.appUser: got "${name}"; expected ${RESERVED}.`);
    });
  it("fails if the database is pgbouncer (PgBouncer's admin console takes that name)", () => {
    expect(resolve({ database: "pgbouncer" })).toThrow(`Invalid hastack:postgres.database: got "pgbouncer"; expected a name other than "pgbouncer" (PgBouncer's admin console), pg_* and the pg_hba keywords all, sameuser, samerole, samegroup, replication.`);
  });
  it("fails if the database is a pg_hba keyword", () => {
    expect(resolve({ database: "sameuser" })).toThrow(`Invalid hastack:postgres.database: got "sameuser"; expected a name other than "pgbouncer"`);
  });
  it("fails if dataDir is inside the etcd data directory", () => {
    expect(resolve({ dataDir: "/var/lib/etcd/hastack/pg" })).toThrow(
      `Invalid hastack:postgres.dataDir: got "/var/lib/etcd/hastack/pg"; expected a directory that neither is, contains nor lies inside /var/lib/etcd (another daemon's or the packaged cluster's files).`);
  });
  it("fails if dataDir is Redis' directory", () => {
    expect(resolve({ dataDir: "/var/lib/redis/pg" })).toThrow("expected a directory that neither is, contains nor lies inside /var/lib/redis ");
  });
  it("fails if dataDir contains the packaged cluster (…/15 holds …/15/main)", () => {
    expect(resolve({ dataDir: "/var/lib/postgresql/15" })).toThrow("expected a directory that neither is, contains nor lies inside /var/lib/postgresql/15/main ");
  });
  it("fails if dataDir is inside the packaged cluster", () => {
    expect(resolve({ dataDir: "/var/lib/postgresql/15/main/hastack" })).toThrow("lies inside /var/lib/postgresql/15/main ");
  });
  it("fails if dataDir is the postgres home, where Patroni writes its pgpass", () => {
    expect(resolve({ dataDir: "/var/lib/postgresql/" })).toThrow(`Invalid hastack:postgres.dataDir: got "/var/lib/postgresql/"; expected a directory that neither is, contains nor lies inside`);
    expect(resolve({ dataDir: "/var/lib/postgresql/.pgpass.patroni" })).toThrow("lies inside /var/lib/postgresql/.pgpass.patroni ");
  });
  it("fails if dataDir is inside /etc", () => {
    expect(resolve({ dataDir: "/etc/postgresql/15/hastack" })).toThrow("lies inside /etc/postgresql ");
  });
  it("fails if dataDir is a system directory", () => {
    expect(resolve({ dataDir: "/var/lib" })).toThrow(`Invalid hastack:postgres.dataDir: got "/var/lib"; expected a directory of its own, not a system directory such as /var/lib or /etc.`);
  });
  it("fails if dataDir is on a volatile file system", () => {
    expect(resolve({ dataDir: "/run/postgresql/hastack" })).toThrow("expected a persistent directory, not under /proc, /sys, /dev, /run");
  });
  it("accepts its own directory beside the packaged cluster", () => {
    expect(resolve({ dataDir: "/srv/pg/hastack" })).not.toThrow();
    expect(resolve({ dataDir: "/var/lib/postgresql/15/hastack" })).not.toThrow();
  });
  it("fails if the stack subnet is wider than /16", () => {
    expect(() => resolvePatroniClusterSettings(ok(), "0.0.0.0/0")).toThrow(
      `Invalid hastack:subnet: got "0.0.0.0/0"; expected a prefix of /16 or longer: the stack's L2 segment, since each VIP is added as <vip>/<prefix> and makes the whole subnet on-link on its interface.`);
  });
});

describe("hastack:postgres.maxSlotWalKeepSize", () => {
  it.each(["-1", "1gb", "1.5GB", "0MB", 1024])("fails if it is %p, not a bounded PostgreSQL size with a unit", (v) => {
    expect(resolve({ maxSlotWalKeepSize: v })).toThrow(`Invalid hastack:postgres.maxSlotWalKeepSize: got ${JSON.stringify(v)}; expected a PostgreSQL size such as "512MB", "1GB" or "1TB" (a slot may never hold back unlimited WAL).`);
  });
});

describe("hastack:postgres.allowClusterRename", () => {
  it("is off unless set to true", () => {
    expect(resolvePatroniClusterSettings(ok({ allowClusterRename: true }), SUBNET).allowClusterRename).toBe(true);
  });
  it.each(["yes", 1, "true"])("fails if it is %p, not a boolean", (v) => {
    expect(resolve({ allowClusterRename: v })).toThrow(`Invalid hastack:postgres.allowClusterRename: got ${JSON.stringify(v)}; expected true or false.`);
  });
});
