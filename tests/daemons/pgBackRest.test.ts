// Real pgBackRest 2.45 and PostgreSQL 15 on loopback: the rendered configurations of a database host (127.0.0.2)
// and a repository host (127.0.0.3), each with its own `pgbackrest server` on mutual TLS, then stanza-create, check,
// a full backup, writes, and a point-in-time restore into a new data directory checked row by row.
// Needs root (runs PostgreSQL and pgbackrest as postgres).
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolvePgBackRestSettings, ResolvedPgBackRestSettings } from "../../components/pgBackRest/args";
import * as r from "../../components/pgBackRest/render";
import { freePort } from "../support/ports";

jest.setTimeout(300000);
const BIN = "/usr/lib/postgresql/15/bin";
const DB = { name: "bkdb1", address: "127.0.0.2" };
const REPO = { name: "bkrepo1", address: "127.0.0.3" };
// a passphrase with every character naive quoting breaks on: it lives only in a 0640 file
const CIPHER = `pa ss/='"$-_.!#;x`;

describe("PgBackRest daemons (needs root; real pgbackrest server on TLS and postgresql on loopback)", () => {
  let tmp: string;
  let s: ResolvedPgBackRestSettings;
  let backupScript: string;
  let pgPort: number;
  const servers: ChildProcess[] = [];
  const postgres: string[] = [];
  const env = (side: "db" | "repo") => ({ ...process.env, PGBACKREST_CONFIG: path.join(tmp, side, "pgbackrest.conf"),
    PGBACKREST_LOG_PATH: path.join(tmp, side, "log"), PGBACKREST_LOCK_PATH: path.join(tmp, side, "lock") });
  /** As postgres, with one side's config; returns the whole result so failures show pgBackRest's own words. */
  const as = (side: "db" | "repo", script: string) => spawnSync("runuser", ["-u", "postgres", "--", "bash", "-c", `set -eu\n${script}`],
    { encoding: "utf8", env: env(side) });
  const ok = (side: "db" | "repo", script: string) => {
    const res = as(side, script);
    if (res.status !== 0) throw new Error(`${script}\nexit ${res.status}\n${res.stdout}\n${res.stderr}`);
    return res.stdout;
  };
  const psql = (port: number, sql: string, dir = path.join(tmp, "sock")) => ok("db", `psql -X -At -h ${dir} -p ${port} -d postgres -c ${JSON.stringify(sql)}`).trim();
  /** The files of one side, with the TLS paths moved into the test's directory (the hosts use /etc/pgbackrest/tls). */
  const writeSide = (side: "db" | "repo", conf: string) => {
    const dir = path.join(tmp, side);
    fs.mkdirSync(path.join(dir, "tls"), { recursive: true });
    for (const f of ["log", "lock"]) fs.mkdirSync(path.join(dir, f), { recursive: true });
    fs.writeFileSync(path.join(dir, "pgbackrest.conf"), conf.split(r.TLS_DIR).join(path.join(dir, "tls")), { mode: 0o640 });
    for (const f of ["ca.crt", "host.crt", "host.key"]) fs.copyFileSync(path.join(tmp, "pki", `${side}-${f}`.replace(/^(db|repo)-ca/, "ca")), path.join(dir, "tls", f));
    spawnSync("chown", ["-R", "postgres:postgres", dir]);
    fs.chmodSync(path.join(dir, "tls", "host.key"), 0o600);
  };
  const startServer = (side: "db" | "repo") => {
    const p = spawn("runuser", ["-u", "postgres", "--", "pgbackrest", "server"], { env: env(side), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout!.on("data", (d) => (out += d)); p.stderr!.on("data", (d) => (out += d));
    p.on("exit", (c) => { if (c) console.log(`pgbackrest server (${side}) exited ${c}: ${out}`); });
    servers.push(p);
  };
  const startPg = (dataDir: string, port: number) => {
    ok("db", `${BIN}/pg_ctl -D ${dataDir} -l ${dataDir}.log -w -t 120 -o "-p ${port} -k ${path.join(tmp, "sock")} -c listen_addresses=''" start`);
    postgres.push(dataDir);
  };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-pgbackrest-"));
    fs.chmodSync(tmp, 0o755);
    spawnSync("chown", ["postgres:postgres", tmp]);
    const port = await freePort("127.0.0.3");
    pgPort = await freePort();
    // the repository in the test's directory (the resolver refuses /tmp for a real host)
    s = { ...resolvePgBackRestSettings({ repoHost: REPO, tlsPort: port, retentionFull: 2 },
      { clusterName: "bk-main", dbHosts: [DB], dbPorts: [{ name: "pgPort", port: pgPort }] })!, repoPath: path.join(tmp, "repo") };
    // the stack CA and two host certificates, both usable as server and client (pgBackRest's TLS is mutual); the
    // address is also a DNS name: pgBackRest 2.45 matches the host it dials against CN and DNS names only, never IP SANs
    const pki = path.join(tmp, "pki");
    fs.mkdirSync(pki);
    const openssl = (args: string) => { const res = spawnSync("bash", ["-c", `set -eu; cd ${pki}; ${args}`], { encoding: "utf8" }); if (res.status) throw new Error(res.stderr); };
    openssl("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca 2>/dev/null");
    for (const [side, h] of [["db", DB], ["repo", REPO]] as const) {
      fs.writeFileSync(path.join(pki, `${side}.ext`), `subjectAltName=IP:${h.address},DNS:${h.name},DNS:${h.address}\nextendedKeyUsage=serverAuth,clientAuth\n`);
      openssl(`openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ${side}-host.key -out ${side}.csr -subj /CN=${h.name} 2>/dev/null`);
      openssl(`openssl x509 -req -in ${side}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ${side}.ext -out ${side}-host.crt 2>/dev/null`);
    }
    const sock = path.join(tmp, "sock");
    fs.mkdirSync(sock); fs.mkdirSync(s.repoPath);
    spawnSync("chown", ["postgres:postgres", sock, s.repoPath]);
    writeSide("db", r.renderDbHostConfig({ settings: s, self: DB, dataDir: path.join(tmp, "pgdata"), pgPort, socketDir: sock }));
    writeSide("repo", r.renderRepoHostConfig({ settings: s, dbHosts: [DB], dataDir: path.join(tmp, "pgdata"), pgPort, socketDir: sock, cipherPass: CIPHER }));
    startServer("db"); startServer("repo");
    backupScript = path.join(tmp, "repo", "pgbackrest-backup");
    fs.writeFileSync(backupScript, r.renderBackupScript(), { mode: 0o755 });
    // PostgreSQL with the archive settings Patroni would write (the command exactly as rendered)
    const a = r.patroniArchive(s.stanza);
    ok("db", `${BIN}/initdb -D ${path.join(tmp, "pgdata")} -A trust -U postgres >/dev/null`);
    fs.appendFileSync(path.join(tmp, "pgdata", "postgresql.conf"), `archive_mode = on\narchive_command = '${a.archiveCommand}'\nwal_level = replica\n`);
    startPg(path.join(tmp, "pgdata"), pgPort);
  });

  afterAll(() => {
    for (const d of postgres) as("db", `${BIN}/pg_ctl -D ${d} -m immediate stop`);
    for (const p of servers) p.kill("SIGTERM");
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test("pgBackRest 2.45 accepts both rendered configurations (no unknown or misplaced option)", () => {
    for (const side of ["db", "repo"] as const) {
      const res = as(side, `pgbackrest --stanza=${s.stanza} info 2>&1 || true`);
      expect(res.stdout).not.toMatch(/invalid option|is not valid for|option .* not allowed/i);
    }
  });

  test("the passphrase sits only in the repository host's config, and the repository is encrypted", () => {
    expect(fs.readFileSync(path.join(tmp, "db", "pgbackrest.conf"), "utf8")).not.toContain("cipher");
    expect(fs.readFileSync(path.join(tmp, "repo", "pgbackrest.conf"), "utf8")).toContain(`repo1-cipher-pass=${CIPHER}\n`);
  });

  test("stanza-create from the repository host, once: the second run leaves the stanza as it is", () => {
    const first = as("repo", r.stanzaCreateScript(s.stanza).replace(/runuser -u postgres -- /g, ""));
    expect(first.stderr + `exit ${first.status}`).toMatch(/exit 0$/);
    const info = fs.readFileSync(path.join(s.repoPath, "backup", s.stanza, "backup.info"));
    const second = as("repo", r.stanzaCreateScript(s.stanza).replace(/runuser -u postgres -- /g, ""));
    expect(second.status).toBe(0);
    expect(second.stdout).toContain(`stanza ${s.stanza} exists`);
    expect(fs.readFileSync(path.join(s.repoPath, "backup", s.stanza, "backup.info"))).toEqual(info);
    // encrypted: the info file is not readable as text without the passphrase
    expect(info.toString("latin1")).not.toContain("[backup:current]");
  });

  test("check passes from both sides: archiving over TLS works end to end", () => {
    ok("repo", r.checkScript(s.stanza).replace(/runuser -u postgres -- /g, ""));
    ok("db", `pgbackrest --stanza=${s.stanza} check`);
  });

  test("a wrong passphrase on the repository host fails check, and the stanza step creates nothing", () => {
    const conf = path.join(tmp, "repo", "pgbackrest.conf");
    const good = fs.readFileSync(conf, "utf8");
    fs.writeFileSync(conf, good.replace(`repo1-cipher-pass=${CIPHER}`, "repo1-cipher-pass=wrong"));
    try {
      expect(as("repo", r.checkScript(s.stanza).replace(/runuser -u postgres -- /g, "")).status).not.toBe(0);
      const again = as("repo", r.stanzaCreateScript(s.stanza).replace(/runuser -u postgres -- /g, ""));
      expect(again.status).not.toBe(0);
      expect(again.stdout).not.toContain("exists");
      expect(again.stderr).toContain("refused: stanza");
    } finally { fs.writeFileSync(conf, good); }
  });

  let restoreTo = "";
  let before: string[] = [];
  let after: string[] = [];
  test("a full backup, then rows before and after a target time, all archived", () => {
    psql(pgPort, "CREATE TABLE drill (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");
    for (let i = 0; i < 50; i++) psql(pgPort, "INSERT INTO drill DEFAULT VALUES");
    // one database host, no replica: the wrapper falls back from backup-standby to the leader
    const first = as("repo", r.firstBackupScript(s.stanza).replace(/runuser -u postgres -- /g, "").split(r.BACKUP_SCRIPT_PATH).join(backupScript));
    expect(first.stderr + `exit ${first.status}`).toMatch(/backing up from the leader[^]*exit 0$/);
    expect(ok("repo", r.firstBackupScript(s.stanza).replace(/runuser -u postgres -- /g, ""))).toContain("a full backup exists");
    for (let i = 0; i < 50; i++) psql(pgPort, "INSERT INTO drill DEFAULT VALUES");
    // the target: a moment strictly between two acknowledged commits
    spawnSync("sleep", ["1.1"]);
    restoreTo = psql(pgPort, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    spawnSync("sleep", ["1.1"]);
    for (let i = 0; i < 50; i++) psql(pgPort, "INSERT INTO drill DEFAULT VALUES");
    before = psql(pgPort, `SELECT id FROM drill WHERE at < '${restoreTo}' ORDER BY id`).split("\n");
    after = psql(pgPort, `SELECT id FROM drill WHERE at >= '${restoreTo}' ORDER BY id`).split("\n");
    expect(before).toHaveLength(100);
    expect(after).toHaveLength(50);
    // check forces a WAL switch and waits until the segment is in the repository
    ok("db", `pgbackrest --stanza=${s.stanza} check`);
    const info = JSON.parse(ok("repo", `pgbackrest --stanza=${s.stanza} --output=json info`));
    expect(info[0].backup.map((b: { type: string }) => b.type)).toEqual(["full"]);
  });

  test("point-in-time restore into a new data directory: every row before the target, none after", async () => {
    const dir = path.join(tmp, "restored");
    const res = spawnSync("bash", ["-c", `set -eu\n${r.restoreScript(s.stanza, dir, { time: restoreTo })}`], { encoding: "utf8", env: env("db") });
    if (res.status !== 0) throw new Error(res.stdout + res.stderr);
    // the restored server runs beside the original on a port of its own, never over it
    const port = await freePort();
    startPg(dir, port);
    let rows = "";
    const end = Date.now() + 120000;
    while (Date.now() < end) {
      const q = as("db", `psql -X -At -h ${path.join(tmp, "sock")} -p ${port} -d postgres -c "SELECT pg_is_in_recovery()::text || ' ' || string_agg(id::text, ',' ORDER BY id) FROM drill"`);
      if (q.status === 0 && q.stdout.startsWith("false ")) { rows = q.stdout.trim().split(" ")[1]; break; }
      await new Promise((ok) => setTimeout(ok, 500));
    }
    expect(rows.split(",")).toEqual(before);
    for (const id of after) expect(rows.split(",")).not.toContain(id);
  });

  test("restore refuses a data directory that is not empty (the running cluster's)", () => {
    const res = spawnSync("bash", ["-c", `set -eu\n${r.restoreScript(s.stanza, path.join(tmp, "pgdata"), "latest")}`], { encoding: "utf8", env: env("db") });
    expect(res.status).not.toBe(0);
    expect(res.stderr).toContain("is not empty");
    expect(fs.existsSync(path.join(tmp, "pgdata", "PG_VERSION"))).toBe(true);
  });
});
