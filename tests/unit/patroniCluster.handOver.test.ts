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
