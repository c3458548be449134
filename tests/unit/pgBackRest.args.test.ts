import { spawnSync } from "child_process";
import { PgBackRestDefaults, isCalendarExpression, resolvePgBackRestSettings } from "../../components/pgBackRest/args";

const DB = [{ name: "pg1", address: "10.0.0.11" }, { name: "pg2", address: "10.0.0.12" }, { name: "pg3", address: "10.0.0.13" }];
const ctx = { clusterName: "main-db", dbHosts: DB, dbPorts: [{ name: "hastack:postgres.pgPort", port: 5432 }, { name: "hastack:postgres.restApiPort", port: 8008 }] };
const REPO = { name: "repo1", address: "10.0.1.60" };
const resolve = (extra: Record<string, unknown>) => resolvePgBackRestSettings({ repoHost: REPO, ...extra }, ctx);

describe("hastack:backup", () => {
  it("is off when absent or {}: no settings, nothing changes for stacks without it", () => {
    expect(resolvePgBackRestSettings(undefined, ctx)).toBeUndefined();
    expect(resolvePgBackRestSettings({}, ctx)).toBeUndefined();
  });

  it("applies every documented default", () => {
    expect(resolve({})).toEqual({ repoHost: REPO, stanza: "main-db", ...PgBackRestDefaults });
  });

  it("fails if the repository host is a database host (it would die with it)", () => {
    expect(() => resolvePgBackRestSettings({ repoHost: { name: "pg2", address: "10.0.0.12" } }, ctx))
      .toThrow(/Invalid hastack:backup.repoHost: got \{"name":"pg2","address":"10.0.0.12"\}; expected a host of its own, not one of the database hosts \(pg1 10.0.0.11/);
    expect(() => resolvePgBackRestSettings({ repoHost: { name: "other", address: "10.0.0.13" } }, ctx)).toThrow(/a host of its own/);
  });

  it("fails if the repository host is missing or malformed", () => {
    expect(() => resolvePgBackRestSettings({ stanza: "x" }, ctx)).toThrow(/Invalid hastack:backup.repoHost: got nothing; expected a \{name, address\} object/);
    expect(() => resolve({ repoHost: { name: "Repo", address: "10.0.1.60" } })).toThrow(/hastack:backup.repoHost.name: got "Repo"/);
    expect(() => resolve({ repoHost: { name: "repo", address: "10.0.1.600" } })).toThrow(/hastack:backup.repoHost.address: got "10.0.1.600"; expected an IPv4 address/);
  });

  it("fails on an unknown key, naming the known ones", () => {
    expect(() => resolve({ retention: 3 })).toThrow(/Invalid hastack:backup.retention: got 3; expected no such key; known keys are repoHost, repoPath, tlsPort/);
  });

  it("fails if a retention is out of 1..99 or not whole", () => {
    expect(() => resolve({ retentionFull: 0 })).toThrow("Invalid hastack:backup.retentionFull: got 0; expected a whole number of full backups from 1 to 99.");
    expect(() => resolve({ retentionFull: 100 })).toThrow(/retentionFull: got 100/);
    expect(() => resolve({ retentionDiff: 2.5 })).toThrow("Invalid hastack:backup.retentionDiff: got 2.5; expected a whole number of differential backups from 1 to 99.");
  });

  it("fails if a schedule is not a calendar expression systemd reads", () => {
    expect(() => resolve({ fullSchedule: "every sunday" })).toThrow(/Invalid hastack:backup.fullSchedule: got "every sunday"; expected a systemd OnCalendar expression/);
    expect(() => resolve({ diffSchedule: "*-*-* 25:00:00" })).toThrow(/hastack:backup.diffSchedule: got "\*-\*-\* 25:00:00"/);
    expect(() => resolve({ diffSchedule: "0 1 * * *" })).toThrow(/diffSchedule: got "0 1 \* \* \*"/);
  });

  it("fails if the TLS port is taken by PostgreSQL or Patroni on the database hosts, or is no port", () => {
    expect(() => resolve({ tlsPort: 5432 })).toThrow("Invalid hastack:backup.tlsPort: got 5432; expected a port the database hosts do not use already (hastack:postgres.pgPort 5432, hastack:postgres.restApiPort 8008).");
    expect(() => resolve({ tlsPort: 70000 })).toThrow(/tlsPort: got 70000; expected a TCP port/);
  });

  it("fails if the stanza is not a plain name (it reaches file names, unit names and the archive command)", () => {
    expect(() => resolve({ stanza: "main; rm -rf /" })).toThrow(/Invalid hastack:backup.stanza: got "main; rm -rf \/"/);
  });

  it("fails if the repository path is relative, quoted, a system directory or another daemon's", () => {
    expect(() => resolve({ repoPath: "backups" })).toThrow(/repoPath: got "backups"; expected an absolute path/);
    expect(() => resolve({ repoPath: "/srv/it's" })).toThrow(/repoPath/);
    expect(() => resolve({ repoPath: "/var/lib" })).toThrow(/repoPath: got "\/var\/lib"; expected a directory of its own/);
    expect(() => resolve({ repoPath: "/var/lib/postgresql/repo" })).toThrow(/a directory of its own/);
    expect(() => resolve({ repoPath: "/tmp/repo" })).toThrow(/a directory of its own/);
    expect(resolve({ repoPath: "/srv/pgbackrest/" })!.repoPath).toBe("/srv/pgbackrest");
  });

  it("fails if backupStandby or archiveTimeoutSeconds has the wrong type or range", () => {
    expect(() => resolve({ backupStandby: "yes" })).toThrow('Invalid hastack:backup.backupStandby: got "yes"; expected true or false.');
    expect(() => resolve({ archiveTimeoutSeconds: 1 })).toThrow(/archiveTimeoutSeconds: got 1; expected a whole number of seconds from 5 to 3600/);
  });
});

// every expression the validator accepts, systemd's own parser accepts too (and the rejected ones it rejects)
const ACCEPTED = ["daily", "weekly", "hourly", "Sun *-*-* 01:00:00", "Mon..Sat *-*-* 01:00", "Mon,Wed,Fri 02:30", "*-*-* 00/6:00:00", "*-*-01 03:00:00", "Sat 23:59:59"];
const REFUSED = ["every sunday", "*-*-* 25:00:00", "0 1 * * *", "Sun 01:60", "", "sunday 01:00"];
describe("schedule check against systemd-analyze calendar", () => {
  it.each(ACCEPTED)("accepts %j, as systemd does", (e) => {
    expect(isCalendarExpression(e)).toBe(true);
    const res = spawnSync("systemd-analyze", ["calendar", e], { encoding: "utf8" });
    if (res.error) throw new Error(`systemd-analyze is needed for this test: ${res.error.message}`);
    expect(res.status).toBe(0);
  });
  it.each(REFUSED)("refuses %j", (e) => {
    expect(isCalendarExpression(e)).toBe(false);
  });
  it("refuses what systemd refuses among the refused ones it can parse at all", () => {
    for (const e of ["*-*-* 25:00:00", "Sun 01:60", "every sunday"]) {
      expect(spawnSync("systemd-analyze", ["calendar", e]).status).not.toBe(0);
    }
  });
});
