// `npm run restore`: its command line and its cross-check with the stack, before anything runs on a host.
import { spawnSync } from "child_process";
import { checkRestorePlan, normalizeRestoreTime, parseRestoreArgs, RestoreDefaults } from "../../ops/restore";
import * as r from "../../components/pgBackRest/render";

const NOW = new Date("2026-11-29T10:00:00Z");
const parse = (...argv: string[]) => parseRestoreArgs(argv, NOW);
const base = ["--stack", "prod", "--host", "pg2"];
const NODES = [{ name: "pg1", address: "10.0.0.11" }, { name: "pg2", address: "10.0.0.12" }, { name: "pg3", address: "10.0.0.13" }];
const PLAN = {
  nodes: NODES, clusterDataDir: "/var/lib/postgresql/15/hastack",
  ports: [{ name: "hastack:postgres.pgPort", port: 5432 }, { name: "hastack:postgres.restApiPort", port: 8008 }],
  backup: { stanza: "hastack", repoHost: { name: "repo1", address: "10.0.0.60" } },
};

describe("npm run restore: arguments", () => {
  it("takes an ISO time with Z and hands PostgreSQL the same instant as '+00'", () => {
    const a = parse(...base, "--to", "2026-11-29T09:40:12.345Z");
    expect(a.to).toEqual({ time: "2026-11-29 09:40:12.345+00" });
    expect(a).toMatchObject({ stack: "prod", host: "pg2", dataDir: RestoreDefaults.dataDir, port: RestoreDefaults.port, timeoutSeconds: RestoreDefaults.timeoutSeconds });
  });

  it("takes latest, an offset zone, a data directory, a port and a timeout", () => {
    const a = parse(...base, "--to", "latest", "--data-dir", "/srv/restore/", "--port", "5440", "--timeout", "600");
    expect(a).toMatchObject({ to: "latest", dataDir: "/srv/restore", port: 5440, timeoutSeconds: 600 });
    expect(parse(...base, "--to", "2026-11-29 12:40:12+03:00").to).toEqual({ time: "2026-11-29 12:40:12+03:00" });
  });

  it("fails if --to is missing", () => {
    expect(() => parse(...base)).toThrow(/Invalid --to: got nothing; expected a time with its zone/);
  });

  it("fails if --to has no zone (ambiguous) or is not a time at all", () => {
    expect(() => parse(...base, "--to", "2026-11-29 09:40:12")).toThrow(/Invalid --to: got "2026-11-29 09:40:12"; expected a time with its zone/);
    expect(() => parse(...base, "--to", "yesterday")).toThrow(/Invalid --to: got "yesterday"/);
  });

  it("fails if --to names a day that does not exist", () => {
    expect(() => parse(...base, "--to", "2026-02-30T01:00:00Z")).toThrow(/Invalid --to: got "2026-02-30T01:00:00Z"/);
    expect(() => parse(...base, "--to", "2026-11-29T24:00:00Z")).toThrow(/Invalid --to/);
  });

  it("fails if --to is in the future (nothing can have been archived there)", () => {
    expect(() => parse(...base, "--to", "2026-11-29T10:00:01Z")).toThrow(/Invalid --to: got "2026-11-29T10:00:01Z"; expected a time that has passed \(it is 2026-11-29T10:00:00.000Z here\); for everything archived so far say latest/);
    // the zone counts: 12:30+03 is 09:30 UTC, past
    expect(parse(...base, "--to", "2026-11-29 12:30:00+03").to).toEqual({ time: "2026-11-29 12:30:00+03" });
  });

  it("fails if --stack or --host is missing", () => {
    expect(() => parse("--host", "pg2", "--to", "latest")).toThrow(/Invalid --stack: got nothing/);
    expect(() => parse("--stack", "prod", "--to", "latest")).toThrow(/Invalid --host: got nothing; expected the name of a database host/);
  });

  it("fails on an unknown argument, a repeated one, or one without its value", () => {
    expect(() => parse(...base, "--to", "latest", "--force")).toThrow(/Invalid argument: got "--force"; expected one of --stack, --to/);
    expect(() => parse(...base, "--to", "latest", "--to", "latest")).toThrow(/Invalid --to: got "latest"; expected the argument once/);
    expect(() => parse(...base, "--to")).toThrow(/Invalid --to: got nothing; expected a value after --to/);
    expect(() => parse(...base, "--port", "--to", "latest")).toThrow(/Invalid --port: got "--to"; expected a value after --port/);
  });

  it("fails if --data-dir is relative, the root, or climbs with ..", () => {
    for (const d of ["restore", "/", "/var/lib/postgresql/15/../../../etc", "/srv/re store"]) {
      expect(() => parse(...base, "--to", "latest", "--data-dir", d)).toThrow(/Invalid --data-dir/);
    }
  });

  it("fails if --port is not a port above 1023, or --timeout not whole seconds from 10", () => {
    for (const p of ["0", "80", "65536", "54x"]) expect(() => parse(...base, "--to", "latest", "--port", p)).toThrow(/Invalid --port/);
    for (const t of ["5", "1.5", "x"]) expect(() => parse(...base, "--to", "latest", "--timeout", t)).toThrow(/Invalid --timeout/);
  });

  it("normalizes only real times", () => {
    expect(normalizeRestoreTime("2026-11-29T09:40:12Z")).toBe("2026-11-29 09:40:12+00");
    expect(normalizeRestoreTime("2026-13-01T00:00:00Z")).toBeUndefined();
  });
});

describe("npm run restore: cross-check with the stack", () => {
  const args = parse(...base, "--to", "latest");

  it("restores on the named database host with the stack's stanza", () => {
    expect(checkRestorePlan(args, PLAN)).toEqual({ host: NODES[1], stanza: "hastack", repoHost: PLAN.backup.repoHost });
  });

  it("fails if the stack has no hastack:backup", () => {
    expect(() => checkRestorePlan(args, { ...PLAN, backup: undefined })).toThrow(/Invalid hastack:backup: got nothing; expected a repository configured in stack prod/);
  });

  it("fails if --host is not a database host of the stack", () => {
    expect(() => checkRestorePlan({ ...args, host: "px1" }, PLAN)).toThrow(/Invalid --host: got "px1"; expected a database host of stack prod \(pg1, pg2, pg3\)/);
  });

  it("fails if --data-dir is the cluster's data directory, inside it or above it", () => {
    for (const d of ["/var/lib/postgresql/15/hastack", "/var/lib/postgresql/15/hastack/restore", "/var/lib/postgresql"]) {
      expect(() => checkRestorePlan({ ...args, dataDir: d }, PLAN)).toThrow(/Invalid --data-dir: got .*; expected a directory apart from the cluster's data directory/);
    }
  });

  it("fails if --port is one the cluster uses", () => {
    expect(() => checkRestorePlan({ ...args, port: 5432 }, PLAN)).toThrow(/Invalid --port: got 5432; expected a port the cluster does not use \(hastack:postgres.pgPort is 5432\)/);
  });
});

describe("restore host scripts", () => {
  const sh = (script: string) => spawnSync("bash", ["-n", "-c", script], { encoding: "utf8" });

  it("start the restored server on its own port and socket, archiving off, its own pg_hba, and wait for read-write", () => {
    const s = r.startRestoredScript({ dataDir: "/var/lib/postgresql/15/restore", port: 5433, socketDir: "/var/run/postgresql", timeoutSeconds: 60 });
    expect(sh(s).status).toBe(0);
    expect(s).toMatchSnapshot();
    for (const o of ["port=5433", "listen_addresses=", "archive_mode=off", "hba_file=$d/pg_hba.conf", "primary_conninfo="]) expect(s).toContain(`-c "${o}"`);
    expect(s).toContain("--unit=\"$unit\"");
  });

  it("pre-flight refuses a busy port and a host without the stack's pgBackRest config", () => {
    const s = r.restorePreflightScript(5433);
    expect(sh(s).status).toBe(0);
    expect(s).toContain("sport = :5433");
    expect(s).toContain(r.CONFIG_PATH);
    expect(r.restoredUnitName(5433)).toBe("hastack-restore-5433");
  });
});
