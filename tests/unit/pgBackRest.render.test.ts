import { resolvePgBackRestSettings } from "../../components/pgBackRest/args";
import * as r from "../../components/pgBackRest/render";

const DB = [{ name: "pg1", address: "10.0.0.11" }, { name: "pg2", address: "10.0.0.12" }, { name: "pg3", address: "10.0.0.13" }];
const s = resolvePgBackRestSettings({ repoHost: { name: "repo1", address: "10.0.1.60" } }, { clusterName: "main", dbHosts: DB, dbPorts: [] })!;
const base = { settings: s, dataDir: "/var/lib/postgresql/15/main", pgPort: 5432, socketDir: "/var/run/postgresql" };

describe("pgBackRest rendering", () => {
  it("renders a database host's config: the repository over TLS, its own server for the repository host only, no passphrase", () => {
    const text = r.renderDbHostConfig({ ...base, self: DB[1] });
    expect(text).toMatchSnapshot();
    expect(text).toContain("tls-server-auth=repo1=main\n");
    expect(text).not.toContain("cipher");
  });

  it("renders the repository host's config with every member, retention, backup-standby and the passphrase", () => {
    const text = r.renderRepoHostConfig({ ...base, dbHosts: DB, cipherPass: "p@ss word/='\"$" });
    expect(text).toMatchSnapshot();
    // one line per client: in `a,b=s` pgBackRest reads the comma as a list of stanzas of one client "a"
    expect(text).toContain("tls-server-auth=pg1=main\ntls-server-auth=pg2=main\ntls-server-auth=pg3=main\n");
    expect(text).not.toMatch(/tls-server-auth=[^=\n]*,/);
    expect(text).toContain("repo1-cipher-pass=p@ss word/='\"$\n");
    expect(text).toContain("pg3-host=10.0.0.13\n");
  });

  it("refuses a passphrase with a line break (pgBackRest's INI has no escape; it would become a second key)", () => {
    expect(() => r.renderRepoHostConfig({ ...base, dbHosts: DB, cipherPass: "a\nrepo1-path=/" })).toThrow(/must be one line/);
  });

  it("renders the timers with the schedule, Persistent, and the backup wrapper as postgres", () => {
    const u = r.renderBackupUnits("main", "diff", "Mon..Sat *-*-* 01:00:00");
    expect(u).toMatchSnapshot();
    expect(u.timer).toContain("OnCalendar=Mon..Sat *-*-* 01:00:00\n");
    expect(u.service).toContain(`ExecStart=${r.BACKUP_SCRIPT_PATH} main diff\n`);
  });

  it("ships WAL with the stanza's archive-push and fetches it with archive-get", () => {
    expect(r.patroniArchive("main")).toEqual({ archiveCommand: "pgbackrest --stanza=main archive-push %p", restoreCommand: "pgbackrest --stanza=main archive-get %f \"%p\"" });
  });

  it("creates the stanza only when info says it was never created, and refuses on any other status", () => {
    const sc = r.stanzaCreateScript("main");
    expect(sc).toMatchSnapshot();
    expect(sc.indexOf("0|2|6) echo")).toBeLessThan(sc.indexOf("stanza-create"));
    expect(sc).not.toMatch(/stanza-delete|stanza-upgrade|--force/);
  });

  it("restores only into an empty directory, to a time or to the end of the archive", () => {
    const t = r.restoreScript("main", "/var/lib/postgresql/15/restored", { time: "2026-11-29 04:10:00.123456+00" });
    expect(t).toMatchSnapshot();
    expect(t).toContain("'--target=2026-11-29 04:10:00.123456+00' '--target-action=promote'");
    expect(t).not.toMatch(/--delta|--force/);
    expect(r.restoreScript("main", "/d", "latest")).toContain("'--type=default'");
    expect(() => r.restoreScript("main", "/d", { time: "yesterday'; rm -rf /" })).toThrow(/is not YYYY-MM-DD/);
  });
});
