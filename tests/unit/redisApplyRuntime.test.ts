// The Redis apply step's choice between a runtime change and a restart (renderRedisApplyScript and its update,
// renderRedisApplyUpdateScript), run as written against stand-ins: a systemctl that keeps a unit's state and
// InvocationID in files and a redis-cli that logs what it is sent. The scripts' paths are moved to a temp dir.
// What the real Redis does with ACL LOAD and CONFIG SET masterauth is tested on the daemons
// (tests/daemons/redisRotation.test.ts) and in the lab (tests/e2e/redisGroups.test.ts).
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REDIS_PATHS, renderRedisApplyScript, renderRedisApplyUpdateScript } from "../../components/redisSentinelGroup/render";

const FAKE_SYSTEMCTL = `#!/bin/bash
S="$FAKE_STATE"
case "$1" in
  is-active) [ "$(cat "$S/state")" = active ] ;;
  restart) echo restarted >> "$S/log"; echo "inv$(( $(cat "$S/n") + 1 ))" > "$S/inv"; echo $(( $(cat "$S/n") + 1 )) > "$S/n"; echo active > "$S/state" ;;
  show) case "$3" in ActiveState) cat "$S/state" ;; InvocationID) cat "$S/inv" ;; MainPID) cat "$S/pid" ;; esac ;;
  *) exit 1 ;;
esac
`;
// answers OK to everything unless told to refuse ACL LOAD
const FAKE_CLI = `#!/bin/bash
in=$(cat); echo "$in" >> "$FAKE_STATE/cli"
if [ "$in" = "ACL LOAD" ] && [ -e "$FAKE_STATE/refuse-acl" ]; then echo "ERR /etc/redis/hastack-users.acl:2: unknown user"; else echo OK; fi
`;

let dir: string;
let sleeper: number | undefined;
const at = (f: string) => path.join(dir, f);
const movePaths = (script: string) => [REDIS_PATHS.main, REDIS_PATHS.managed, REDIS_PATHS.acl, REDIS_PATHS.cliPass]
  .reduce((s, p) => s.split(p).join(at(path.basename(p))), script);
const MANAGED = (pw: string, maxmemory = "64mb") => `port 6390\nmasterauth "${pw}"\nmaxmemory ${maxmemory}\n`;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-redis-apply-"));
  fs.mkdirSync(at("bin"));
  fs.writeFileSync(at("bin/systemctl"), FAKE_SYSTEMCTL, { mode: 0o755 });
  fs.writeFileSync(at("bin/redis-cli"), FAKE_CLI, { mode: 0o755 });
  // chown redis:redis of the stand-in redis.conf: a no-op here (the test may run where no redis user exists)
  fs.writeFileSync(at("bin/chown"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  fs.writeFileSync(at("state"), "active\n");
  fs.writeFileSync(at("n"), "1\n");
  fs.writeFileSync(at("inv"), "inv1\n");
  fs.writeFileSync(at("redis.conf"), "include /etc/redis/hastack.conf\nmaxmemory 1mb\n");
  fs.writeFileSync(at("hastack.conf"), MANAGED("one"));
  fs.writeFileSync(at("hastack-users.acl"), "user default on #00 ~* &* +@all\n");
  fs.writeFileSync(at("hastack-cli.pass"), "one");
});
afterEach(() => {
  if (sleeper) try { process.kill(sleeper, "SIGKILL"); } catch { /* gone */ }
  sleeper = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

function run(script: string) {
  const r = spawnSync("sh", ["-euc", movePaths(script)], {
    env: { ...process.env, PATH: `${at("bin")}:${process.env.PATH}`, FAKE_STATE: dir }, encoding: "utf8", timeout: 30000,
  });
  const read = (f: string) => (fs.existsSync(at(f)) ? fs.readFileSync(at(f), "utf8") : "");
  return { status: r.status, out: `${r.stdout}${r.stderr}`, restarts: read("log").split("\n").filter(Boolean).length, cli: read("cli") };
}
const apply = () => run(renderRedisApplyScript({ port: 6390 }));
const record = () => fs.readFileSync(at("hastack.conf.applied"), "utf8").trim();

it("a first run restarts and records what Redis started on (settings hash, InvocationID); the file strip still runs", () => {
  const r = apply();
  expect(r).toMatchObject({ status: 0, restarts: 1, cli: "" });
  expect(record()).toMatch(/^[0-9a-f]{64} inv2$/);
  expect(fs.readFileSync(at("redis.conf"), "utf8")).not.toMatch(/maxmemory/);
});

it("users or masterauth changed alone: applied at runtime, no restart; masterauth reaches redis-cli on stdin only", () => {
  expect(apply().restarts).toBe(1);
  fs.writeFileSync(at("hastack.conf"), MANAGED("two"));
  fs.writeFileSync(at("hastack-users.acl"), "user default on #11 ~* &* +@all\n");
  const r = apply();
  expect(r).toMatchObject({ status: 0, restarts: 1 });
  expect(r.out).toMatch(/applied at runtime, no restart/);
  expect(r.cli).toBe(`CONFIG SET masterauth "two"\nACL LOAD\n`);
  expect(renderRedisApplyScript({ port: 6390 })).not.toMatch(/two/);
});

it("another setting changed: restart", () => {
  apply();
  fs.writeFileSync(at("hastack.conf"), MANAGED("one", "128mb"));
  expect(apply()).toMatchObject({ status: 0, restarts: 2, cli: "" });
});

it("Redis started since by someone else (another InvocationID): restart, even if only the users changed", () => {
  apply();
  fs.writeFileSync(at("inv"), "inv-by-hand\n");
  fs.writeFileSync(at("hastack-users.acl"), "user default on #22 ~* &* +@all\n");
  expect(apply()).toMatchObject({ status: 0, restarts: 2, cli: "" });
});

it("Redis not running: restart (starts it on the files)", () => {
  apply();
  fs.writeFileSync(at("state"), "inactive\n");
  expect(apply()).toMatchObject({ status: 0, restarts: 2 });
});

it("an ACL file Redis refuses fails the step without restarting (Redis would not start on it)", () => {
  apply();
  fs.writeFileSync(at("refuse-acl"), "");
  const r = apply();
  expect(r.status).toBe(1);
  expect(r.restarts).toBe(1);
  expect(r.out).toMatch(/Redis refuses the new ACL file: ERR/);
});

describe("the update (the step's script changed, its triggers not: an upgrade of hastack)", () => {
  const update = () => run(renderRedisApplyUpdateScript({ port: 6390 }));
  const startRedis = () => {
    const p = spawn("sleep", ["60"], { stdio: "ignore", detached: true });
    sleeper = p.pid!;
    fs.writeFileSync(at("pid"), `${p.pid}\n`);
  };

  it("a Redis without a record that started after its files were written is recorded, not restarted", () => {
    const past = new Date(Date.now() - 3600 * 1000);
    for (const f of ["hastack.conf", "hastack-users.acl"]) fs.utimesSync(at(f), past, past);
    startRedis();
    const r = update();
    expect(r).toMatchObject({ status: 0, restarts: 0, cli: "" });
    expect(r.out).toMatch(/recorded them as applied, no restart/);
    expect(record()).toMatch(/^[0-9a-f]{64} inv1$/);
  });

  it("a file written after Redis started (it may run other settings): restart", () => {
    startRedis();
    const future = new Date(Date.now() + 3600 * 1000);
    fs.utimesSync(at("hastack-users.acl"), future, future);
    expect(update()).toMatchObject({ status: 0, restarts: 1 });
  });

  it("with a record, the update decides as the create does", () => {
    apply();
    startRedis();
    fs.writeFileSync(at("hastack-users.acl"), "user default on #33 ~* &* +@all\n");
    const r = update();
    expect(r).toMatchObject({ status: 0, restarts: 1, cli: `CONFIG SET masterauth "one"\nACL LOAD\n` });
  });
});
