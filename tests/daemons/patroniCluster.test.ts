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
// etcd's passwords: every character naive quoting breaks on, but no space (etcdctl reads one word)
const ETCD_ROOT_PW = SPECIAL + "root";
const ETCD_PATRONI_PW = SPECIAL + "etcd";
const BINARIES = ["/usr/bin/etcd", "/usr/bin/etcdctl", "/usr/bin/patroni", "/usr/lib/postgresql/15/bin/postgres", "/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_ctl", "/usr/bin/psql"];
// 127.0.0.2 is loopback too; Patroni rejects 127.0.0.1 as a connect_address
const MEMBER = { name: "t1", address: "127.0.0.2" };


// Waits for a daemon to become healthy are set-up, not measurements: on a 2-core machine under load 30-50
// a Patroni bootstrap took longer than 60 s (bench/fresh-check.md), so they wait up to 3 minutes.
const HEALTH_WAIT_MS = 180000;
jest.setTimeout(HEALTH_WAIT_MS + 120000);

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
  // the one-member Patroni cluster, shared by the tests from its bootstrap to its stop
  let pg: ChildProcess | undefined;
  let work: string;
  let configFile: string;
  let rest: string;
  let sysid: string;
  const restPw = SPECIAL + "a";
  const sh = (script: string, input?: string, env: NodeJS.ProcessEnv = process.env) => spawnSync("bash", ["-c", `set -eu\n${script}`], { input, encoding: "utf8", env });
  /** The config the hosts get, with the test's files kept out of the machine's postgres home and socket dir. */
  const patroniConfig = (etcdLogin: boolean) => {
    const c = yaml.load(r.renderPatroniConfig(s, MEMBER, { superuser: SPECIAL, replication: SPECIAL + "r", rewind: SPECIAL + "w", restApi: restPw, etcd: ETCD_PATRONI_PW },
      undefined, [], { proxies: ["127.0.0.1"] })) as any;
    c.postgresql.pgpass = path.join(work, "pgpass");
    c.postgresql.parameters.unix_socket_directories = work;
    c.log = { dir: work, level: "INFO" };
    // as deployed before etcd auth: no login, no tag
    if (!etcdLogin) { delete c.etcd3.username; delete c.etcd3.password; delete c.tags[r.ETCD_AUTH_TAG]; }
    return yaml.dump(c);
  };
  const startPatroni = () => {
    pg = spawn("runuser", ["-u", "postgres", "--", "patroni", configFile], { stdio: "ignore", cwd: "/" });
  };
  /** runuser forks: Patroni is its child. */
  const patroniPid = () => Number(fs.readFileSync(`/proc/${pg!.pid}/task/${pg!.pid}/children`, "utf8").trim().split(/\s+/)[0]);
  const patroniLog = () => fs.readdirSync(work).filter((f) => f.endsWith(".log")).map((f) => fs.readFileSync(path.join(work, f), "utf8").slice(-3000)).join("\n");
  const stopPatroni = async () => {
    if (!pg || pg.exitCode !== null || pg.signalCode !== null) return;
    pg.kill("SIGTERM");
    await until(() => pg!.exitCode !== null || pg!.signalCode !== null, 30000);
  };
  /** etcdctl as a client with the given login (none: a neighbour without credentials), in its environment. */
  const etcdctl = (args: string[], login?: { user: string; password: string }) => spawnSync("etcdctl", [`--endpoints=http://${MEMBER.address}:${s.etcdClientPort}`, "--command-timeout=5s", ...args],
    { env: { PATH: process.env.PATH, ETCDCTL_API: "3", ...(login ? { ETCDCTL_USER: login.user, ETCDCTL_PASSWORD: login.password } : {}) }, encoding: "utf8" });
  const ROOT = { user: "root", password: ETCD_ROOT_PW };
  const PATRONI = { user: r.ETCD_PATRONI_USER, password: ETCD_PATRONI_PW };
  const leaderKey = () => `${r.PATRONI_NAMESPACE}${s.clusterName}/leader`;

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

  afterAll(async () => {
    await stopPatroni();
    spawnSync("runuser", ["-u", "postgres", "--", `${r.binDir(15)}/pg_ctl`, "-D", s.dataDir, "-m", "immediate", "stop"], { cwd: "/" });
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
    const ok = await until(() => spawnSync("bash", ["-c", r.etcdHealthProbe(s.nodes, s.etcdClientPort)]).status === 0, HEALTH_WAIT_MS);
    if (!ok) throw new Error(`etcd never became healthy:\n${etcdLog.slice(-3000)}`);
    // the loopback client URL the local Patroni may use answers too
    expect(spawnSync("etcdctl", [`--endpoints=http://127.0.0.1:${s.etcdClientPort}`, "endpoint", "health"], { env: { ...process.env, ETCDCTL_API: "3" } }).status).toBe(0);
  });

  it("passes patroni --validate-config with the special password (through the host validation script)", () => {
    const pw = { superuser: SPECIAL, replication: SPECIAL + "r", rewind: SPECIAL + "w", restApi: SPECIAL + "a", etcd: ETCD_PATRONI_PW };
    const file = path.join(tmp, "config.yml");
    fs.writeFileSync(file, r.renderPatroniConfig(s, MEMBER, pw), { mode: 0o600 });
    const direct = spawnSync("patroni", ["--validate-config", file], { encoding: "utf8" });
    expect([direct.status, direct.stdout + direct.stderr]).toEqual([0, ""]);
    const viaScript = spawnSync("bash", ["-c", `set -eu\n${r.patroniValidateScript()}`], { env: { ...process.env, NEW: file }, encoding: "utf8" });
    expect([viaScript.status, viaScript.stdout + viaScript.stderr]).toEqual([0, ""]);
  });

  it("rejects a config Patroni cannot use (the validation script fails the swap)", () => {
    const file = path.join(tmp, "bad.yml");
    fs.writeFileSync(file, r.renderPatroniConfig(s, MEMBER, { superuser: "a", replication: "b", rewind: "c", restApi: "d", etcd: "e" }).replace(/listen: "?127\.0\.0\.2:\d+"?/, "listen: nonsense"));
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

  it("bootstraps a one-member cluster with Patroni (as deployed before etcd auth); the health probe, leader query, PATCH /config and app-database scripts work on it", async () => {
    work = path.join(tmp, "patroni");
    fs.mkdirSync(work, { mode: 0o700 });
    configFile = path.join(work, "config.yml");
    fs.writeFileSync(configFile, patroniConfig(false), { mode: 0o600 });
    execFileSync("chown", ["-R", "postgres:postgres", work]);
    // the same step the hosts run: Patroni's data dir owned by postgres, mode 0700
    execFileSync("bash", ["-c", `set -eu\n${r.dataDirsScript(s)}`]);
    expect((fs.statSync(s.dataDir).mode & 0o777).toString(8)).toBe("700");
    startPatroni();
    rest = r.restUrl(MEMBER, s.restApiPort);
    const healthy = await until(() => sh(r.clusterHealthyProbe(rest, 1)).status === 0, HEALTH_WAIT_MS);
    if (!healthy) throw new Error(`no healthy leader:\n${patroniLog()}`);
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
    sysid = JSON.parse(spawnSync("curl", ["-sf", `${rest}/patroni`], { encoding: "utf8" }).stdout).database_system_identifier;
    expect(sysid).toMatch(/^\d+$/);
  });

  it("refuses a changed clusterName on a host whose Patroni config names the running cluster, unless allowClusterRename", () => {
    const guard = (name: string, allow: boolean, file = configFile) => sh(r.clusterNameGuardScript(name, allow, file));
    expect(guard(s.clusterName, false).status).toBe(0);
    const refused = guard("renamed", false);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`hastack:postgres.clusterName: got 'renamed', but ${os.hostname()} already runs cluster '${s.clusterName}' (${configFile})`);
    expect(refused.stderr).toContain("re-bootstrapping");
    expect(refused.stderr).toContain("set hastack:postgres.allowClusterRename: true");
    const forced = guard("renamed", true);
    expect([forced.status, forced.stderr]).toEqual([0, expect.stringContaining(`changes from '${s.clusterName}' to 'renamed' (allowClusterRename: true)`)]);
    // a new host: nothing to compare with
    expect(guard("renamed", false, path.join(tmp, "absent.yml")).status).toBe(0);
  });

  it("upgrades a running cluster to etcd auth without losing the leader: Patroni reloads its login, then auth is enabled", async () => {
    // etcd as deployed before: anyone may write
    expect(etcdctl(["put", "/hastack-probe", "x"]).status).toBe(0);
    expect(etcdctl(["del", "/hastack-probe"]).status).toBe(0);
    const loaded = r.patroniEtcdCredentialsProbe(rest, 1);
    expect(sh(loaded).status).not.toBe(0);
    // the deploy's order: the new config, a reload (SIGHUP, as `systemctl reload`), the login shows in /cluster
    fs.writeFileSync(configFile, patroniConfig(true), { mode: 0o600 });
    process.kill(patroniPid(), "SIGHUP");
    if (!(await until(() => sh(loaded).status === 0, HEALTH_WAIT_MS))) throw new Error(`Patroni never showed its etcd login:\n${patroniLog()}`);
    // an etcdctl that records its argv: no password may reach a command line
    const shim = path.join(tmp, "shim");
    fs.mkdirSync(shim, { recursive: true });
    const argvLog = path.join(tmp, "etcdctl-argv");
    fs.writeFileSync(path.join(shim, "etcdctl"), `#!/bin/sh\nprintf '%s\\n' "$*" >> ${argvLog}\nexec /usr/bin/etcdctl "$@"\n`, { mode: 0o755 });
    const script = r.etcdAuthScript(s.nodes, s.etcdClientPort);
    const env = { ...process.env, PATH: `${shim}:${process.env.PATH}` };
    // and every command line on the machine, sampled while the step runs
    const seen = new Set<string>();
    const run = spawn("bash", ["-c", `set -eu\n${script}`], { env, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    run.stdout!.on("data", (d) => (out += d));
    run.stderr!.on("data", (d) => (out += d));
    run.stdin!.end(r.renderEtcdAuthStdin(ETCD_ROOT_PW, ETCD_PATRONI_PW));
    while (run.exitCode === null) {
      for (const pid of fs.readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
        try { seen.add(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ")); } catch { /* gone */ }
      }
      await new Promise((res) => setTimeout(res, 5));
    }
    expect([run.exitCode, out.trim()]).toEqual([0, "etcd authentication enabled"]);
    const argv = fs.readFileSync(argvLog, "utf8");
    expect(argv).toContain("auth enable");
    expect([...seen].filter((l) => l.includes("etcdctl")).length).toBeGreaterThan(0);
    for (const secret of [ETCD_ROOT_PW, ETCD_PATRONI_PW, "jhYg"]) {
      expect(argv.includes(secret)).toBe(false);
      expect([...seen].filter((l) => l.includes(secret))).toEqual([]);
    }
    // Patroni keeps the leader key through more than its ttl (its lease is renewed with its login) ...
    const end = Date.now() + (s.ttl + s.loopWait + 2) * 1000;
    while (Date.now() < end) {
      const lead = sh(r.leaderQueryScript(rest));
      expect([lead.status, r.parseLeader(lead.stdout).name]).toEqual([0, "t1"]);
      await new Promise((res) => setTimeout(res, 1000));
    }
    expect(sh(r.clusterHealthyProbe(rest, 1)).status).toBe(0);
    expect(etcdctl(["get", leaderKey(), "--print-value-only"], PATRONI).stdout.trim()).toBe("t1");
    // ... and writes its keys: a dynamic-config change lands in etcd
    const patch = sh(r.patchConfigScript(rest, path.join(work, "rest.curl")), JSON.stringify({ maximum_lag_on_failover: 1048577 }));
    expect([patch.status, patch.stderr]).toEqual([0, ""]);
    expect(JSON.parse(etcdctl(["get", `${r.PATRONI_NAMESPACE}${s.clusterName}/config`, "--print-value-only"], ROOT).stdout).maximum_lag_on_failover).toBe(1048577);
    // the probes of the deploy need no login
    expect(sh(r.etcdHealthProbe(s.nodes, s.etcdClientPort)).status).toBe(0);
    expect(patroniLog()).not.toMatch(/Username or password not set|authentication failed/);
  });

  it("with auth on, a client without a login can neither write nor delete Patroni's keys, and Patroni's user writes only under its namespace", () => {
    const put = etcdctl(["put", leaderKey(), "intruder"]);
    expect([put.status, put.stderr]).toEqual([1, expect.stringContaining("user name is empty")]);
    const del = etcdctl(["del", "--prefix", r.PATRONI_NAMESPACE]);
    expect([del.status, del.stderr]).toEqual([1, expect.stringContaining("user name is empty")]);
    expect(etcdctl(["get", leaderKey()]).status).toBe(1);
    // a wrong password is no login either
    expect(etcdctl(["put", leaderKey(), "intruder"], { user: "root", password: "guess" }).stderr).toContain("authentication failed");
    const outside = etcdctl(["put", "/hastack-outside", "x"], PATRONI);
    expect([outside.status, outside.stderr]).toEqual([1, expect.stringContaining("permission denied")]);
    expect(etcdctl(["user", "add", "mallory", "--new-user-password=x"], PATRONI).stderr).toContain("permission denied");
    expect(etcdctl(["auth", "disable"], PATRONI).stderr).toContain("permission denied");
    expect(etcdctl(["get", leaderKey(), "--print-value-only"], ROOT).stdout.trim()).toBe("t1");
    // the operators' file: sourced, etcdctl logs in as root with the password from its environment
    const envFile = path.join(tmp, "etcdctl.env");
    fs.writeFileSync(envFile, r.renderEtcdctlEnv(ETCD_ROOT_PW), { mode: 0o600 });
    // with an --endpoints flag, as an operator on another port or several members would give it
    const asOperator = sh(`. ${envFile}\netcdctl --endpoints=http://127.0.0.1:${s.etcdClientPort} get ${leaderKey()} --print-value-only`);
    expect([asOperator.status, asOperator.stdout.trim()]).toEqual([0, "t1"]);
  });

  it("re-running the auth step on the authenticated cluster changes nothing; a changed root password fails with what to do", () => {
    const again = sh(r.etcdAuthScript(s.nodes, s.etcdClientPort), r.renderEtcdAuthStdin(ETCD_ROOT_PW, ETCD_PATRONI_PW));
    expect([again.status, again.stdout.trim()]).toEqual([0, "etcd authentication on; user patroni refreshed"]);
    expect(etcdctl(["role", "get", r.ETCD_PATRONI_USER], ROOT).stdout).toMatch(/KV Read:\s+\[\/service\/, \/service0\) \(prefix \/service\/\)\s+KV Write:\s+\[\/service\/, \/service0\) \(prefix \/service\/\)\s*$/);
    const rotated = sh(r.etcdAuthScript(s.nodes, s.etcdClientPort), r.renderEtcdAuthStdin(ETCD_ROOT_PW + "new", ETCD_PATRONI_PW));
    expect(rotated.status).toBe(1);
    expect(rotated.stderr).toContain("etcd refuses user root with hastack:passwords.etcdRoot");
    expect(rotated.stderr).not.toContain(ETCD_ROOT_PW);
  });

  it("Patroni restarted with its login against authenticated etcd takes the leader back with the same data", async () => {
    await stopPatroni();
    startPatroni();
    const healthy = await until(() => sh(r.clusterHealthyProbe(rest, 1)).status === 0, HEALTH_WAIT_MS);
    if (!healthy) throw new Error(`no healthy leader after the restart:\n${patroniLog()}`);
    expect(JSON.parse(spawnSync("curl", ["-sf", `${rest}/patroni`], { encoding: "utf8" }).stdout).database_system_identifier).toBe(sysid);
    const login = spawnSync("psql", ["-X", "-tA", "-h", MEMBER.address, "-p", String(s.pgPort), "-U", s.appUser, "-d", s.database, "-c", "select current_user"],
      { env: { ...process.env, PGPASSWORD: SPECIAL }, encoding: "utf8" });
    expect([login.status, login.stdout.trim()]).toEqual([0, s.appUser]);
  });

  it("after an etcd restart with auth on (its login tokens are gone) Patroni logs in again and keeps leading", async () => {
    const env = r.parseEnvFile(r.renderEtcdEnv({ member: MEMBER, nodes: s.nodes, clientPort: s.etcdClientPort, peerPort: s.etcdPeerPort, dataDir: s.etcdDataDir, clusterName: s.clusterName }));
    etcd!.kill("SIGTERM");
    expect(await until(() => etcd!.exitCode !== null || etcd!.signalCode !== null, 10000)).toBe(true);
    etcd = spawn("/usr/bin/etcd", [], { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    etcd.stderr!.on("data", (d) => (etcdLog += d.toString()));
    expect(await until(() => sh(r.etcdHealthProbe(s.nodes, s.etcdClientPort)).status === 0, HEALTH_WAIT_MS)).toBe(true);
    // a write through Patroni needs a fresh token: the dynamic config lands in etcd again
    const wrote = await until(() => sh(r.patchConfigScript(rest, path.join(work, "rest.curl")), JSON.stringify({ maximum_lag_on_failover: 1048578 })).status === 0, HEALTH_WAIT_MS);
    expect(wrote).toBe(true);
    expect(JSON.parse(etcdctl(["get", `${r.PATRONI_NAMESPACE}${s.clusterName}/config`, "--print-value-only"], ROOT).stdout).maximum_lag_on_failover).toBe(1048578);
    // the leader key is renewed past its ttl
    await new Promise((res) => setTimeout(res, (s.ttl + 2) * 1000));
    expect(r.parseLeader(sh(r.leaderQueryScript(rest)).stdout).name).toBe("t1");
    expect(etcdctl(["get", leaderKey(), "--print-value-only"], ROOT).stdout.trim()).toBe("t1");
  });

  it("a member listed in noFailover (tags nofailover and nosync) never takes the leader: on an empty scope it waits instead of bootstrapping", async () => {
    const [pgPort, restApiPort] = [await freePort(), await freePort()];
    const s2 = { ...s, clusterName: "nofo", pgPort, restApiPort, dataDir: path.join(tmp, "pgdata-nofo"), noFailover: ["t1"] };
    const dir = path.join(tmp, "patroni-nofo");
    fs.mkdirSync(dir, { mode: 0o700 });
    const c = yaml.load(r.renderPatroniConfig(s2, MEMBER, { superuser: SPECIAL, replication: SPECIAL + "r", rewind: SPECIAL + "w", restApi: restPw, etcd: ETCD_PATRONI_PW },
      undefined, [], { proxies: ["127.0.0.1"] })) as any;
    c.postgresql.pgpass = path.join(dir, "pgpass");
    c.postgresql.parameters.unix_socket_directories = dir;
    c.log = { dir, level: "INFO" };
    const file = path.join(dir, "config.yml");
    fs.writeFileSync(file, yaml.dump(c), { mode: 0o600 });
    execFileSync("chown", ["-R", "postgres:postgres", dir]);
    execFileSync("bash", ["-c", `set -eu\n${r.dataDirsScript(s2)}`]);
    const p = spawn("runuser", ["-u", "postgres", "--", "patroni", file], { stdio: "ignore", cwd: "/" });
    try {
      const url = r.restUrl(MEMBER, restApiPort);
      const status = () => spawnSync("curl", ["-sf", "--max-time", "3", `${url}/patroni`], { encoding: "utf8" });
      expect(await until(() => status().status === 0, HEALTH_WAIT_MS)).toBe(true);
      // its HA loop runs for a few rounds (loop_wait 4 s with the "fast" profile): alone on an empty scope, a member
      // allowed to lead would bootstrap at once (as the cluster above did)
      await new Promise((res) => setTimeout(res, (s2.loopWait * 3 + 2) * 1000));
      expect(JSON.parse(status().stdout).tags).toMatchObject({ nofailover: true, nosync: true });
      const key = (k: string) => etcdctl(["get", `${r.PATRONI_NAMESPACE}nofo/${k}`, "--print-value-only"], ROOT);
      expect([key("initialize").status, key("initialize").stdout.trim(), key("leader").stdout.trim()]).toEqual([0, "", ""]);
      expect(fs.existsSync(path.join(s2.dataDir, "PG_VERSION"))).toBe(false);
    } finally {
      p.kill("SIGTERM");
      await until(() => p.exitCode !== null || p.signalCode !== null, 30000);
    }
  });

  it("stops Patroni", async () => {
    await stopPatroni();
    expect(pg!.exitCode !== null || pg!.signalCode !== null).toBe(true);
    spawnSync("runuser", ["-u", "postgres", "--", `${r.binDir(15)}/pg_ctl`, "-D", s.dataDir, "-m", "immediate", "stop"], { cwd: "/" });
  });

  it("stops etcd", async () => {
    expect(etcd).toBeDefined();
    etcd!.kill("SIGTERM");
    expect(await until(() => etcd!.exitCode !== null || etcd!.signalCode !== null, 10000)).toBe(true);
  });
});
