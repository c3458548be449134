// Redis 7.0 drops a SIGTERM that lands while it writes its initial AOF (right after a replica's full sync:
// "Writing initial AOF, can't exit") and never retries; Debian's unit has TimeoutStopSec=0, so
// `systemctl restart redis-server` then waits forever (a lab deploy hung 14 min on it). The apply script
// repeats the SIGTERM while the stop is pending. Here a stand-in Redis ignores its first SIGTERM, behind a
// stand-in systemctl that sends one SIGTERM and waits, as systemd does.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderRedisApplyScript } from "../../components/redisSentinelGroup/render";

const FAKE_SYSTEMCTL = `#!/bin/bash
S="$FAKE_STATE"
case "$1" in
  restart) echo deactivating > "$S/state"; pid=$(cat "$S/pid"); kill -TERM "$pid"
           # (a stand-in that exited stays a zombie of jest, blocked in spawnSync: gone once its state is Z)
           while ps -o stat= -p "$pid" | grep -qv Z; do sleep 0.2; done; echo active > "$S/state"; echo restarted >> "$S/log" ;;
  show) if [ "$3" = ActiveState ]; then cat "$S/state"; else cat "$S/pid"; fi ;;
  *) exit 1 ;;
esac
`;

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-redis-restart-"));
  fs.mkdirSync(path.join(dir, "bin"));
  fs.writeFileSync(path.join(dir, "bin", "systemctl"), FAKE_SYSTEMCTL, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, "state"), "active\n");
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A stand-in redis-server that ignores its first SIGTERM (writing its initial AOF) and exits on the next. */
function stubbornRedis(): number {
  const p = spawn("bash", ["-c", `n=0; trap 'n=$((n+1)); echo TERM >> "${dir}/terms"; [ $n -ge 2 ] && exit 0' TERM; while :; do sleep 0.1; done`],
    { stdio: "ignore", detached: true });
  fs.writeFileSync(path.join(dir, "pid"), `${p.pid}\n`);
  return p.pid!;
}

function run(script: string, timeoutMs: number) {
  return spawnSync("sh", ["-euc", script], {
    env: { ...process.env, PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, FAKE_STATE: dir }, encoding: "utf8", timeout: timeoutMs,
  });
}

const restartPart = () => {
  const lines = renderRedisApplyScript().split("\n");
  // from the restart on, without the last line (the record of what Redis now runs: redisApplyRuntime.test.ts)
  return lines.slice(lines.findIndex((l) => l.startsWith("done_file=")), lines.findIndex((l) => l.startsWith("applied >"))).join("\n");
};

it("restarts a Redis that ignored the first SIGTERM: SIGTERM again while the stop is pending", () => {
  stubbornRedis();
  const t0 = Date.now();
  const r = run(restartPart(), 30000);
  expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
  expect(Date.now() - t0).toBeLessThan(15000);
  expect(fs.readFileSync(path.join(dir, "terms"), "utf8").trim().split("\n")).toEqual(["TERM", "TERM"]);
  expect(fs.readFileSync(path.join(dir, "log"), "utf8")).toBe("restarted\n");
  expect(r.stderr).toMatch(/redis-server still stopping after 5s: SIGTERM again/);
});

it("a plain systemctl restart (the script before) waits forever on the same Redis", () => {
  const pid = stubbornRedis();
  try {
    const r = run("systemctl restart redis-server", 8000);
    expect(r.signal).toBe("SIGTERM"); // killed by the timeout, still waiting
  } finally {
    try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
  }
});

it("a Redis that stops at once is restarted with no second signal", () => {
  const p = spawn("bash", ["-c", `trap 'echo TERM >> "${dir}/terms"; exit 0' TERM; while :; do sleep 0.1; done`], { stdio: "ignore", detached: true });
  fs.writeFileSync(path.join(dir, "pid"), `${p.pid}\n`);
  const r = run(restartPart(), 30000);
  expect(r.status).toBe(0);
  expect(fs.readFileSync(path.join(dir, "terms"), "utf8")).toBe("TERM\n");
  expect(r.stderr).toBe("");
});
