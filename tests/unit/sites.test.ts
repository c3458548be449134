// Two datacenters joined by stack references: `hastack:site` rules, the contract checks, and what a
// standby site renders from the primary's contract (StackReference reads are mocked, fail-closed).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { readStackConfig } from "../../stacks/config";
import { resolveDatacenter } from "../../stacks/datacenter";
import { checkPeers, parseContract, SiteContract } from "../../stacks/contract";
import { resolveSiteSettings, ResolvedSite } from "../../stacks/site";
import { installMocks, recorded, resetRecorded, resolve, settle } from "./mocks";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const unwrap = (v: any): any => (typeof v === "object" && v !== null && v[SECRET_SIG] !== undefined ? unwrap(v.value) : v);

const members = (site: string, net: string) => [1, 2, 3].map((i) => ({ name: `${site}pg${i}`, address: `${net}.1${i}`, pgPort: 5432, restApiPort: 8008 }));

function contract(over: Partial<SiteContract> = {}): SiteContract {
  return {
    version: 1, site: "dc1", role: "primary", primarySite: "dc1", epoch: 1, subnet: "10.1.0.0/24",
    postgres: { clusterName: "hastack", members: members("d1", "10.1.0"), leaderRule: "GET /primary", replicationUser: "replicator" },
    caCertPem: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n",
    vips: { db: { address: "10.1.0.20", port: 6432 } },
    ...over,
  };
}

const dc2: ResolvedSite = resolveSiteSettings({ name: "dc2", peers: ["dc1"], primarySite: "dc1", epoch: 1, remoteSubnets: ["10.1.0.0/24"] })!;
const dc2Members = members("d2", "10.2.0");
const peer = (c: SiteContract | undefined, stack = "dc1") => ({ stack, ref: `organization/hastack/${stack}`, contract: c });

describe("hastack:site", () => {
  it("is optional: a stack without it stays one datacenter", () => {
    expect(resolveSiteSettings(undefined)).toBeUndefined();
  });

  it("makes the site a standby when another site leads", () => {
    expect(dc2.role).toBe("standby");
    expect(resolveSiteSettings({ name: "dc1", peers: ["dc2"], primarySite: "dc1", epoch: 1 })!.role).toBe("primary");
  });

  it("fails if a site lists itself as a peer", () => {
    expect(() => resolveSiteSettings({ name: "dc1", peers: ["dc2", "dc1"], primarySite: "dc1", epoch: 1 }))
      .toThrow('Invalid hastack:site.peers: got ["dc2","dc1"]; expected stack names other than this site\'s own name "dc1" (a site cannot be its own peer).');
  });

  it("fails if primarySite is neither this site nor a peer", () => {
    expect(() => resolveSiteSettings({ name: "dc1", peers: ["dc2"], primarySite: "dc3", epoch: 1 }))
      .toThrow('Invalid hastack:site.primarySite: got "dc3"; expected this site\'s name or one of its peers ("dc1", "dc2").');
  });

  it("fails if the epoch is not a whole number from 1", () => {
    expect(() => resolveSiteSettings({ name: "dc1", primarySite: "dc1", epoch: 0 })).toThrow("Invalid hastack:site.epoch: got 0;");
  });

  it("fails on an unknown key", () => {
    expect(() => resolveSiteSettings({ name: "dc1", primarySite: "dc1", epoch: 1, primary: "dc1" })).toThrow("Invalid hastack:site.primary: got \"dc1\"; expected no such key");
  });
});

describe("the example site stacks (Pulumi.dc1.yaml, Pulumi.dc2.yaml)", () => {
  const deb = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hastack-deb-")), "workspad.deb");
  fs.writeFileSync(deb, "not really a deb");
  // what the header of each file tells the user to set as secrets: the key, and the same four role passwords in both
  const shared = { postgresSuperuser: "su-pw", postgresReplication: "repl-pw", postgresRewind: "rw-pw", postgresApp: "app-pw" };
  const load = (f: string, passwords: Record<string, string> = shared) => {
    const c = (yaml.load(fs.readFileSync(path.join(__dirname, "..", "..", f), "utf8")) as { config: Record<string, any> }).config;
    const get = (k: string) => (k === "sshPrivateKey" ? KEY : k === "passwords" ? passwords : k === "workspad" ? { ...c["hastack:workspad"], packagePath: deb } : c[`hastack:${k}`]);
    return resolveDatacenter(readStackConfig(get));
  };

  it("fail without the shared database passwords, naming the first missing key", () => {
    expect(() => load("Pulumi.dc2.yaml", {})).toThrow('Invalid hastack:passwords.postgresSuperuser: got "(not set)"');
  });

  it("resolve, and agree with each other as primary and standby", () => {
    const [d1, d2] = [load("Pulumi.dc1.yaml"), load("Pulumi.dc2.yaml")];
    expect([d1.site!.role, d2.site!.role]).toEqual(["primary", "standby"]);
    const asContract = (d: typeof d1, subnet: string): SiteContract => contract({
      site: d.site!.name, role: d.site!.role, primarySite: d.site!.primarySite, epoch: d.site!.epoch, subnet,
      postgres: { ...contract().postgres, members: d.postgres.nodes.map((n) => ({ ...n, pgPort: 5432, restApiPort: 8008 })) },
    });
    expect(checkPeers({ site: d2.site!, members: d2.postgres.nodes }, [peer(asContract(d1, "10.20.1.0/24"))])!.site).toBe("dc1");
    expect(checkPeers({ site: d1.site!, members: d1.postgres.nodes }, [peer(asContract(d2, "10.20.2.0/24"), "dc2")])).toBeUndefined();
  });
});

describe("the contract between sites", () => {
  it("returns the primary's contract to a standby that agrees with it", () => {
    expect(checkPeers({ site: dc2, members: dc2Members }, [peer(contract())])!.site).toBe("dc1");
  });

  it("fails if the primary site's stack was never deployed", () => {
    expect(() => checkPeers({ site: dc2, members: dc2Members }, [peer(undefined)]))
      .toThrow('Invalid hastack:site.primarySite: got "dc1"; expected a site whose stack is deployed: organization/hastack/dc1 has no "site" output yet (run `pulumi up` on dc1 first).');
  });

  it("lets a primary deploy before its standby exists", () => {
    const dc1 = resolveSiteSettings({ name: "dc1", peers: ["dc2"], primarySite: "dc1", epoch: 1, remoteSubnets: ["10.2.0.0/24"] })!;
    expect(checkPeers({ site: dc1, members: members("d1", "10.1.0") }, [peer(undefined, "dc2")])).toBeUndefined();
  });

  it("fails if the two sites name different primaries at the same epoch, naming both", () => {
    expect(() => checkPeers({ site: dc2, members: dc2Members }, [peer(contract({ primarySite: "dc2", role: "standby" }))]))
      .toThrow('Invalid hastack:site.primarySite: got "dc1"; expected "dc2", what peer dc1 says at the same epoch 1');
  });

  it("fails if the peer is at a later epoch, and says when the peer has taken the primary role", () => {
    const dc1 = resolveSiteSettings({ name: "dc1", peers: ["dc2"], primarySite: "dc1", epoch: 1, remoteSubnets: ["10.2.0.0/24"] })!;
    const newer = contract({ site: "dc2", role: "primary", primarySite: "dc2", epoch: 2, subnet: "10.2.0.0/24",
      postgres: { ...contract().postgres, members: dc2Members } });
    expect(() => checkPeers({ site: dc1, members: members("d1", "10.1.0") }, [peer(newer, "dc2")]))
      .toThrow('Invalid hastack:site.epoch: got 1; expected at least 2: peer dc2 is at epoch 2 with primarySite "dc2" (this stack says epoch 1, primarySite "dc1"); dc2 has taken the primary role, so this site must follow it: set hastack:site.primarySite=dc2 and epoch=2.');
  });

  it("lets a peer lag one role change behind (it is updated next)", () => {
    const dc2e2 = resolveSiteSettings({ name: "dc2", peers: ["dc1"], primarySite: "dc2", epoch: 2, remoteSubnets: ["10.1.0.0/24"] })!;
    expect(() => checkPeers({ site: dc2e2, members: dc2Members }, [peer(contract())])).not.toThrow();
  });

  it("fails if a member name is used in both sites", () => {
    const clash = contract({ postgres: { ...contract().postgres, members: [{ ...members("d1", "10.1.0")[0], name: "d2pg1" }] } });
    expect(() => checkPeers({ site: dc2, members: dc2Members }, [peer(clash)]))
      .toThrow('Invalid organization/hastack/dc1 output site.postgres.members[0].name: got "d2pg1"; expected a member name not used by this site (dc2)');
  });

  it("fails if remoteSubnets does not cover a peer's subnet", () => {
    const narrow = resolveSiteSettings({ name: "dc2", peers: ["dc1"], primarySite: "dc1", epoch: 1, remoteSubnets: ["10.9.0.0/24"] })!;
    expect(() => checkPeers({ site: narrow, members: dc2Members }, [peer(contract())]))
      .toThrow('Invalid hastack:site.remoteSubnets: got ["10.9.0.0/24"]; expected a list that includes peer dc1\'s subnet 10.1.0.0/24 (pg_hba must admit it).');
  });

  it("fails if a peer's output is malformed, naming the stack and the field", () => {
    const bad = JSON.parse(JSON.stringify(contract()));
    bad.postgres.members[1].address = "nowhere";
    expect(() => parseContract("organization/hastack/dc1", bad))
      .toThrow('Invalid organization/hastack/dc1 output site.postgres.members[1].address: got "nowhere"; expected an IPv4 address.');
    expect(() => parseContract("organization/hastack/dc1", { ...contract(), version: 2 })).toThrow("Invalid organization/hastack/dc1 output site.version: got 2");
  });
});

describe("a standby site's stack under mocks (peer dc1 mocked as a StackReference)", () => {
  const PRIMARY_SECRETS = { replicationPassword: "repl/=\\'\"$1", superuserPassword: "su/=1", rewindPassword: "rw2", appPassword: "app/=3" };
  // the sites share one database: every stack sets the same four role passwords
  const DB_PASSWORDS = { postgresSuperuser: PRIMARY_SECRETS.superuserPassword, postgresReplication: PRIMARY_SECRETS.replicationPassword,
    postgresRewind: PRIMARY_SECRETS.rewindPassword, postgresApp: PRIMARY_SECRETS.appPassword };
  const cfg = (site: Record<string, unknown>, net: string, prefix: string, passwords: Record<string, string> = DB_PASSWORDS) => Object.fromEntries(Object.entries({
    subnet: `${net}.0/24`, sshPrivateKey: KEY, passwords,
    ssh: { hostKeys: Object.fromEntries([11, 12, 13, 21, 22].map((i) => [`${net}.${i}`, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITEST"])) },
    postgres: { nodes: members(prefix, net).map(({ name, address }) => ({ name, address })) },
    proxy: { nodes: [{ name: `${prefix}px1`, address: `${net}.21` }, { name: `${prefix}px2`, address: `${net}.22` }], vip: `${net}.20` },
    site,
  }).map(([k, v]) => [`hastack:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));

  async function run(config: Record<string, string>, stack: string, peers: Record<string, Record<string, unknown>>) {
    resetRecorded();
    jest.resetModules();
    await installMocks(config, "hastack", stack, peers);
    const { program } = await import("../../stacks/program");
    const out: any = await program();
    const site = await resolve(out.site);
    await settle(200);
    return { out, site };
  }
  const stdinOf = (name: string) => unwrap(recorded.find((r) => r.name === name)!.inputs.stdin) as string;

  let standby: { out: any; site: any };
  beforeAll(async () => {
    standby = await run(cfg({ name: "dc2", peers: ["dc1"], primarySite: "dc1", epoch: 1, remoteSubnets: ["10.1.0.0/24"] }, "10.2.0", "d2"), "dc2",
      { "organization/hastack/dc1": { site: contract(), siteSecrets: PRIMARY_SECRETS } });
  }, 300000);

  it("bootstraps Patroni as a standby cluster of every primary member, with its own slot, and the shared passwords", () => {
    const yml: any = yaml.load(stdinOf("dc-db-d2pg1-patroni-config"));
    expect(yml.bootstrap.dcs.standby_cluster).toEqual({ host: "10.1.0.11,10.1.0.12,10.1.0.13", port: 5432, primary_slot_name: "standby_dc2", create_replica_methods: ["basebackup"] });
    expect(yml.bootstrap.dcs.slots).toBeUndefined();
    expect(yml.postgresql.authentication.replication.password).toBe(PRIMARY_SECRETS.replicationPassword);
    expect(yml.postgresql.authentication.superuser.password).toBe(PRIMARY_SECRETS.superuserPassword);
    expect(yml.postgresql.pg_hba).toContain("host replication replicator 10.1.0.0/24 scram-sha-256");
  });

  it("sends the standby block to a running cluster through PATCH /config", () => {
    const body = JSON.parse(stdinOf("dc-db-d2pg1-dynamic-config"));
    expect(body.standby_cluster).toEqual({ host: "10.1.0.11,10.1.0.12,10.1.0.13", port: 5432, primary_slot_name: "standby_dc2", create_replica_methods: ["basebackup"] });
    expect(body.slots).toBeNull();
  });

  it("demotes safely on every member before the PATCH (only the leading member acts), and promotes only after checking the other site", async () => {
    const cmd = (n: string) => unwrap(recorded.find((r) => r.name === n)!.inputs.create) as string;
    for (const m of ["d2pg1", "d2pg2", "d2pg3"]) expect(cmd(`dc-db-${m}-site-role`)).toBe("set -eu\n/usr/local/lib/hastack/site-role demote");
    expect(JSON.parse(stdinOf("dc-db-d2pg2-site-role"))).toEqual(JSON.parse(stdinOf("dc-db-d2pg1-dynamic-config")));
  });

  it("does not create the application role in a read-only standby", () => {
    expect(recorded.some((r) => r.name.endsWith("-app-database"))).toBe(false);
  });

  it("routes writes to the primary site's members as HAProxy backup servers checked on /primary", () => {
    const cfgText = recorded.find((r) => r.name === "dc-proxy-d2px1-haproxy-cfg")!.inputs.stdin as string;
    expect(cfgText).toContain("server d2pg1 10.2.0.11:5432 check port 8008\n");
    expect(cfgText).toContain("server d1pg1 10.1.0.11:5432 check port 8008 backup\n");
  });

  it("exports its contract as a standby with the agreed epoch, and its secrets as a secret", async () => {
    expect(standby.site).toMatchObject({ version: 1, site: "dc2", role: "standby", primarySite: "dc1", epoch: 1, subnet: "10.2.0.0/24" });
    expect(standby.site.postgres.members.map((m: any) => m.name)).toEqual(["d2pg1", "d2pg2", "d2pg3"]);
    expect(await resolve(standby.out.siteSecrets)).toEqual(PRIMARY_SECRETS);
    expect(standby.out.leaderName).toBeUndefined();
  });

  it("refuses to build anything when the peer names another primary at the same epoch", async () => {
    await expect(run(cfg({ name: "dc2", peers: ["dc1"], primarySite: "dc2", epoch: 1, remoteSubnets: ["10.1.0.0/24"] }, "10.2.0", "d2"), "dc2",
      { "organization/hastack/dc1": { site: contract(), siteSecrets: PRIMARY_SECRETS } }))
      .rejects.toThrow('Invalid hastack:site.primarySite: got "dc2"; expected "dc1", what peer dc1 says at the same epoch 1');
    expect(recorded.filter((r) => r.type.startsWith("command:"))).toEqual([]);
  }, 300000);

  it("keeps a permanent slot per standby site on the primary, which may deploy before the standby exists", async () => {
    const p = await run(cfg({ name: "dc1", peers: ["dc2"], primarySite: "dc1", epoch: 1, remoteSubnets: ["10.2.0.0/24"] }, "10.1.0", "d1"), "dc1",
      { "organization/hastack/dc2": {} });
    expect(p.site).toMatchObject({ site: "dc1", role: "primary", epoch: 1 });
    const body = JSON.parse(stdinOf("dc-db-d1pg1-dynamic-config"));
    expect(body.slots).toEqual({ standby_dc2: { type: "physical" } });
    expect(body.standby_cluster).toBeNull();
    expect(body.postgresql.parameters.max_slot_wal_keep_size).toBe("1GB");
    expect(recorded.some((r) => r.name.endsWith("-app-database"))).toBe(true);
  }, 300000);

  it("promotes (after the role change) only once no member of the deployed peer accepts writes, and falls back to the peer's members in HAProxy", async () => {
    const p = await run(cfg({ name: "dc1", peers: ["dc2"], primarySite: "dc1", epoch: 1, remoteSubnets: ["10.2.0.0/24"] }, "10.1.0", "d1"), "dc1",
      { "organization/hastack/dc2": { site: contract({ site: "dc2", role: "standby", subnet: "10.2.0.0/24", postgres: { ...contract().postgres, members: dc2Members } }), siteSecrets: PRIMARY_SECRETS } });
    expect(p.site.role).toBe("primary");
    expect(unwrap(recorded.find((r) => r.name === "dc-db-d1pg1-site-role")!.inputs.create))
      .toBe("set -eu\n/usr/local/lib/hastack/site-role promote 'http://10.2.0.11:8008' 'http://10.2.0.12:8008' 'http://10.2.0.13:8008'");
    const cfgText = recorded.find((r) => r.name === "dc-proxy-d1px1-haproxy-cfg")!.inputs.stdin as string;
    expect(cfgText).toContain("server d2pg1 10.2.0.11:5432 check port 8008 backup\n");
  }, 300000);

  it("fails if a database role password differs from a deployed peer's, without showing either", async () => {
    await expect(run(cfg({ name: "dc2", peers: ["dc1"], primarySite: "dc1", epoch: 1, remoteSubnets: ["10.1.0.0/24"] }, "10.2.0", "d2",
      { ...DB_PASSWORDS, postgresApp: "another-app-pw" }), "dc2", { "organization/hastack/dc1": { site: contract(), siteSecrets: PRIMARY_SECRETS } }))
      .rejects.toThrow("Invalid hastack:passwords.postgresApp: got \"[secret]\"; expected the same value as peer dc1 (its siteSecrets.appPassword differs)");
    expect(recorded.filter((r) => r.type.startsWith("command:"))).toEqual([]);
  }, 300000);

  it("fails if a multi-site stack leaves a database role password to be generated", async () => {
    const { postgresRewind: _unset, ...three } = DB_PASSWORDS;
    await expect(run(cfg({ name: "dc1", peers: ["dc2"], primarySite: "dc1", epoch: 1, remoteSubnets: ["10.2.0.0/24"] }, "10.1.0", "d1", three), "dc1",
      { "organization/hastack/dc2": {} })).rejects.toThrow('Invalid hastack:passwords.postgresRewind: got "(not set)"; expected a password set in this stack\'s config when hastack:site is set');
  }, 300000);
});
