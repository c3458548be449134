import * as pulumi from "@pulumi/pulumi";
import { byName, installMocks, ofType, recorded, settle } from "./mocks";

const DB = [{ name: "pg1", address: "10.0.0.11" }, { name: "pg2", address: "10.0.0.12" }, { name: "pg3", address: "10.0.0.13" }];
const CIPHER = "a-passphrase-of-thirty-two-chars";
beforeAll(async () => {
  await installMocks();
  const { PgBackRest, resolvePgBackRestSettings } = await import("../../components/pgBackRest");
  const settings = resolvePgBackRestSettings({ repoHost: { name: "repo1", address: "10.0.1.60" } }, { clusterName: "main", dbHosts: DB, dbPorts: [] })!;
  const certs = Object.fromEntries([...DB, settings.repoHost].map((h) => [h.name, { certPem: `cert-${h.name}`, keyPem: pulumi.secret(`key-${h.name}`) }]));
  new PgBackRest("bk", {
    settings, ssh: { privateKey: pulumi.secret("KEY"), user: "root", port: 22 }, dbHosts: DB, dataDir: "/var/lib/postgresql/15/main",
    pgPort: 5432, socketDir: "/var/run/postgresql", cipherPass: pulumi.secret(CIPHER), caCertPem: "ca", certs, after: [], restApiPort: 8009,
  });
  await settle(300);
});

describe("PgBackRest wiring", () => {
  it("registers the component and per-host steps named after it", () => {
    expect(ofType("hastack:backup:PgBackRest").map((x) => x.name)).toEqual(["bk"]);
    for (const h of ["pg1", "pg2", "pg3", "repo1"]) {
      for (const step of ["packages", "tls-ca", "tls-cert", "tls-key", "config", "server", "server-restart"]) expect(byName(`bk-${h}-${step}`)).toBeDefined();
    }
    for (const step of ["repo-dir", "stanza", "check", "first-backup", "full-timer-enabled", "diff-timer-enabled"]) expect(byName(`bk-repo1-${step}`)).toBeDefined();
    expect(recorded.filter((x) => x.name.startsWith("bk-pg1-")).map((x) => x.name)).not.toContain("bk-pg1-stanza");
  });

  it("keeps the passphrase out of every command line and log: only the repository config's stdin has it, 0640, no logging", () => {
    const cfg = byName("bk-repo1-config").inputs;
    // a secret value (Pulumi's secret signature key wraps it), so state and logs mask it
    expect(cfg.stdin["4dabf18193072939515e22adb298388d"]).toBe("1b47061264138c4ac30d75fd1eb44270");
    expect(cfg.stdin.value).toContain(`repo1-cipher-pass=${CIPHER}`);
    expect(cfg.logging).toBe("none");
    expect(cfg.create).toContain("chmod 0640");
    expect(cfg.create).toContain("chown postgres:postgres");
    for (const x of recorded) {
      const { stdin, ...rest } = x.inputs;
      expect(JSON.stringify(rest)).not.toContain(CIPHER);
      if (x.name !== "bk-repo1-config") expect(JSON.stringify(stdin ?? "")).not.toContain(CIPHER);
    }
  });

  it("writes TLS keys 0600 for postgres without logging them", () => {
    const key = byName("bk-pg2-tls-key").inputs;
    expect(key.create).toContain("chmod 0600");
    expect(key.logging).toBe("none");
  });

  it("checks each timer's schedule with systemd's own parser before writing it", () => {
    expect(byName("bk-repo1-full-timer").inputs.create).toContain("systemd-analyze calendar 'Sun *-*-* 01:00:00'");
  });

  it("creates the stanza once (trigger: the stanza name only), then check, then the first full backup", () => {
    expect(byName("bk-repo1-stanza").inputs.triggers).toEqual(["main"]);
    expect(byName("bk-repo1-stanza").inputs.delete).toBeUndefined();
    expect(byName("bk-repo1-check").inputs.create).toContain("pgbackrest --stanza='main' --log-level-console=info check");
    expect(byName("bk-repo1-first-backup").inputs.create).toContain("pgbackrest-backup \"$st\" full");
  });

  it("releases archiving when the component goes (hastack:backup removed): its delete PATCHes archive_command to /bin/true on the first member", () => {
    const rel = byName("bk-archive-release").inputs;
    expect(rel.create).not.toContain("PATCH");
    expect(rel.delete).toContain("-XPATCH");
    expect(rel.delete).toContain("'http://10.0.0.11:8009/config'");
    expect(rel.delete).toContain('{"postgresql":{"parameters":{"archive_command":"/bin/true"}}}');
    expect(rel.delete).toContain("-K '/etc/patroni/hastack-rest.curl'");
  });
});
