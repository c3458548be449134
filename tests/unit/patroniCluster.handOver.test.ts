// The scale-in hand-over's choice (membership.ts HAND_OVER_PY) on Patroni /cluster answers: the candidate is always a
// member the stack keeps. The scale lab once saw Patroni, left to choose, switch over to another removed member.
import { spawnSync } from "child_process";
import { HAND_OVER_PY, handOverScript } from "../../components/patroniCluster/membership";

const judge = (cluster: unknown, kept: string, led = false) =>
  spawnSync("python3", ["-c", HAND_OVER_PY, kept, ...(led ? ["led"] : [])], { input: JSON.stringify(cluster), encoding: "utf8" }).stdout.trim();
const member = (name: string, role: string, lag: number | string = 0, extra: object = {}) =>
  ({ name, role, state: role === "leader" ? "running" : "streaming", lag, ...extra });

describe("PostgreSQL scale-in hand-over: which member it switches over to", () => {
  const kept = "pg1 pg3 pg4";
  it("names a kept replica, never another removed one, even when the removed one is closest", () => {
    expect(judge({ members: [member("pg2", "leader"), member("pg5", "replica", 0), member("pg1", "replica", 16), member("pg3", "replica", 8), member("pg4", "replica", "unknown")] }, kept))
      .toBe("pg2 pg3");
  });
  it("prefers a kept synchronous standby (synchronous mode allows only that one)", () => {
    expect(judge({ members: [member("pg2", "leader"), member("pg1", "replica", 0), member("pg4", "sync_standby", 100)] }, kept)).toBe("pg2 pg4");
  });
  it("skips kept members that are not streaming or are tagged nofailover, and says so when none is left", () => {
    expect(judge({ members: [member("pg2", "leader"), { ...member("pg1", "replica"), state: "starting" }, member("pg3", "replica", 0, { tags: { nofailover: true } })] }, kept))
      .toBe("pg2 -");
  });
  it("does nothing while a kept member leads, or no member leads", () => {
    expect(judge({ members: [member("pg1", "leader"), member("pg2", "replica")] }, kept)).toBe("");
    expect(judge({ members: [member("pg2", "replica")] }, kept)).toBe("");
  });
  it("waits for a kept leader: `led` is no while the removed one leads or none does", () => {
    expect(judge({ members: [member("pg2", "leader")] }, kept, true)).toBe("no");
    expect(judge({ members: [member("pg2", "replica")] }, kept, true)).toBe("no");
    expect(judge({ members: [member("pg3", "leader")] }, kept, true)).toBe("yes");
  });
  it("posts the candidate with the leader, and is valid shell", () => {
    const s = handOverScript([{ name: "pg1", address: "10.0.0.1" }, { name: "pg3", address: "10.0.0.3" }], 8008);
    expect(s).toContain(`{"leader": "%s", "candidate": "%s"}`);
    expect(spawnSync("sh", ["-n"], { input: `set -eu\n${s}`, encoding: "utf8" }).stderr).toBe("");
  });
});

// The script as written, against a stand-in curl: Patroni's answers to POST /switchover on a loaded host are
// "status unknown" (503) while the switchover goes on, or a refusal while the candidate lags; neither may fail
// the deploy while a retry can still hand over, and a leader that never moves must.
describe("PostgreSQL scale-in hand-over: Patroni's answers", () => {
  const fs = require("fs") as typeof import("fs");
  const os = require("os") as typeof import("os");
  const path = require("path") as typeof import("path");
  const nodes = [{ name: "pg1", address: "10.0.0.1" }, { name: "pg3", address: "10.0.0.3" }];
  const cluster = (leader: string) => JSON.stringify({ members: ["pg1", "pg2", "pg3"].map((n) => member(n, n === leader ? "leader" : "replica")) });

  function run(mode: "unknown" | "refuse-once" | "never") {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-handover-"));
    fs.writeFileSync(path.join(dir, "cluster"), cluster("pg2"));
    fs.writeFileSync(path.join(dir, "posts"), "");
    // GET /cluster prints the state; POST /switchover counts, and moves the leader to the candidate as the mode says
    fs.writeFileSync(path.join(dir, "curl"), [
      "#!/bin/bash",
      `d=${dir}`,
      'case "$*" in',
      "  *switchover*)",
      '    echo x >> "$d/posts"; n=$(wc -l < "$d/posts")',
      `    case ${mode} in`,
      `      unknown) printf '%s' '${cluster("pg3")}' > "$d/cluster"; last='Switchover status unknown (HTTP 503)';;`,
      `      refuse-once) if [ "$n" -ge 2 ]; then printf '%s' '${cluster("pg1")}' > "$d/cluster"; last='Successfully switched over (HTTP 200)'; else last='candidate lags (HTTP 412)'; fi;;`,
      "      never) last='switchover is not possible (HTTP 412)';;",
      "    esac",
      // as curl -f does with an HTTP error: the old script failed the deploy on a 503 whose switchover went through
      '    echo "$last"; case " $* " in *" -sf "*|*" -f "*) case "$last" in *"HTTP 200"*) ;; *) exit 22;; esac;; esac;;',
      '  *) cat "$d/cluster";;',
      "esac",
    ].join("\n"), { mode: 0o755 });
    const r = spawnSync("bash", ["-c", `set -eu\n${handOverScript(nodes, 8008, 2, 0)}`],
      { encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    const posts = fs.readFileSync(path.join(dir, "posts"), "utf8").split("\n").filter(Boolean).length;
    fs.rmSync(dir, { recursive: true, force: true });
    return { status: r.status, posts, stderr: r.stderr };
  }

  it("a 503 'status unknown' whose switchover completes is success, with one request", () => {
    expect(run("unknown")).toMatchObject({ status: 0, posts: 1 });
  });
  it("a refusal is asked again, and the second switchover's success is success", () => {
    expect(run("refuse-once")).toMatchObject({ status: 0, posts: 2 });
  });
  it("a leader that never moves fails the step after the last try, naming what to do", () => {
    const r = run("never");
    expect(r.status).toBe(1);
    expect(r.posts).toBe(4);
    expect(r.stderr).toContain("switch over by hand");
  });
});
