// Bad-inputs tally (issue 7 §4): feeds a list of bad stack configs through the real config reader and
// resolver (readStackConfig + resolveDatacenter, what `pulumi preview` runs before any resource) and
// counts which fail with a clear error naming the key, which fail otherwise, and which are accepted.
//   npx ts-node --transpile-only bench/bad-inputs.ts   → bench/bad-inputs.json, bench/bad-inputs.md
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError } from "../components/common/validate";
import { readStackConfig } from "../stacks/config";
import { resolveDatacenter } from "../stacks/datacenter";
import { certFixtures } from "../tests/unit/certFixtures";

type Config = Record<string, any>;
interface Case { readonly name: string; readonly key: string; readonly patch: (c: Config) => void }

const deb = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hastack-bad-")), "workspad.deb");
fs.writeFileSync(deb, "not really a deb");
const fx = certFixtures();

/** The reference datacenter (Pulumi.prod.yaml) with both optional VIPs on, every secret supplied. */
function baseConfig(): Config {
  return {
    subnet: "192.168.1.0/24",
    sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    ssh: { user: "root", port: 22, trustOnFirstUse: true },
    postgres: { nodes: [130, 131, 132].map((n, i) => ({ name: `pg${i + 1}`, address: `192.168.1.${n}` })), failoverProfile: "fast" },
    proxy: { nodes: [{ name: "px1", address: "192.168.1.140" }, { name: "px2", address: "192.168.1.141" }], vip: "192.168.1.200" },
    workspad: { nodes: [122, 123, 124].map((n, i) => ({ name: `wp${i + 1}`, address: `192.168.1.${n}` })), packagePath: deb },
    nginx: { nodes: [{ name: "ngx1", address: "192.168.1.127" }, { name: "ngx2", address: "192.168.1.128" }], vip: "192.168.1.201" },
    redis: { enabled: true, nodes: [151, 152, 153].map((n, i) => ({ name: `rd${i + 1}`, address: `192.168.1.${n}` })), vip: "192.168.1.202" },
    passwords: { postgresApp: `jhYg/=\\F'"$`, redis: `jhYg/=\\F'"$`, proxyKeepalived: "abcd1234" },
    certificates: {
      caCertPem: fx.caCertPem, caKeyPem: fx.caKeyPem,
      servers: { wp1: { certPem: fx.serverCertPem, keyPem: fx.serverKeyPem } },
      dataProtection: { certPem: fx.leafCertPem, keyPem: fx.leafKeyPem },
    },
  };
}

const set = (section: string, values: Record<string, unknown>) => (c: Config) => { c[section] = { ...c[section], ...values }; };
const pw = (name: string, value: unknown) => (c: Config) => { c.passwords = { ...c.passwords, [name]: value }; };
const certs = (values: Record<string, unknown>) => (c: Config) => { c.certificates = { ...c.certificates, ...values }; };
const SIGNED = "[arch=amd64 signed-by=/usr/share/keyrings/microsoft-prod.asc]";
const msSource = (line: string) => set("workspad", { microsoftRepoSource: line });

const CASES: Case[] = [
  // subnet
  { name: "subnet 0.0.0.0/0", key: "hastack:subnet", patch: (c) => { c.subnet = "0.0.0.0/0"; } },
  { name: "subnet wider than /16", key: "hastack:subnet", patch: (c) => { c.subnet = "192.168.0.0/8"; } },
  { name: "subnet with host bits", key: "hastack:subnet", patch: (c) => { c.subnet = "192.168.1.130/24"; } },
  // VIPs and VRRP
  { name: "proxy VIP = network address", key: "hastack:proxy.vip", patch: set("proxy", { vip: "192.168.1.0" }) },
  { name: "proxy VIP = broadcast address", key: "hastack:proxy.vip", patch: set("proxy", { vip: "192.168.1.255" }) },
  { name: "nginx VIP = broadcast address", key: "hastack:nginx.vip", patch: set("nginx", { vip: "192.168.1.255" }) },
  { name: "redis VIP = network address", key: "hastack:redis.vip", patch: set("redis", { vip: "192.168.1.0" }) },
  { name: "nginx VIP = proxy VIP", key: "hastack:nginx.vip", patch: set("nginx", { vip: "192.168.1.200" }) },
  { name: "proxy VIP = a WorksPad node", key: "hastack:proxy.vip", patch: set("proxy", { vip: "192.168.1.122" }) },
  { name: "redis virtualRouterId = proxy's", key: "hastack:redis.virtualRouterId", patch: set("redis", { virtualRouterId: 51 }) },
  { name: "nginx virtualRouterId = proxy's on another interface name", key: "hastack:nginx.virtualRouterId", patch: set("nginx", { virtualRouterId: 51, interface: "ens18" }) },
  { name: "virtualRouterId 256", key: "hastack:proxy.virtualRouterId", patch: set("proxy", { virtualRouterId: 256 }) },
  { name: "interface alias eth0:1", key: "hastack:proxy.interface", patch: set("proxy", { interface: "eth0:1" }) },
  { name: "interface longer than IFNAMSIZ", key: "hastack:nginx.interface", patch: set("nginx", { interface: "enp0s31f6abcdefg" }) },
  { name: "interface with shell text", key: "hastack:redis.interface", patch: set("redis", { interface: "eth0;reboot" }) },
  // roles and databases
  { name: "appUser pg_app", key: "hastack:postgres.appUser", patch: set("postgres", { appUser: "pg_app" }) },
  { name: "appUser public", key: "hastack:postgres.appUser", patch: set("postgres", { appUser: "public" }) },
  { name: "superuser none", key: "hastack:postgres.superuser", patch: set("postgres", { superuser: "none" }) },
  { name: "replicationUser all (pg_hba keyword)", key: "hastack:postgres.replicationUser", patch: set("postgres", { replicationUser: "all" }) },
  { name: "rewindUser current_user", key: "hastack:postgres.rewindUser", patch: set("postgres", { rewindUser: "current_user" }) },
  { name: "database pgbouncer (admin console)", key: "hastack:postgres.database", patch: set("postgres", { database: "pgbouncer" }) },
  { name: "appUser = PgBouncer's check user", key: "hastack:postgres.appUser", patch: set("postgres", { appUser: "hastack_check" }) },
  { name: "database with a quote", key: "hastack:postgres.database", patch: set("postgres", { database: "wp'; DROP" }) },
  // directories
  { name: "dataDir in etcd's data dir", key: "hastack:postgres.dataDir", patch: set("postgres", { dataDir: "/var/lib/etcd/hastack" }) },
  { name: "dataDir /var/lib/redis", key: "hastack:postgres.dataDir", patch: set("postgres", { dataDir: "/var/lib/redis" }) },
  { name: "dataDir /etc", key: "hastack:postgres.dataDir", patch: set("postgres", { dataDir: "/etc" }) },
  { name: "dataDir /", key: "hastack:postgres.dataDir", patch: set("postgres", { dataDir: "/" }) },
  { name: "dataDir = packaged cluster", key: "hastack:postgres.dataDir", patch: set("postgres", { dataDir: "/var/lib/postgresql/15/main" }) },
  { name: "dataDir contains packaged cluster", key: "hastack:postgres.dataDir", patch: set("postgres", { dataDir: "/var/lib/postgresql/15" }) },
  { name: "dataDir under /tmp", key: "hastack:postgres.dataDir", patch: set("postgres", { dataDir: "/tmp/pg/data" }) },
  { name: "installDir /etc/nginx", key: "hastack:workspad.installDir", patch: set("workspad", { installDir: "/etc/nginx" }) },
  { name: "installDir /usr", key: "hastack:workspad.installDir", patch: set("workspad", { installDir: "/usr" }) },
  { name: "appSettingsPath in /etc/patroni", key: "hastack:workspad.appSettingsPath", patch: set("workspad", { appSettingsPath: "/etc/patroni/appsettings.json" }) },
  // systemd units
  { name: "services ssh", key: "hastack:workspad.services", patch: set("workspad", { services: ["ssh"] }) },
  { name: "services postgresql@15-main", key: "hastack:workspad.services", patch: set("workspad", { services: ["workspad", "postgresql@15-main"] }) },
  { name: "services systemd-networkd", key: "hastack:workspad.services", patch: set("workspad", { services: ["systemd-networkd"] }) },
  { name: "services keepalived.service", key: "hastack:workspad.services", patch: set("workspad", { services: ["keepalived.service"] }) },
  { name: "services multi-user.target", key: "hastack:workspad.services", patch: set("workspad", { services: ["multi-user.target"] }) },
  // apt sources
  { name: "apt source trusted=yes", key: "hastack:workspad.microsoftRepoSource", patch: msSource(`deb [trusted=yes] https://packages.microsoft.com/debian/12/prod bookworm main`) },
  { name: "apt source allow-insecure=yes", key: "hastack:workspad.microsoftRepoSource", patch: msSource(`deb [allow-insecure=yes signed-by=/usr/share/keyrings/microsoft-prod.asc] https://packages.microsoft.com/debian/12/prod bookworm main`) },
  { name: "apt source check-valid-until=no", key: "hastack:workspad.microsoftRepoSource", patch: msSource(`deb [check-valid-until=no signed-by=/usr/share/keyrings/microsoft-prod.asc] https://packages.microsoft.com/debian/12/prod bookworm main`) },
  { name: "apt source over http://", key: "hastack:workspad.microsoftRepoSource", patch: msSource(`deb ${SIGNED} http://packages.microsoft.com/debian/12/prod bookworm main`) },
  { name: "apt source without signed-by", key: "hastack:workspad.microsoftRepoSource", patch: msSource("deb https://packages.microsoft.com/debian/12/prod bookworm main") },
  { name: "apt source with a second line", key: "hastack:workspad.microsoftRepoSource", patch: msSource(`deb ${SIGNED} https://packages.microsoft.com/debian/12/prod bookworm main\ndeb [trusted=yes] http://evil/ x y`) },
  // passwords
  { name: "postgresApp longer than PgBouncer takes", key: "hastack:passwords.postgresApp", patch: pw("postgresApp", "p".repeat(2048)) },
  { name: "postgresApp empty", key: "hastack:passwords.postgresApp", patch: pw("postgresApp", "") },
  { name: "redis password empty", key: "hastack:passwords.redis", patch: pw("redis", "") },
  { name: "redisKeepalived empty", key: "hastack:passwords.redisKeepalived", patch: pw("redisKeepalived", "") },
  { name: "postgresSuperuser with a line break", key: "hastack:passwords.postgresSuperuser", patch: pw("postgresSuperuser", "line1\nline2") },
  { name: "postgresApp ending in a backslash", key: "hastack:passwords.postgresApp", patch: pw("postgresApp", "secret\\") },
  { name: "proxyKeepalived 9 characters", key: "hastack:passwords.proxyKeepalived", patch: pw("proxyKeepalived", "123456789") },
  { name: "password with NUL", key: "hastack:passwords.redis", patch: pw("redis", "a\0b") },
  { name: "unknown password name", key: "hastack:passwords.postgresapp", patch: pw("postgresapp", "x") },
  // certificates
  { name: "caCertPem not PEM", key: "hastack:certificates.caCertPem", patch: certs({ caCertPem: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n" }) },
  { name: "caCertPem not a CA", key: "hastack:certificates.caCertPem", patch: certs({ caCertPem: fx.leafCertPem, caKeyPem: fx.leafKeyPem }) },
  { name: "caKeyPem of another certificate", key: "hastack:certificates.caKeyPem", patch: certs({ caKeyPem: fx.otherKeyPem }) },
  { name: "server key does not match", key: "hastack:certificates.servers.wp1.keyPem", patch: certs({ servers: { wp1: { certPem: fx.serverCertPem, keyPem: fx.otherKeyPem } } }) },
  { name: "server cert not issued by the CA", key: "hastack:certificates.servers.ngx1.certPem", patch: certs({ servers: { ngx1: { certPem: fx.leafCertPem, keyPem: fx.leafKeyPem } } }) },
  { name: "server cert for an unknown host", key: "hastack:certificates.servers.wp9", patch: certs({ servers: { wp9: { certPem: fx.serverCertPem, keyPem: fx.serverKeyPem } } }) },
  { name: "extraTrustedCaPem holds a non-CA", key: "hastack:certificates.extraTrustedCaPem", patch: certs({ extraTrustedCaPem: fx.leafCertPem }) },
  { name: "extraTrustedCaPem holds text besides certificates", key: "hastack:certificates.extraTrustedCaPem", patch: certs({ extraTrustedCaPem: `${fx.caCertPem}junk` }) },
  { name: "dataProtection key does not match", key: "hastack:certificates.dataProtection.keyPem", patch: certs({ dataProtection: { certPem: fx.leafCertPem, keyPem: fx.otherKeyPem } }) },
  // pools and connections
  { name: "pools exceed max_connections", key: "hastack:proxy.defaultPoolSize", patch: set("proxy", { defaultPoolSize: 150 }) },
  { name: "max_connections below the pools", key: "hastack:proxy.defaultPoolSize", patch: set("postgres", { maxConnections: 30 }) },
  { name: "maxClientConn above pgbouncer's open files", key: "hastack:proxy.maxClientConn", patch: set("proxy", { maxClientConn: 5000 }) },
  // nginx
  { name: "clientMaxBodySize with a space", key: "hastack:nginx.clientMaxBodySize", patch: set("nginx", { clientMaxBodySize: "100 m" }) },
  { name: "clientMaxBodySize in t", key: "hastack:nginx.clientMaxBodySize", patch: set("nginx", { clientMaxBodySize: "1t" }) },
  { name: "serverName *", key: "hastack:nginx.serverName", patch: set("nginx", { serverName: "*" }) },
  { name: "serverName with a directive", key: "hastack:nginx.serverName", patch: set("nginx", { serverName: "a.org; return 200" }) },
  { name: "serverName wildcard in the middle", key: "hastack:nginx.serverName", patch: set("nginx", { serverName: "a*b.org" }) },
  { name: "listenPort 80 with httpRedirect", key: "hastack:nginx.listenPort", patch: set("nginx", { listenPort: 80 }) },
  // redis
  { name: "maxmemory 1.5gb", key: "hastack:redis.maxmemory", patch: set("redis", { maxmemory: "1.5gb" }) },
  { name: "maxmemory past 2^63 bytes", key: "hastack:redis.maxmemory", patch: set("redis", { maxmemory: "99999999999999gb" }) },
  { name: "maxmemory below 1 MB", key: "hastack:redis.maxmemory", patch: set("redis", { maxmemory: "100kb" }) },
  { name: "masterName with a space", key: "hastack:redis.masterName", patch: set("redis", { masterName: "my master" }) },
  { name: "redis on the proxy hosts (both own haproxy.cfg)", key: "hastack:redis.nodes[0]", patch: set("redis", { nodes: [140, 141, 152].map((n, i) => ({ name: ["px1", "px2", "rd2"][i], address: `192.168.1.${n}` })) }) },
  // other text that reaches files or shells
  { name: "healthPath with a space", key: "hastack:workspad.healthPath", patch: set("workspad", { healthPath: "/he alth" }) },
  { name: "prerequisite with shell text", key: "hastack:workspad.prerequisites", patch: set("workspad", { prerequisites: ["curl; reboot"] }) },
  { name: "clusterName with a !", key: "hastack:postgres.clusterName", patch: set("postgres", { clusterName: "Hastack!" }) },
  { name: "poolMode Session (case)", key: "hastack:proxy.poolMode", patch: set("proxy", { poolMode: "Session" }) },
  { name: "firewall adminSources 0.0.0.0/0", key: "hastack:firewall.adminSources[0]", patch: (c) => { c.firewall = { adminSources: ["0.0.0.0/0"] }; } },
  { name: "ssh.user with shell text", key: "hastack:ssh.user", patch: (c) => { c.ssh = { ...c.ssh, user: "root; reboot" }; } },
  { name: "proxy port = PostgreSQL's", key: "hastack:proxy.port", patch: set("proxy", { port: 5432 }) },
  // accepted on purpose, listed so the tally shows what still gets through
  { name: "pgVersion 16 with the default dataDir under /15/", key: "hastack:postgres.pgVersion", patch: set("postgres", { pgVersion: 16 }) },
  { name: "maxConnections 10000 (shared memory not checked)", key: "hastack:postgres.maxConnections", patch: set("postgres", { maxConnections: 10000 }) },
  { name: "redis quorum 1 of 3", key: "hastack:redis.quorum", patch: set("redis", { quorum: 1 }) },
];

type Outcome = "clear error naming the key" | "error, but not naming the key" | "accepted silently";

function run(c: Case): { name: string; key: string; outcome: Outcome; message?: string } {
  const cfg = baseConfig();
  c.patch(cfg);
  try {
    resolveDatacenter(readStackConfig((k) => cfg[k]));
  } catch (e) {
    const message = (e as Error).message;
    const named = e instanceof ConfigError && (e.field === c.key || e.field.startsWith(`${c.key}.`) || e.field.startsWith(`${c.key}[`));
    return { name: c.name, key: c.key, outcome: named ? "clear error naming the key" : "error, but not naming the key", message };
  }
  return { name: c.name, key: c.key, outcome: "accepted silently" };
}

function main(): void {
  // the base config itself must pass, or every case would fail for the wrong reason
  resolveDatacenter(readStackConfig((k) => baseConfig()[k]));
  const results = CASES.map(run);
  const count = (o: Outcome) => results.filter((r) => r.outcome === o).length;
  const tally = {
    tried: results.length,
    clearErrorNamingKey: count("clear error naming the key"),
    errorNotNamingKey: count("error, but not naming the key"),
    acceptedSilently: count("accepted silently"),
  };
  const command = "npx ts-node --transpile-only bench/bad-inputs.ts";
  const date = new Date().toISOString();
  const out = path.join(__dirname);
  fs.writeFileSync(path.join(out, "bad-inputs.json"), JSON.stringify({ command, date, tally, results }, null, 2) + "\n");
  const esc = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
  const md = [
    "# Bad inputs: what `pulumi preview` does with them",
    "",
    `Command: \`${command}\` — ${date}. Each row is the reference datacenter (Pulumi.prod.yaml, both VIPs on, secrets supplied)`,
    "with one bad value, fed through `readStackConfig` + `resolveDatacenter` (the checks preview runs before any resource).",
    "",
    "| tried | clear error naming the key | error, but not naming the key | accepted silently |",
    "| --- | --- | --- | --- |",
    `| ${tally.tried} | ${tally.clearErrorNamingKey} | ${tally.errorNotNamingKey} | ${tally.acceptedSilently} |`,
    "",
    "| case | key | outcome | message |",
    "| --- | --- | --- | --- |",
    ...results.map((r) => `| ${esc(r.name)} | \`${r.key}\` | ${r.outcome} | ${esc(r.message ?? "")} |`),
    "",
  ].join("\n");
  fs.writeFileSync(path.join(out, "bad-inputs.md"), md);
  process.stdout.write(`${JSON.stringify(tally)}\n`);
}

main();
