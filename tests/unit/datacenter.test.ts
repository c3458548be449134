// The whole program under fail-closed mocks: which code path creates RandomPassword/tls resources,
// that every resource sits under the Datacenter, and that secret outputs stay secret.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { installMocks, isSecret, recorded, resetRecorded, resolve, settle } from "./mocks";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const deb = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hastack-deb-")), "workspad.deb");
fs.writeFileSync(deb, "not really a deb");

function config(extra: Record<string, unknown> = {}): Record<string, string> {
  const c: Record<string, unknown> = {
    subnet: "192.168.1.0/24",
    sshPrivateKey: KEY,
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

const PASSWORDS = { postgresSuperuser: "a/=\\'\"$1", postgresReplication: "b/=\\'\"$2", postgresRewind: "c3", postgresApp: "d/=\\'\"$4",
  proxyKeepalived: "abcd1234", nginxKeepalived: "efgh5678", redis: "e/=\\'\"$5", redisKeepalived: "ijkl9012" };
const cert = { certPem: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n", keyPem: "-----BEGIN PRIVATE KEY-----\nY\n-----END PRIVATE KEY-----\n" };
const CERTS = { caCertPem: cert.certPem, servers: { wp1: cert, wp2: cert, ngx1: cert }, dataProtection: cert };

describe("datacenter program", () => {
  it("generates every password and certificate it is not given (random and tls resources)", async () => {
    await run(config());
    const types = recorded.map((r) => r.type);
    expect(types.filter((t) => t === "random:index/randomPassword:RandomPassword")).toHaveLength(6);
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
      "hastack:app:WorksPadNode", "hastack:edge:NginxBalancer", "hastack:cache:RedisSentinelGroup"]));
    const commands = recorded.filter((r) => r.type.startsWith("command:"));
    expect(commands.length).toBeGreaterThan(50);
    for (const c of commands) expect(c.name).toMatch(/^dc-(db|proxy|app-wp\d|edge|cache)-/);
  });

  it("keeps credentials secret in the stack outputs and out of every command text", async () => {
    const out: any = await run(config({ passwords: PASSWORDS, certificates: CERTS }));
    expect(await isSecret(out.dbConnectionString)).toBe(true);
    expect(await isSecret(out.replicationPassword)).toBe(true);
    expect(await isSecret(out.redisPassword)).toBe(true);
    expect(await resolve(out.dbVip)).toBe("192.168.1.200");
    for (const c of recorded.filter((r) => r.type === "command:remote:Command")) {
      const text = [c.inputs.create, c.inputs.update, c.inputs.delete].join("\n");
      for (const pw of Object.values(PASSWORDS)) expect(text).not.toContain(pw);
      expect(text).not.toContain("PRIVATE KEY-----\nY");
    }
  });
});
