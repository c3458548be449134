// The whole program under fail-closed mocks: which code path creates RandomPassword/tls resources,
// that every resource sits under the Datacenter, and that secret outputs stay secret.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { installMocks, isSecret, recorded, resetRecorded, resolve, settle } from "./mocks";
import { certFixtures } from "./certFixtures";

// the whole program per test: under CI's three streams on 2 cores one test took past the 120 s default
jest.setTimeout(360000);

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const deb = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hastack-deb-")), "workspad.deb");
fs.writeFileSync(deb, "not really a deb");

function config(extra: Record<string, unknown> = {}): Record<string, string> {
  const c: Record<string, unknown> = {
    subnet: "192.168.1.0/24",
    sshPrivateKey: KEY,
    ssh: { trustOnFirstUse: true },
    postgres: { nodes: [{ name: "pg1", address: "192.168.1.130" }, { name: "pg2", address: "192.168.1.131" }, { name: "pg3", address: "192.168.1.132" }] },
    proxy: { nodes: [{ name: "px1", address: "192.168.1.140" }, { name: "px2", address: "192.168.1.141" }], vip: "192.168.1.200" },
    workspad: { nodes: [{ name: "wp1", address: "192.168.1.122" }, { name: "wp2", address: "192.168.1.123" }], packagePath: deb },
    nginx: { nodes: [{ name: "ngx1", address: "192.168.1.127" }] },
    redis: { enabled: true, nodes: [{ name: "rd1", address: "192.168.1.151" }, { name: "rd2", address: "192.168.1.152" }, { name: "rd3", address: "192.168.1.153" }] },
    ...extra,
  };
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [`hastack:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));
}

async function run(cfg: Record<string, string>) {
  resetRecorded();
  jest.resetModules();
  await installMocks(cfg);
  const { program } = await import("../../stacks/program");
  const outputs = await program();
  await settle(200);
  return outputs;
}

const PASSWORDS = { postgresSuperuser: "a/=\\'\"$1", postgresReplication: "b/=\\'\"$2", postgresRewind: "c3-rewind-Qz7w", postgresApp: "d/=\\'\"$4",
  proxyKeepalived: "abcd1234", nginxKeepalived: "efgh5678", redis: "e/=\\'\"$5", redisSentinel: "s/=\\'\"$9", redisKeepalived: "ijkl9012",
  patroniRest: "f/=\\'\"$6", etcdRoot: "g/=\\'\"$7", etcdPatroni: "h/=\\'\"$8" };
// real PEMs: supplied certificates are parsed and matched to their keys at preview
const fx = certFixtures();
const cert = { certPem: fx.serverCertPem, keyPem: fx.serverKeyPem };
const CERTS = { caCertPem: fx.caCertPem, servers: { wp1: cert, wp2: cert, ngx1: cert }, dataProtection: cert };

describe("datacenter program", () => {
  it("generates every password and certificate it is not given (random and tls resources)", async () => {
    await run(config());
    const types = recorded.map((r) => r.type);
    expect(types.filter((t) => t === "random:index/randomPassword:RandomPassword")).toHaveLength(10);
    expect(types).toContain("tls:index/selfSignedCert:SelfSignedCert");
    expect(types.filter((t) => t === "tls:index/locallySignedCert:LocallySignedCert")).toHaveLength(3);
    const kp = recorded.find((r) => r.name === "dc-proxyKeepalived")!;
    expect(kp.inputs).toMatchObject({ length: 8, special: false });
  });

  it("creates no random or tls resource when config supplies every secret", async () => {
    await run(config({ passwords: PASSWORDS, certificates: CERTS }));
    expect(recorded.filter((r) => /^(random|tls):/.test(r.type))).toEqual([]);
  });

  it("puts every component under the datacenter and every command under a component", async () => {
    await run(config({ passwords: PASSWORDS, certificates: CERTS }));
    const components = recorded.filter((r) => r.type.startsWith("hastack:"));
    expect(new Set(components.map((c) => c.type))).toEqual(new Set([
      "hastack:stack:Datacenter", "hastack:db:PatroniCluster", "hastack:proxy:PgBouncerVipPair",
      "hastack:app:WorksPadNode", "hastack:edge:NginxBalancer", "hastack:cache:RedisSentinelGroup", "hastack:net:HostFirewall",
      // the policy pack's marker (policy/facts.ts), beside the datacenter
      "hastack:policy:PolicyFacts"]));
    const commands = recorded.filter((r) => r.type.startsWith("command:"));
    expect(commands.length).toBeGreaterThan(50);
    for (const c of commands) expect(c.name).toMatch(/^dc-(db|proxy|app-wp\d|edge|cache)-/);
  });

  it("puts one firewall table per component on each of its hosts, and none when hastack:firewall.enabled is false", async () => {
    await run(config({ passwords: PASSWORDS, certificates: CERTS, firewall: { adminSources: ["192.168.1.10/32"] } }));
    const tables = recorded.filter((r) => r.type === "hastack:net:HostFirewall").map((r) => r.name).sort();
    expect(tables).toEqual([
      "dc-app-wp1-firewall", "dc-app-wp2-firewall", "dc-cache-rd1-firewall", "dc-cache-rd2-firewall", "dc-cache-rd3-firewall",
      "dc-db-pg1-firewall", "dc-db-pg2-firewall", "dc-db-pg3-firewall", "dc-proxy-px1-firewall", "dc-proxy-px2-firewall"]);
    const rules = recorded.find((r) => r.name === "dc-db-pg2-firewall-rules")!;
    expect(JSON.stringify(rules.inputs.connection)).toContain(`"host":"192.168.1.131"`);
    expect(rules.inputs.stdin).toContain("elements = { 192.168.1.10/32, 192.168.1.130, 192.168.1.131, 192.168.1.132, 192.168.1.140, 192.168.1.141 }");
    await run(config({ passwords: PASSWORDS, certificates: CERTS, firewall: { enabled: false } }));
    expect(recorded.filter((r) => r.type === "hastack:net:HostFirewall")).toEqual([]);
  });

  it("fails if a host has neither a pinned SSH host key nor trust on first use", async () => {
    const keys = { "192.168.1.130": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPinnedKeyOfPg1" };
    await expect(run(config({ ssh: { hostKeys: keys } }))).rejects.toThrow(
      /Invalid hastack:ssh\.hostKeys: got "no key for pg2 \(192\.168\.1\.131\), pg3 .*trustOnFirstUse: true/);
  });

  it("checks every host: a pinned key as given, every other host's key recorded on first use", async () => {
    const pinned = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPinnedKeyOfPg1";
    await run(config({ ssh: { trustOnFirstUse: true, hostKeys: { "192.168.1.130": pinned } }, passwords: PASSWORDS, certificates: CERTS }));
    const observed = recorded.filter((r) => r.type === "pulumi-nodejs:dynamic:Resource");
    // 13 hosts in the stack, one of them pinned
    expect(observed.map((r) => r.inputs.address).sort()).toEqual([
      "192.168.1.122", "192.168.1.123", "192.168.1.127", "192.168.1.131", "192.168.1.132",
      "192.168.1.140", "192.168.1.141", "192.168.1.151", "192.168.1.152", "192.168.1.153"]);
    // @pulumi/command marks the whole connection secret; the mocks see it wrapped
    const conn = (c: { inputs: Record<string, any> }) => c.inputs.connection?.value ?? c.inputs.connection;
    const commands = recorded.filter((r) => r.type === "command:remote:Command");
    const onPg1 = commands.filter((c) => conn(c).host === "192.168.1.130");
    expect(onPg1.length).toBeGreaterThan(3);
    for (const c of onPg1) expect(conn(c).hostKey).toBe(pinned);
    // no command ever runs without a host key to check
    for (const c of commands) expect(conn(c).hostKey).toMatch(/^ssh-ed25519 AAAA/);
    const onPg2 = commands.filter((c) => conn(c).host === "192.168.1.131");
    for (const c of onPg2) expect(conn(c).hostKey).toBe("ssh-ed25519 AAAAmock1921681131");
  });

  it("keeps credentials secret in the stack outputs and out of every command text", async () => {
    const out: any = await run(config({ passwords: PASSWORDS, certificates: CERTS }));
    expect(await isSecret(out.dbConnectionString)).toBe(true);
    // the role passwords another site needs travel only in the secret `siteSecrets` output
    expect(await isSecret(out.siteSecrets)).toBe(true);
    expect(out.replicationPassword).toBeUndefined();
    expect(await isSecret(out.site)).toBe(false);
    expect(await isSecret(out.redisPassword)).toBe(true);
    // applications log in as the Redis application user with the application password, never Sentinel's
    expect([await resolve(out.redisUser), await resolve(out.redisPassword)]).toEqual(["app", PASSWORDS.redis]);
    expect(await resolve(out.dbVip)).toBe("192.168.1.200");
    for (const c of recorded.filter((r) => r.type === "command:remote:Command")) {
      const text = [c.inputs.create, c.inputs.update, c.inputs.delete].join("\n");
      for (const pw of Object.values(PASSWORDS)) expect(text).not.toContain(pw);
      expect(text).not.toContain(cert.keyPem.split("\n")[1]);
    }
  });
});
