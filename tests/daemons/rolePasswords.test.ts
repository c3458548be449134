// Rotation of the system roles' passwords (components/patroniCluster/rotation.ts + role-passwords.py) on a real
// PostgreSQL 15 on loopback, with pg_hba as PatroniCluster renders it for the socket (postgres by peer, another
// superuser by password) and a fake Patroni REST /primary. The rendered command runs as the deploy runs it (bash,
// stdin = the step's secret JSON). Needs root (runuser, PostgreSQL as user postgres).
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import * as rot from "../../components/patroniCluster/rotation";
import { freePort } from "../support/ports";

const PGBIN = "/usr/lib/postgresql/15/bin";
const OLD = { superuser: `old/=S'"$u`, replication: `old/=R'"$r`, rewind: `old/=W'"$w` };
const NEW = { superuser: `new/=S'"$u\\`, replication: `new/=R'"$r\\`, rewind: `new/=W'"$w\\` };
jest.setTimeout(180000);

const run = (cmd: string, args: string[], input?: string) => {
  const r = spawnSync(cmd, args, { input, encoding: "utf8", timeout: 60000 });
  return { code: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
};
const asPostgres = (args: string[], input?: string) => run("runuser", ["-u", "postgres", "--", ...args], input);

describe("system role passwords follow the config (needs root; real PostgreSQL 15 on 127.0.0.1)", () => {
  let dir: string;
  let sock: string;
  let pgData: string;
  let port: number;
  let server: http.Server;
  let primaryCode = 200;
  let rest: string;

  /** A TCP login (host ... scram-sha-256) as `user` with `password`: true when the server lets it in. */
  const loginOk = (user: string, password: string, replication = false) => {
    const pgpass = path.join(dir, "pgpass");
    const field = (v: string) => v.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
    fs.writeFileSync(pgpass, `*:*:*:${field(user)}:${field(password)}\n`, { mode: 0o600 });
    const r = spawnSync("psql", ["-X", "-tA", `host=127.0.0.1 port=${port} user=${user} dbname=postgres${replication ? " replication=database" : ""}`,
      "-c", replication ? "IDENTIFY_SYSTEM" : "select 1"], { env: { ...process.env, PGPASSFILE: pgpass, PGCONNECT_TIMEOUT: "5" }, encoding: "utf8" });
    return r.status === 0;
  };
  const config = (superuser: string, password: string) => {
    // the part of Patroni's config the script reads (the rest does not matter to it)
    const file = path.join(dir, "config.yml");
    fs.writeFileSync(file, `postgresql:\n  authentication:\n    superuser:\n      username: ${superuser}\n      password: ${JSON.stringify(password)}\n`, { mode: 0o600 });
    run("chown", ["postgres:postgres", file]);
    return file;
  };
  /** The rendered command as the step runs it; asynchronous, so this process's fake REST API can answer it. */
  const rotate = (superuser: string, configFile: string, pw: rot.SystemPasswords) => new Promise<{ code: number | null; out: string }>((ok) => {
    const settings = { superuser, replicationUser: "replicator", rewindUser: "rewind" } as Parameters<typeof rot.rolePasswordsStdin>[0];
    const child = spawn("bash", ["-c", rot.rolePasswordsCommand(rest, port, configFile, sock)]);
    let out = "";
    child.stdout.on("data", (d) => { out += d; });
    child.stderr.on("data", (d) => { out += d; });
    child.on("close", (code) => ok({ code, out }));
    child.stdin.end(rot.rolePasswordsStdin(settings, pw));
  });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-rolepw-"));
    fs.chmodSync(dir, 0o755);
    sock = path.join(dir, "sock");
    pgData = path.join(dir, "pgdata");
    fs.mkdirSync(sock, { mode: 0o755 });
    fs.mkdirSync(pgData, { mode: 0o700 });
    run("chown", ["postgres:postgres", sock, pgData]);
    port = await freePort();
    const init = asPostgres([`${PGBIN}/initdb`, "-D", pgData, "-U", "postgres", "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8"]);
    if (init.code !== 0) throw new Error(init.out);
    // the socket lines PatroniCluster renders: postgres by peer, another superuser by password
    fs.writeFileSync(path.join(pgData, "pg_hba.conf"), [
      "local all postgres peer", "local all dba scram-sha-256",
      "host all all 127.0.0.1/32 scram-sha-256", "host replication replicator 127.0.0.1/32 scram-sha-256", ""].join("\n"));
    const start = asPostgres([`${PGBIN}/pg_ctl`, "-D", pgData, "-w", "-l", path.join(pgData, "log"), "-o",
      `-c listen_addresses=127.0.0.1 -p ${port} -k ${sock} -c password_encryption=scram-sha-256 -c log_statement=all`, "start"]);
    if (start.code !== 0) throw new Error(start.out);
    // the roles as Patroni's bootstrap leaves them: passwords set in text, hashed by the server
    const setup = asPostgres(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", String(port), "-d", "postgres",
      "-v", `su=${OLD.superuser}`, "-v", `repl=${OLD.replication}`, "-v", `rw=${OLD.rewind}`],
    "ALTER ROLE postgres PASSWORD :'su';\nCREATE ROLE dba SUPERUSER LOGIN PASSWORD :'su';\n" +
      "CREATE ROLE replicator REPLICATION LOGIN PASSWORD :'repl';\nCREATE ROLE rewind LOGIN PASSWORD :'rw';\n");
    if (setup.code !== 0) throw new Error(setup.out);
    server = http.createServer((req, res) => { res.statusCode = req.url === "/primary" ? primaryCode : 404; res.end(); });
    const restPort = await freePort();
    await new Promise<void>((ok) => server.listen(restPort, "127.0.0.1", ok));
    rest = `http://127.0.0.1:${restPort}`;
  });

  afterAll(() => {
    server?.close();
    if (pgData) asPostgres([`${PGBIN}/pg_ctl`, "-D", pgData, "-m", "immediate", "stop"]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("on a member that is not the read-write leader it changes nothing", async () => {
    primaryCode = 503;
    const r = await rotate("postgres", config("postgres", OLD.superuser), NEW);
    primaryCode = 200;
    expect(r.code).toBe(0);
    expect(r.out).toContain("not the read-write leader (503)");
    expect(loginOk("replicator", OLD.replication, true)).toBe(true);
  });

  it("with the deployed passwords it changes no role (a deploy without a rotation)", async () => {
    const r = await rotate("postgres", config("postgres", OLD.superuser), OLD);
    expect(r.code).toBe(0);
    expect(r.out).toContain("passwords changed: none");
  });

  it("the postgres superuser (peer on the socket): new passwords take, old ones are refused, a re-run changes nothing", async () => {
    const r = await rotate("postgres", config("postgres", OLD.superuser), NEW);
    expect(r.code).toBe(0);
    expect(r.out).toContain("passwords changed: postgres replicator rewind");
    expect(loginOk("postgres", NEW.superuser)).toBe(true);
    expect(loginOk("postgres", OLD.superuser)).toBe(false);
    expect(loginOk("replicator", NEW.replication, true)).toBe(true);
    expect(loginOk("replicator", OLD.replication, true)).toBe(false);
    expect(loginOk("rewind", NEW.rewind)).toBe(true);
    expect(loginOk("rewind", OLD.rewind)).toBe(false);
    // the config now carries the new password (the deploy writes it next)
    expect((await rotate("postgres", config("postgres", NEW.superuser), NEW)).out).toContain("passwords changed: none");
  });

  it("another superuser logs in with the deployed password, or with the new one when an earlier run already changed it", async () => {
    // dba still has OLD.superuser; the config says so
    const first = await rotate("dba", config("dba", OLD.superuser), { ...NEW, superuser: `dba/${NEW.superuser}` });
    expect(first.code).toBe(0);
    expect(first.out).toContain("passwords changed: dba");
    expect(loginOk("dba", `dba/${NEW.superuser}`)).toBe(true);
    // a run that stopped before the config followed: the config still holds the old password, the role the new one
    const again = await rotate("dba", config("dba", OLD.superuser), { ...NEW, superuser: `dba/${NEW.superuser}` });
    expect(again.code).toBe(0);
    expect(again.out).toContain("passwords changed: none");
    // neither works: a clear error naming the user, no password in it
    const bad = await rotate("dba", config("dba", "wrong-1"), { ...NEW, superuser: "wrong-2" });
    expect(bad.code).not.toBe(0);
    expect(bad.out).toContain("cannot log in as dba");
    expect(bad.out).not.toContain("wrong-");
  });

  it("no password reaches the server log, even with log_statement = all", () => {
    const log = fs.readFileSync(path.join(pgData, "log"), "utf8");
    for (const pw of [...Object.values(NEW), `dba/${NEW.superuser}`]) expect(log).not.toContain(pw);
    expect(log).not.toMatch(/ALTER ROLE .*SCRAM-SHA-256/);
  });
});
