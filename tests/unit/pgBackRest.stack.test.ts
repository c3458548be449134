// hastack:backup through the whole program under fail-closed mocks: off by default (nothing of it, Patroni's
// settings as before), on with a repository host (archiving through Patroni, the component, firewall, certificates).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { byName, installMocks, recorded, resetRecorded, settle } from "./mocks";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const deb = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hastack-deb-")), "workspad.deb");
fs.writeFileSync(deb, "not really a deb");
const REPO = { name: "bkrepo1", address: "192.168.1.160" };

function config(extra: Record<string, unknown> = {}): Record<string, string> {
  const c: Record<string, unknown> = {
    subnet: "192.168.1.0/24", sshPrivateKey: KEY, ssh: { trustOnFirstUse: true },
    postgres: { nodes: [{ name: "pg1", address: "192.168.1.130" }, { name: "pg2", address: "192.168.1.131" }, { name: "pg3", address: "192.168.1.132" }] },
    proxy: { nodes: [{ name: "px1", address: "192.168.1.140" }, { name: "px2", address: "192.168.1.141" }], vip: "192.168.1.200" },
    workspad: { nodes: [{ name: "wp1", address: "192.168.1.122" }], packagePath: deb },
    nginx: { nodes: [{ name: "ngx1", address: "192.168.1.127" }] },
    ...extra,
  };
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [`hastack:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));
}

async function run(cfg: Record<string, string>) {
  resetRecorded();
  jest.resetModules();
  await installMocks(cfg);
  const { program } = await import("../../stacks/program");
  await program();
  await settle(300);
}

const dynamicBody = () => JSON.stringify(byName("dc-db-pg1-dynamic-config").inputs.stdin);

describe("hastack:backup in the stack", () => {
  it("changes nothing when absent: no pgBackRest resource, no archive setting, no cipher password", async () => {
    await run(config());
    expect(recorded.filter((r) => /pgbackrest|backup/i.test(r.name) || r.type === "hastack:backup:PgBackRest")).toEqual([]);
    expect(dynamicBody()).not.toContain("archive");
    expect(byName("dc-db-pg1-rolling-restart").inputs.triggers[0]).not.toContain("archive_mode");
  });

  it("with a repository host: archiving through Patroni's dynamic config, a rolling restart for archive_mode, the component and its firewall", async () => {
    await run(config({ backup: { repoHost: REPO } }));
    expect(recorded.filter((r) => r.type === "hastack:backup:PgBackRest").map((r) => r.name)).toEqual(["dc-backup"]);
    expect(dynamicBody()).toContain('archive_mode\\":\\"on');
    expect(dynamicBody()).toContain("pgbackrest --stanza=hastack archive-push %p");
    expect(byName("dc-db-pg1-rolling-restart").inputs.triggers[0]).toContain("archive_mode=on");
    // pgBackRest's TLS port: on the db hosts only from the repository host, on the repository host only from the members
    expect(JSON.stringify(byName("dc-backup-bkrepo1-firewall-rules").inputs.stdin)).toContain("tcp dport { 8432 }");
    expect(JSON.stringify(byName("dc-db-pg1-firewall-rules").inputs.stdin)).toContain("192.168.1.160");
    // its own certificates, server and client at once
    const cert = byName("dc-bkrepo1-pgbackrest-tls").inputs;
    expect(cert.allowedUses).toEqual(expect.arrayContaining(["server_auth", "client_auth"]));
    expect(byName("dc-bkrepo1-pgbackrest-tls-csr").inputs.dnsNames).toEqual(["bkrepo1", "192.168.1.160"]);
    expect(byName("dc-pgbackrestCipher")).toBeDefined();
  });

  it("fails at preview if the repository host is also another section's host under another name", async () => {
    await expect(run(config({ backup: { repoHost: { name: "other", address: "192.168.1.140" } } }))).rejects.toThrow(/Invalid hastack:proxy.nodes\[0\].address: got "192.168.1.140"; expected an address not already used by host "other" \(hastack:backup/);
  });

  it("fails at preview if the superuser is not postgres (pgBackRest logs in by peer authentication)", async () => {
    const pg = { nodes: [{ name: "pg1", address: "192.168.1.130" }, { name: "pg2", address: "192.168.1.131" }, { name: "pg3", address: "192.168.1.132" }], superuser: "dba" };
    await expect(run(config({ postgres: pg, backup: { repoHost: REPO } }))).rejects.toThrow('Invalid hastack:postgres.superuser: got "dba"; expected "postgres" when hastack:backup is set');
  });
});
