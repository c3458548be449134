import { scramSecret } from "../../components/common/scram";
import { spawnSync } from "child_process";
import * as yaml from "js-yaml";
import { resolvePatroniClusterSettings } from "../../components/patroniCluster/args";
import * as r from "../../components/patroniCluster/render";

const SPECIAL = `jhYg/=\\F'"$`;
const nodes = [
  { name: "pg1", address: "10.213.7.11" },
  { name: "pg2", address: "10.213.7.12" },
  { name: "pg3", address: "10.213.7.13" },
];
const s = resolvePatroniClusterSettings({ nodes }, "10.213.7.0/24");
const fast = resolvePatroniClusterSettings({ nodes, failoverProfile: "fast", synchronousMode: true, maxConnections: 500 }, "10.213.7.0/24");
const rest = r.restUrl(nodes[0], s.restApiPort);

describe("PatroniCluster render", () => {
  it("renders /etc/default/etcd with every member in the initial cluster and v2 off", () => {
    const text = r.renderEtcdEnv({ member: nodes[1], nodes, clientPort: 2379, peerPort: 2380, dataDir: s.etcdDataDir, clusterName: s.clusterName });
    expect(text).toMatchSnapshot();
    expect(r.parseEnvFile(text)).toMatchObject({
      ETCD_NAME: "pg2",
      ETCD_LISTEN_CLIENT_URLS: "http://10.213.7.12:2379,http://127.0.0.1:2379",
      ETCD_INITIAL_CLUSTER: "pg1=http://10.213.7.11:2380,pg2=http://10.213.7.12:2380,pg3=http://10.213.7.13:2380",
      ETCD_INITIAL_CLUSTER_STATE: "new",
      ETCD_ENABLE_V2: "false",
      ETCD_DATA_DIR: "/var/lib/etcd/hastack",
    });
  });

  it("renders the Patroni config of a member", () => {
    expect(r.renderPatroniConfig(s, nodes[0], { superuser: "su-pw", replication: "repl-pw", rewind: "rw-pw", restApi: "rest-pw", etcd: "etcd-pw" })).toMatchSnapshot();
  });

  it("renders the Patroni config with the fast profile and synchronous mode", () => {
    expect(r.renderPatroniConfig(fast, nodes[2], { superuser: "su-pw", replication: "repl-pw", rewind: "rw-pw", restApi: "rest-pw", etcd: "etcd-pw" })).toMatchSnapshot();
  });

  it("keeps a password with / = \\ quotes and $ intact through YAML", () => {
    const text = r.renderPatroniConfig(s, nodes[0], { superuser: SPECIAL, replication: SPECIAL, rewind: SPECIAL, restApi: SPECIAL, etcd: "etcd-pw" });
    expect(text).toMatchSnapshot();
    const c = yaml.load(text) as any;
    expect(c.postgresql.authentication).toEqual({
      superuser: { username: "postgres", password: SPECIAL },
      replication: { username: "replicator", password: SPECIAL },
      rewind: { username: "rewind", password: SPECIAL },
    });
  });

  it("listens on the member address and loopback with one port at the end", () => {
    const c = yaml.load(r.renderPatroniConfig(s, nodes[0], { superuser: "a", replication: "b", rewind: "c", restApi: "d", etcd: "e" })) as any;
    expect(c.postgresql.listen).toBe("10.213.7.11,127.0.0.1:5432");
    expect(c.postgresql.connect_address).toBe("10.213.7.11:5432");
    expect(c.etcd3.hosts).toEqual(["10.213.7.11:2379", "10.213.7.12:2379", "10.213.7.13:2379"]);
    expect(c.bootstrap.pg_hba).toEqual(c.postgresql.pg_hba);
    expect(c.postgresql.pg_hba.filter((l: string) => l.startsWith("host"))).toEqual(expect.arrayContaining([expect.stringMatching(/ scram-sha-256$/)]));
    expect(c.postgresql.pg_hba.join("\n")).not.toMatch(/0\.0\.0\.0|md5|trust/);
  });

  it("admits the superuser only over the socket and loopback, replication and pg_rewind only from members, the app role only from proxies and operators", () => {
    const access = { proxies: ["10.213.7.21", "10.213.7.22"], remoteMembers: ["10.99.0.11"], admin: ["10.213.7.1/32", "192.168.5.0/28"] };
    const c = yaml.load(r.renderPatroniConfig(s, nodes[0], { superuser: "a", replication: "b", rewind: "c", restApi: "d", etcd: "e" }, undefined, [], access)) as any;
    const hba: string[] = c.postgresql.pg_hba;
    expect(hba).toMatchSnapshot();
    expect(c.bootstrap.pg_hba).toEqual(hba);
    const host = (user: string) => hba.filter((l) => l.startsWith("host") && l.split(/\s+/)[2] === user);
    expect(host("postgres")).toEqual(["host all postgres 127.0.0.1/32 scram-sha-256"]);
    expect(host("replicator").map((l) => l.split(/\s+/)[1] + " " + l.split(/\s+/)[3]))
      .toEqual(["replication 127.0.0.1/32", "replication 10.213.7.11/32", "replication 10.213.7.12/32", "replication 10.213.7.13/32", "replication 10.99.0.11/32"]);
    expect(host("rewind").map((l) => l.split(/\s+/)[1] + " " + l.split(/\s+/)[3]))
      .toEqual(["postgres 10.213.7.11/32", "postgres 10.213.7.12/32", "postgres 10.213.7.13/32", "postgres 10.99.0.11/32"]);
    expect(host("workspad").map((l) => l.split(/\s+/)[1] + " " + l.split(/\s+/)[3]))
      .toEqual(["workspad 10.213.7.21/32", "workspad 10.213.7.22/32", "workspad 10.213.7.1/32", "workspad 192.168.5.0/28"]);
    // every TCP line names one role and one source: no "all all", no subnet-wide entry
    expect(hba.join("\n")).not.toMatch(/ all all |10\.213\.7\.0\/24/);
    expect(hba.filter((l) => l.startsWith("host")).length).toBe(host("postgres").length + host("replicator").length + host("rewind").length + host("workspad").length);
  });

  it("gives a superuser other than postgres a password login over the socket only", () => {
    const other = resolvePatroniClusterSettings({ nodes, superuser: "dba" }, "10.213.7.0/24");
    const hba = r.pgHba(other);
    expect(hba).toContain("local all dba scram-sha-256");
    expect(hba.filter((l) => / dba /.test(l))).toEqual(["local all dba scram-sha-256", "host all dba 127.0.0.1/32 scram-sha-256"]);
  });

  it("protects Patroni's REST API with basic auth and connects to PostgreSQL through the socket", () => {
    const c = yaml.load(r.renderPatroniConfig(s, nodes[0], { superuser: "a", replication: "b", rewind: "c", restApi: SPECIAL, etcd: "etcd-pw" })) as any;
    expect(c.restapi.authentication).toEqual({ username: r.REST_USER, password: SPECIAL });
    expect(c.postgresql.use_unix_socket).toBe(true);
    expect(c.postgresql.parameters.unix_socket_directories).toBe(r.SOCKET_DIR);
  });

  it("writes the REST credentials as a curl config value with \\ and \" escaped", () => {
    expect(r.renderRestCurlConfig(SPECIAL).split("\n")[1]).toBe(`user = "patroni:jhYg/=\\\\F'\\"$"`);
    expect(() => r.renderRestCurlConfig("a\nb")).toThrow("one line");
  });

  it("renders the PATCH /config body from the same dynamic settings as bootstrap.dcs", () => {
    const body = r.renderDynamicConfigJson(fast);
    expect(body).toMatchSnapshot();
    const c = yaml.load(r.renderPatroniConfig(fast, nodes[0], { superuser: "a", replication: "b", rewind: "c", restApi: "d", etcd: "e" })) as any;
    expect(JSON.parse(body)).toEqual(c.bootstrap.dcs);
  });

  it("renders the app-database stdin with the special password quoted for .pgpass and psql", () => {
    const stdin = r.renderAppDbStdin("postgres", `a:b\\c${SPECIAL}`, "workspad", "workspad", SPECIAL);
    expect(stdin).toMatchSnapshot();
    expect(stdin.split("\n")[0]).toBe(`*:*:*:postgres:a\\:b\\\\cjhYg/=\\\\F'"$`);
    // the role gets the SCRAM secret PgBouncer's userlist holds, never the password itself
    expect(stdin).toContain(`\\set app_password '${scramSecret("workspad", SPECIAL)}'`);
    expect(stdin.split("\n").slice(1).join("\n")).not.toContain("jhYg");
  });

  it("renders the host scripts", () => {
    expect({
      validate: r.patroniValidateScript(),
      packagedOff: r.disablePackagedClusterScript(15),
      dataDirs: r.dataDirsScript(s),
      etcdStart: r.etcdStartScript(),
      etcdRestart: r.etcdRestartScript(nodes[0], 2379),
      etcdHealth: r.etcdHealthProbe(nodes, 2379),
      patroniReload: r.patroniReloadScript(),
      clusterHealthy: r.clusterHealthyProbe(rest, 3),
      leader: r.leaderQueryScript(rest),
      patch: r.patchConfigScript(rest),
      appDb: r.appDbScript(rest, 5432, "postgres"),
      etcdAuth: r.etcdAuthScript(nodes, 2379),
      patroniEtcdLogin: r.patroniEtcdCredentialsProbe(rest, 3),
      clusterNameGuard: r.clusterNameGuardScript("hastack", false),
      clusterNameGuardForced: r.clusterNameGuardScript("hastack", true),
    }).toMatchSnapshot();
  });

  it("gives Patroni an etcd login and a tag that shows it was loaded", () => {
    const c = yaml.load(r.renderPatroniConfig(s, nodes[0], { superuser: "a", replication: "b", rewind: "c", restApi: "d", etcd: SPECIAL })) as any;
    expect(c.etcd3).toEqual({ hosts: ["10.213.7.11:2379", "10.213.7.12:2379", "10.213.7.13:2379"], username: "patroni", password: SPECIAL });
    expect(c.tags[r.ETCD_AUTH_TAG]).toBe(r.ETCD_PATRONI_USER);
  });

  it("writes etcd's raft timings only when the stack sets them", () => {
    const base = { member: nodes[0], nodes, clientPort: 2379, peerPort: 2380, dataDir: s.etcdDataDir, clusterName: s.clusterName };
    expect(r.renderEtcdEnv(base)).not.toMatch(/HEARTBEAT|ELECTION/);
    const env = r.parseEnvFile(r.renderEtcdEnv({ ...base, heartbeatMs: 250, electionMs: 2500 }));
    expect([env.ETCD_HEARTBEAT_INTERVAL, env.ETCD_ELECTION_TIMEOUT]).toEqual(["250", "2500"]);
  });

  it("tags the members listed in noFailover nofailover and nosync, and no other member", () => {
    const pw = { superuser: "a", replication: "b", rewind: "c", restApi: "d", etcd: "e" };
    const tags = (settings: typeof s, i: number) => (yaml.load(r.renderPatroniConfig(settings, nodes[i], pw)) as any).tags;
    const listed = { ...s, noFailover: [nodes[2].name] };
    expect(tags(listed, 2)).toMatchObject({ nofailover: true, nosync: true });
    expect([tags(listed, 0), tags(listed, 1), tags(s, 2)].map((t) => [t.nofailover, t.nosync])).toEqual([[false, false], [false, false], [false, false]]);
  });

  it("writes etcd's root login as a file a shell sources back to the exact password", () => {
    const text = r.renderEtcdctlEnv(SPECIAL);
    const out = spawnSync("bash", ["-c", 'eval "$1"; printf "%s|%s|%s|%s" "$ETCDCTL_API" "${ETCDCTL_ENDPOINTS-unset}" "$ETCDCTL_USER" "$ETCDCTL_PASSWORD"', "-", text], { encoding: "utf8" });
    expect(out.stdout).toBe(`3|unset|root|${SPECIAL}`);
  });

  it("refuses etcd passwords etcdctl would cut at a space", () => {
    expect(r.renderEtcdAuthStdin(SPECIAL, "p")).toBe(`${SPECIAL}\np\n`);
    expect(() => r.renderEtcdAuthStdin("two words", "p")).toThrow("one word");
    expect(() => r.renderEtcdAuthStdin("r", "")).toThrow("one word");
  });

  it("parses the observed leader, and yields empty values when nothing was observed", () => {
    expect(r.parseLeader('{"name": "pg2", "host": "10.213.7.12", "port": 5432}\n')).toEqual({ name: "pg2", host: "10.213.7.12", port: 5432 });
    expect(r.parseLeader("")).toEqual({ name: "", host: "", port: 0 });
  });
});
