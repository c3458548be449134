// Runs the real daemons on the rendered files, on loopback, in a temp dir. Needs root (pgbouncer and
// PostgreSQL run as user postgres, HAProxy chroots). Missing binaries fail the suite instead of skipping it.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import {
  CHECK_USER, checkUserPassword, keepalivedValidateCommand, renderCheckPgpass, renderCheckScript, renderHaproxyCfg,
  renderKeepalivedConf, renderPgbouncerIni, renderUserlist,
} from "../../components/pgBouncerVipPair/render";
import { freePort } from "../support/ports";
import { scramSecret } from "../../components/common/scram";
import { VRRP_TIMING_DEFAULTS, VRRP_V2_TIMING } from "../../components/keepalived/timing";

const SPECIAL = `jhYg/=\\F'"$`;
const PGBIN = "/usr/lib/postgresql/15/bin";
const BINARIES = ["/usr/sbin/haproxy", "/usr/sbin/keepalived", "/usr/sbin/pgbouncer", "/usr/bin/psql", `${PGBIN}/initdb`, `${PGBIN}/postgres`, `${PGBIN}/pg_ctl`];

function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  const r = spawnSync(cmd, args, { input: opts.input, env: { ...process.env, ...opts.env }, encoding: "utf8", timeout: opts.timeoutMs ?? 60000 });
  return { code: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}`, stdout: r.stdout ?? "" };
}
const asPostgres = (args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) =>
  run("runuser", ["-u", "postgres", "--", ...args], opts);


// Waiting for daemons to come up is set-up, not a measurement: under load 30-50 on 2 cores HAProxy took
// longer than 30 s to mark the primary up (bench/fresh-check.md). Drill waits below keep their own bounds.
const SETUP_WAIT_MS = 120000;
jest.setTimeout(SETUP_WAIT_MS + 120000);

async function waitUntil(what: string, probe: () => boolean, timeoutMs = 30000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (probe()) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function write(file: string, content: string, mode: number, owner?: string) {
  fs.writeFileSync(file, content, { mode });
  fs.chmodSync(file, mode);
  if (owner) run("chown", [owner, file]);
}

/** A fake Patroni REST endpoint answering OPTIONS /primary with a settable status. */
function fakePatroni(host: string, port: number, status: { code: number }): Promise<http.Server> {
  const srv = http.createServer((req, res) => {
    res.statusCode = req.url === "/primary" ? status.code : 404;
    res.end();
  });
  return new Promise((r) => srv.listen(port, host, () => r(srv)));
}

describe("PgBouncerVipPair daemons (needs root: real haproxy, keepalived, pgbouncer, PostgreSQL 15 on loopback)", () => {
  let dir: string;
  const procs: ChildProcess[] = [];
  const servers: http.Server[] = [];
  let pgData = "";
  let sock = "";
  const ports = { pg: 0, haproxy: 0, pgbouncer: 0, restPrimary: 0, restReplica: 0 };
  const primaryStatus = { code: 200 };
  let checkScript = "";
  let pgpass = "";

  beforeAll(async () => {
    const missing = BINARIES.filter((b) => !fs.existsSync(b));
    if (missing.length) throw new Error(`daemon binaries missing: ${missing.join(", ")}`);
    if (process.getuid?.() !== 0) throw new Error("these tests need root");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-pgb-"));
    fs.chmodSync(dir, 0o755);
    for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
    ports.restReplica = await freePort("127.0.0.2");
  });

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.pid) p.kill("SIGTERM");
    for (const s of servers) await new Promise((r) => s.close(r));
    if (pgData) asPostgres([`${PGBIN}/pg_ctl`, "-D", pgData, "-m", "fast", "-w", "stop"]);
    await new Promise((r) => setTimeout(r, 500));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test("haproxy -c accepts the rendered haproxy.cfg", () => {
    const file = path.join(dir, "haproxy-check.cfg");
    write(file, renderHaproxyCfg({
      members: [{ name: "pg1", address: "10.213.7.11" }, { name: "pg2", address: "10.213.7.12" }], pgPort: 5432, restApiPort: 8008, haproxyPort: 5000,
    }), 0o644);
    const r = run("haproxy", ["-c", "-f", file]);
    expect(r.out).toMatch(/Configuration file is valid/);
    expect(r.code).toBe(0);
  });

  describe("keepalived", () => {
    const iface = fs.readdirSync("/sys/class/net").filter((i) => i !== "lo").sort()[0];
    const validate = (conf: string) => {
      const file = path.join(dir, "keepalived.conf");
      write(file, conf, 0o600);
      return run("sh", ["-euc", keepalivedValidateCommand()], { env: { NEW: file } });
    };
    const conf = (over: Record<string, unknown> = {}) => {
      const script = path.join(dir, "check-pgbouncer");
      write(script, renderCheckScript({ port: 6432 }), 0o755);
      return renderKeepalivedConf({
        routerId: "px1", interface: iface, virtualRouterId: 51, priority: 200, authPass: "Ab3dE6gH", vip: "10.213.7.50", vipPrefix: 24,
        self: "10.213.7.21", peers: ["10.213.7.22"], unicast: false, checkIntervalSeconds: 2, checkFall: 2, checkRise: 2,
        // script_user root: with "nobody", keepalived 2.2.7 -t SIGTERMs itself before reporting anything, so it would pass any config
        timing: VRRP_TIMING_DEFAULTS, checkScript: script, scriptUser: "root", ...over,
      });
    };
    test("keepalived -t accepts the multicast and the unicast config", () => {
      expect(iface).toBeTruthy();
      expect(validate(conf())).toEqual(expect.objectContaining({ code: 0 }));
      expect(validate(conf({ unicast: true }))).toEqual(expect.objectContaining({ code: 0 }));
    });
    test("keepalived -t accepts VRRPv3 at the shortest advert interval we allow", () => {
      expect(validate(conf({ timing: { vrrpVersion: 3, advertIntervalSeconds: 0.1 }, unicast: true }))).toEqual(expect.objectContaining({ code: 0 }));
    });
    test("keepalived -t accepts an auth_pass made of RandomPassword's default specials (VRRPv2)", () => {
      expect(validate(conf({ timing: VRRP_V2_TIMING, authPass: "a#b!{c}$" }))).toEqual(expect.objectContaining({ code: 0 }));
      expect(validate(conf({ timing: VRRP_V2_TIMING, authPass: "%&*()-_=" }))).toEqual(expect.objectContaining({ code: 0 }));
    });
    test("the validation rejects what keepalived -t complains about despite its exit code", () => {
      const bad = validate(conf({ interface: "nosuch0" }));
      expect(bad.code).toBe(1);
      expect(bad.out).toMatch(/nosuch0/);
      expect(validate(conf({ virtualRouterId: 300 })).code).toBe(1);
      expect(validate(conf({ timing: VRRP_V2_TIMING }).replace('auth_pass "Ab3dE6gH"', 'auth_pass "Ab3d'))).toEqual(expect.objectContaining({ code: 1 }));
      // why VRRPv3 renders no authentication block: keepalived 2.2 complains about one, and sub-second VRRPv2 is refused.
      expect(validate(conf().replace("    nopreempt\n", "    nopreempt\n    authentication {\n        auth_type PASS\n        auth_pass x\n    }\n")))
        .toEqual(expect.objectContaining({ code: 1, out: expect.stringMatching(/does not support authentication/) }));
      expect(validate(conf({ timing: { vrrpVersion: 2, advertIntervalSeconds: 0.3 } })))
        .toEqual(expect.objectContaining({ code: 1, out: expect.stringMatching(/must be an integer/) }));
    });
  });

  describe("PgBouncer → HAProxy → PostgreSQL with SCRAM and the special password", () => {
    beforeAll(async () => {
      // PostgreSQL 15, scram-sha-256 on TCP, the app role with the special password
      sock = path.join(dir, "sockets");
      fs.mkdirSync(sock, { mode: 0o755 });
      run("chown", ["postgres:postgres", sock]);
      pgData = path.join(dir, "pgdata");
      fs.mkdirSync(pgData, { mode: 0o700 });
      run("chown", ["postgres:postgres", pgData]);
      const init = asPostgres([`${PGBIN}/initdb`, "-D", pgData, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8"]);
      if (init.code !== 0) throw new Error(init.out);
      const start = asPostgres([`${PGBIN}/pg_ctl`, "-D", pgData, "-w", "-l", path.join(pgData, "log"), "-o",
        `-c listen_addresses=127.0.0.1 -p ${ports.pg} -k ${sock} -c password_encryption=scram-sha-256`, "start"]);
      if (start.code !== 0) throw new Error(start.out + fs.readFileSync(path.join(pgData, "log"), "utf8"));
      const sql = asPostgres(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", String(ports.pg), "-d", "postgres", "-v", `pw=${scramSecret("workspad", SPECIAL)}`], {
        // the secret PatroniCluster sets (renderAppDbStdin): PgBouncer's userlist holds the same one
        input: "CREATE ROLE workspad LOGIN PASSWORD :'pw';\nCREATE DATABASE workspad OWNER workspad;\n",
      });
      if (sql.code !== 0) throw new Error(sql.out);

      // two fake Patroni members: the primary's REST answers 200, the replica's 503
      servers.push(await fakePatroni("127.0.0.1", ports.restPrimary, primaryStatus));
      servers.push(await fakePatroni("127.0.0.2", ports.restReplica, { code: 503 }));
      fs.mkdirSync(path.join(dir, "chroot"), { mode: 0o755 });
      const hcfg = path.join(dir, "haproxy.cfg");
      write(hcfg, renderHaproxyCfg({
        members: [{ name: "pg1", address: "127.0.0.1" }, { name: "pg2", address: "127.0.0.2" }], pgPort: ports.pg,
        restApiPort: ports.restPrimary, haproxyPort: ports.haproxy, chrootDir: path.join(dir, "chroot"), statsSocket: path.join(dir, "haproxy.sock"),
      }).replace(`127.0.0.2:${ports.pg} check port ${ports.restPrimary}`, `127.0.0.2:${ports.pg} check port ${ports.restReplica}`), 0o644);
      const haproxy = spawn("haproxy", ["-db", "-f", hcfg], { stdio: "ignore" });
      procs.push(haproxy);

      const userlist = path.join(dir, "userlist.txt");
      write(userlist, renderUserlist([{ user: "workspad", password: SPECIAL }, { user: CHECK_USER, password: checkUserPassword(SPECIAL) }], "scram-sha-256"),
        0o600, "postgres:postgres");
      const ini = path.join(dir, "pgbouncer.ini");
      write(ini, renderPgbouncerIni({
        database: "workspad", haproxyPort: ports.haproxy, port: ports.pgbouncer, listenAddr: "127.0.0.1", authType: "scram-sha-256",
        poolMode: "session", defaultPoolSize: 5, maxClientConn: 50, authFile: userlist, unixSocketDir: sock,
      }), 0o640, "postgres:postgres");
      const pgb = spawn("runuser", ["-u", "postgres", "--", "pgbouncer", ini], { stdio: "ignore" });
      procs.push(pgb);

      pgpass = path.join(dir, "check.pgpass");
      write(pgpass, renderCheckPgpass(ports.pgbouncer, checkUserPassword(SPECIAL)), 0o600);
      checkScript = path.join(dir, "check-pgbouncer.sh");
      write(checkScript, renderCheckScript({ port: ports.pgbouncer, pgpassFile: pgpass }), 0o755);
      await waitUntil("pgbouncer to listen", () => run("sh", [checkScript]).code === 0, SETUP_WAIT_MS);
    });

    // PgBouncer queues a client while no server is reachable, so a probe gives up after 5 s
    const appLogin = (password: string) => run("psql", ["-X", "-A", "-t", "-w", "-d",
      `host=127.0.0.1 port=${ports.pgbouncer} dbname=workspad user=workspad connect_timeout=2 sslmode=disable`,
      "-c", "select current_user || ' ' || inet_server_port()"], { env: { PGPASSWORD: password, PGPASSFILE: "/dev/null" }, timeoutMs: 5000 });

    test("the app logs in through PgBouncer and HAProxy to the primary with the special password", async () => {
      await waitUntil("HAProxy to mark the primary up", () => appLogin(SPECIAL).code === 0, SETUP_WAIT_MS);
      const r = appLogin(SPECIAL);
      expect(r.stdout.trim()).toBe(`workspad ${ports.pg}`);
      const stored = asPostgres(["psql", "-X", "-A", "-t", "-h", sock, "-p", String(ports.pg), "-d", "postgres", "-c",
        "select rolpassword from pg_authid where rolname = 'workspad'"]);
      // PgBouncer holds no password, only this secret: it reached PostgreSQL with the keys the client proved
      expect(stored.stdout.trim()).toBe(scramSecret("workspad", SPECIAL));
      expect(fs.readFileSync(path.join(dir, "userlist.txt"), "utf8")).not.toContain("jhYg");
    });

    test("a wrong password is refused", () => {
      const r = appLogin("jhYg/=\\F'\"");
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(/password authentication failed|SASL authentication failed/);
    });

    test("the keepalived check script passes with its pgpass and fails with a wrong one", () => {
      expect(run("sh", [checkScript]).code).toBe(0);
      const wrong = path.join(dir, "wrong.pgpass");
      write(wrong, renderCheckPgpass(ports.pgbouncer, "0".repeat(32)), 0o600);
      const badScript = path.join(dir, "check-wrong.sh");
      write(badScript, renderCheckScript({ port: ports.pgbouncer, pgpassFile: wrong }), 0o755);
      expect(run("sh", [badScript]).code).not.toBe(0);
    });

    test("during a Patroni failover (no primary) the app is cut off but the check still passes", async () => {
      primaryStatus.code = 503;
      try {
        await waitUntil("HAProxy to mark the old primary down", () => appLogin(SPECIAL).code !== 0, 20000);
        expect(run("sh", [checkScript]).code).toBe(0);
      } finally {
        primaryStatus.code = 200;
      }
      await waitUntil("HAProxy to find the primary again", () => appLogin(SPECIAL).code === 0, 20000);
    });

    test("the check fails when PgBouncer is gone", async () => {
      const pgb = procs[procs.length - 1];
      pgb.kill("SIGTERM");
      await waitUntil("pgbouncer to stop", () => run("sh", [checkScript]).code !== 0, 10000);
    });
  });
});
