// Real daemons on loopback: etcd started from the rendered env file, Patroni's own validator on the rendered
// config, and PostgreSQL running the rendered app-database script. Needs root (runs daemons as postgres).
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { resolvePatroniClusterSettings, ResolvedPatroniClusterSettings } from "../../components/patroniCluster/args";
import * as r from "../../components/patroniCluster/render";
import { freePort } from "../support/ports";

const SPECIAL = `jhYg/=\\F'"$`;
const BINARIES = ["/usr/bin/etcd", "/usr/bin/etcdctl", "/usr/bin/patroni", "/usr/lib/postgresql/15/bin/postgres", "/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_ctl", "/usr/bin/psql"];
// 127.0.0.2 is loopback too; Patroni rejects 127.0.0.1 as a connect_address
const MEMBER = { name: "t1", address: "127.0.0.2" };


async function until(probe: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (probe()) return true;
    await new Promise((r) => setTimeout(r, 300));
  }
  return false;
}

describe("PatroniCluster daemons (needs root; real etcd, patroni, postgresql on loopback)", () => {
  let tmp: string;
  let s: ResolvedPatroniClusterSettings;
  let etcd: ChildProcess | undefined;
  let etcdLog = "";

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-patroni-"));
    fs.chmodSync(tmp, 0o755);
    const [pgPort, restApiPort, etcdClientPort, etcdPeerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const resolved = resolvePatroniClusterSettings({
      nodes: [MEMBER, { name: "t2", address: "127.0.0.3" }, { name: "t3", address: "127.0.0.4" }],
      pgPort, restApiPort, etcdClientPort, etcdPeerPort, failoverProfile: "fast",
    }, "127.0.0.0/16");
    // a single-member variant of the same settings, so one etcd can form a quorum alone; data in the
    // test's temp dir (which the dataDir rules rightly refuse for a real host)
    s = { ...resolved, nodes: [MEMBER], dataDir: path.join(tmp, "pgdata"), etcdDataDir: path.join(tmp, "etcd") };
  });

  afterAll(() => {
    if (etcd && etcd.exitCode === null) etcd.kill("SIGKILL");
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("runs as root with every daemon binary installed", () => {
    expect(process.getuid?.()).toBe(0);
    for (const b of BINARIES) expect([b, fs.existsSync(b)]).toEqual([b, true]);
  });

  it("starts etcd from the rendered /etc/default/etcd and reports it healthy over the v3 API", async () => {
    const text = r.renderEtcdEnv({ member: MEMBER, nodes: s.nodes, clientPort: s.etcdClientPort, peerPort: s.etcdPeerPort, dataDir: s.etcdDataDir, clusterName: s.clusterName });
    const env = r.parseEnvFile(text);
    expect(env.ETCD_ENABLE_V2).toBe("false");
    etcd = spawn("/usr/bin/etcd", [], { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    etcd.stderr!.on("data", (d) => (etcdLog += d.toString()));
    etcd.stdout!.on("data", (d) => (etcdLog += d.toString()));
    const ok = await until(() => spawnSync("bash", ["-c", r.etcdHealthProbe(s.nodes, s.etcdClientPort)]).status === 0, 30000);
    if (!ok) throw new Error(`etcd never became healthy:\n${etcdLog.slice(-3000)}`);
    // the loopback client URL the local Patroni may use answers too
    expect(spawnSync("etcdctl", [`--endpoints=http://127.0.0.1:${s.etcdClientPort}`, "endpoint", "health"], { env: { ...process.env, ETCDCTL_API: "3" } }).status).toBe(0);
  });

  it("passes patroni --validate-config with the special password (through the host validation script)", () => {
    const pw = { superuser: SPECIAL, replication: SPECIAL + "r", rewind: SPECIAL + "w", restApi: SPECIAL + "a" };
    const file = path.join(tmp, "config.yml");
    fs.writeFileSync(file, r.renderPatroniConfig(s, MEMBER, pw), { mode: 0o600 });
    const direct = spawnSync("patroni", ["--validate-config", file], { encoding: "utf8" });
    expect([direct.status, direct.stdout + direct.stderr]).toEqual([0, ""]);
    const viaScript = spawnSync("bash", ["-c", `set -eu\n${r.patroniValidateScript()}`], { env: { ...process.env, NEW: file }, encoding: "utf8" });
    expect([viaScript.status, viaScript.stdout + viaScript.stderr]).toEqual([0, ""]);
  });

  it("rejects a config Patroni cannot use (the validation script fails the swap)", () => {
    const file = path.join(tmp, "bad.yml");
    fs.writeFileSync(file, r.renderPatroniConfig(s, MEMBER, { superuser: "a", replication: "b", rewind: "c", restApi: "d" }).replace(/listen: "?127\.0\.0\.2:\d+"?/, "listen: nonsense"));
    const res = spawnSync("bash", ["-c", `set -eu\n${r.patroniValidateScript()}`], { env: { ...process.env, NEW: file }, encoding: "utf8" });
    expect(res.status).not.toBe(0);
    expect(res.stdout).toMatch(/restapi\.listen/);
  });

  it("creates the app role and database with the special password, idempotently, on a real PostgreSQL", async () => {
    const pgdata = path.join(tmp, "pgtest");
    fs.mkdirSync(pgdata, { mode: 0o700 });
    execFileSync("chown", ["postgres:postgres", pgdata]);
    const pwfile = path.join(tmp, "supw");
    fs.writeFileSync(pwfile, SPECIAL + "\n");
    execFileSync("chown", ["postgres:postgres", pwfile]);
    const port = await freePort();
    // cwd "/": postgres cannot enter a checkout under /root (mode 0700), and pg_ctl/initdb chdir back to it
    const asPg = (args: string[]) => spawnSync("runuser", ["-u", "postgres", "--", ...args], { encoding: "utf8", cwd: "/" });
    const bin = r.binDir(15);
    const init = asPg([`${bin}/initdb`, "-D", pgdata, "-U", "postgres", `--pwfile=${pwfile}`, "--auth-host=scram-sha-256", "--auth-local=peer"]);
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
    const start = asPg([`${bin}/pg_ctl`, "-D", pgdata, "-w", "-l", path.join(pgdata, "log"), "-o", `-p ${port} -k ${pgdata} -c listen_addresses=127.0.0.1`, "start"]);
    try {
      expect([start.status, start.stderr]).toEqual([0, ""]);
      const stdin = r.renderAppDbStdin("postgres", SPECIAL, "workspad", "workspad", SPECIAL);
      // the psql half of appDbScript; the leader lookup needs a Patroni REST API
      const script = [
        "umask 077", "tmp=$(mktemp -d)", `trap 'rm -rf "$tmp"' EXIT`,
        "IFS= read -r line", `printf '%s\\n' "$line" > "$tmp/pgpass"`, `cat > "$tmp/setup.sql"`,
        `PGPASSFILE="$tmp/pgpass" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p ${port} -U postgres -d postgres -f "$tmp/setup.sql"`,
      ].join("\n");
      for (let i = 0; i < 2; i++) {
        const run = spawnSync("bash", ["-c", `set -eu\n${script}`], { input: stdin, encoding: "utf8" });
        expect([run.status, run.stderr]).toEqual([0, ""]);
      }
      const login = spawnSync("psql", ["-X", "-tA", "-h", "127.0.0.1", "-p", String(port), "-U", "workspad", "-d", "workspad", "-c", "select current_user || '@' || current_database()"],
        { env: { ...process.env, PGPASSWORD: SPECIAL }, encoding: "utf8" });
      expect([login.status, login.stdout.trim()]).toEqual([0, "workspad@workspad"]);
    } finally {
      asPg([`${bin}/pg_ctl`, "-D", pgdata, "-m", "immediate", "stop"]);
    }
  });

  it("bootstraps a one-member cluster with Patroni; the health probe, leader query, PATCH /config and app-database scripts work on it", async () => {
    const work = path.join(tmp, "patroni");
    fs.mkdirSync(work, { mode: 0o700 });
    // loopback stands in for the proxy: connections to 127.0.0.2 come from 127.0.0.1
    const access = { proxies: ["127.0.0.1"] };
    const restPw = SPECIAL + "a";
    const c = yaml.load(r.renderPatroniConfig(s, MEMBER, { superuser: SPECIAL, replication: SPECIAL + "r", rewind: SPECIAL + "w", restApi: restPw }, undefined, [], access)) as any;
    // keep the test's files out of the machine's postgres home and socket dir
    c.postgresql.pgpass = path.join(work, "pgpass");
    c.postgresql.parameters.unix_socket_directories = work;
    c.log = { dir: work, level: "INFO" };
    const file = path.join(work, "config.yml");
    fs.writeFileSync(file, yaml.dump(c), { mode: 0o600 });
    execFileSync("chown", ["-R", "postgres:postgres", work]);
    // the same step the hosts run: Patroni's data dir owned by postgres, mode 0700
    execFileSync("bash", ["-c", `set -eu\n${r.dataDirsScript(s)}`]);
    expect((fs.statSync(s.dataDir).mode & 0o777).toString(8)).toBe("700");
    const pg = spawn("runuser", ["-u", "postgres", "--", "patroni", file], { stdio: "ignore", cwd: "/" });
    const rest = r.restUrl(MEMBER, s.restApiPort);
    const sh = (script: string, input?: string) => spawnSync("bash", ["-c", `set -eu\n${script}`], { input, encoding: "utf8" });
    try {
      const healthy = await until(() => sh(r.clusterHealthyProbe(rest, 1)).status === 0, 60000);
      if (!healthy) throw new Error(`no healthy leader:\n${fs.readdirSync(work).map((f) => f.endsWith(".log") ? fs.readFileSync(path.join(work, f), "utf8").slice(-3000) : f).join("\n")}`);
      expect(sh(r.clusterHealthyProbe(rest, 3)).status).not.toBe(0);
      const leader = sh(r.leaderQueryScript(rest));
      expect(r.parseLeader(leader.stdout)).toEqual({ name: "t1", host: "127.0.0.2", port: s.pgPort });
      // unsafe methods need the credentials; curl reads them from the file, never from argv
      const unauth = spawnSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-XPATCH", "-d", "{}", `${rest}/config`], { encoding: "utf8" });
      expect(unauth.stdout).toBe("401");
      const wrong = path.join(work, "wrong.curl");
      fs.writeFileSync(wrong, r.renderRestCurlConfig(restPw + "x"), { mode: 0o600 });
      expect(sh(r.patchConfigScript(rest, wrong), "{}").status).not.toBe(0);
      const authFile = path.join(work, "rest.curl");
      fs.writeFileSync(authFile, r.renderRestCurlConfig(restPw), { mode: 0o600 });
      const patch = sh(r.patchConfigScript(rest, authFile), r.renderDynamicConfigJson({ ...s, synchronousMode: true }));
      expect([patch.status, patch.stderr]).toEqual([0, ""]);
      // health checks (HAProxy's OPTIONS /primary) and GETs stay open
      expect(spawnSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-XOPTIONS", `${rest}/primary`], { encoding: "utf8" }).stdout).toBe("200");
      const cfg = JSON.parse(spawnSync("curl", ["-sf", `${rest}/config`], { encoding: "utf8" }).stdout);
      expect([cfg.ttl, cfg.loop_wait, cfg.retry_timeout, cfg.synchronous_mode]).toEqual([20, 4, 8, true]);
      const stdin = r.renderAppDbStdin(s.superuser, SPECIAL, s.database, s.appUser, SPECIAL);
      for (let i = 0; i < 2; i++) {
        const run = sh(r.appDbScript(rest, s.pgPort, s.superuser, work), stdin);
        expect([run.status, run.stderr]).toEqual([0, ""]);
      }
      // where /primary does not answer 200 (a replica; here nothing listens) the step does nothing
      const notLeader = sh(r.appDbScript("http://127.0.0.1:9", s.pgPort, s.superuser, work), stdin);
      expect([notLeader.status, notLeader.stdout.trim()]).toEqual([0, "not the leader (000): nothing to do"]);
      const tcp = (user: string, db: string, password: string) => spawnSync("psql", ["-X", "-tA", "-h", MEMBER.address, "-p", String(s.pgPort), "-U", user, "-d", db, "-c", "select 1"],
        { env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: "5" }, encoding: "utf8" });
      // pg_hba: the app role only to its database, replication only as replication
      expect(tcp(s.appUser, "postgres", SPECIAL).stderr).toMatch(/no pg_hba\.conf entry/);
      expect(tcp(s.replicationUser, "postgres", SPECIAL + "r").stderr).toMatch(/no pg_hba\.conf entry/);
      const login = spawnSync("psql", ["-X", "-tA", "-h", MEMBER.address, "-p", String(s.pgPort), "-U", s.appUser, "-d", s.database, "-c", "show password_encryption"],
        { env: { ...process.env, PGPASSWORD: SPECIAL }, encoding: "utf8" });
      expect([login.status, login.stdout.trim()]).toEqual([0, "scram-sha-256"]);
    } finally {
      pg.kill("SIGTERM");
      await until(() => pg.exitCode !== null || pg.signalCode !== null, 30000);
      spawnSync("runuser", ["-u", "postgres", "--", `${r.binDir(15)}/pg_ctl`, "-D", s.dataDir, "-m", "immediate", "stop"], { cwd: "/" });
    }
  });

  it("stops etcd", async () => {
    expect(etcd).toBeDefined();
    etcd!.kill("SIGTERM");
    expect(await until(() => etcd!.exitCode !== null || etcd!.signalCode !== null, 10000)).toBe(true);
  });
});
