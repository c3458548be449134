// The scale-in scripts as text: valid shell, the kept nodes and nothing else named, the password read from its file.
// Their behaviour against real Redis and Sentinels: tests/daemons/redisMembership.test.ts.
import { spawnSync } from "child_process";
import { forgetScript, handOverScript, MembershipParams } from "../../components/redisSentinelGroup/membership";

const P: MembershipParams = {
  nodes: [{ name: "rd1", address: "10.0.0.11" }, { name: "rd2", address: "10.0.0.12" }, { name: "rd3", address: "10.0.0.13" }],
  port: 6389, sentinelPort: 26389, masterName: "kv", passFile: "/etc/redis/hastack-kv-cli.pass",
};
const shellOk = (script: string) => spawnSync("sh", ["-n"], { input: `set -eu\n${script}`, encoding: "utf8" });

describe("Redis scale-in scripts", () => {
  it("are valid shell", () => {
    for (const s of [handOverScript(P), forgetScript(P)]) expect(shellOk(s).stderr).toBe("");
  });

  it("read hastack's password from its file, never from their own text", () => {
    for (const s of [handOverScript(P), forgetScript(P)]) {
      expect(s).toContain("REDISCLI_AUTH=$(cat '/etc/redis/hastack-kv-cli.pass')");
      expect(s).not.toMatch(/redis-cli[^\n]* -a /);
    }
  });

  it("hand-over: pauses the removed master's writes before the failover and makes it a replica before it unpauses", () => {
    const s = handOverScript(P);
    const at = (x: string) => { const i = s.indexOf(x); expect([x, i >= 0]).toEqual([x, true]); return i; };
    expect(at("CLIENT PAUSE")).toBeLessThan(at("SENTINEL FAILOVER kv"));
    expect(at("SENTINEL FAILOVER kv")).toBeLessThan(at("REPLICAOF \"$new\" 6389"));
    expect(s).toContain("trap 'r -h \"$master\" -p 6389 CLIENT UNPAUSE >/dev/null' EXIT");
    expect(s).toContain("wanted=' 10.0.0.11 10.0.0.12 10.0.0.13 '");
  });

  it("forget: tells the removed nodes to stop before it resets the kept Sentinels", () => {
    const s = forgetScript(P);
    expect(s.indexOf("SENTINEL REMOVE kv")).toBeGreaterThan(0);
    expect(s.indexOf("CONFIG SET masterauth")).toBeGreaterThan(0);
    expect(s.indexOf("SENTINEL REMOVE kv")).toBeLessThan(s.indexOf("SENTINEL RESET kv"));
    expect(s.indexOf("CLIENT KILL ID")).toBeLessThan(s.indexOf("SENTINEL RESET kv"));
  });

  it("forget: waits until each kept Sentinel sees the other kept nodes, as many as the list has less one", () => {
    expect(forgetScript(P)).toContain("'2 2'");
    expect(forgetScript({ ...P, nodes: [...P.nodes, { name: "rd4", address: "10.0.0.14" }] })).toContain("'3 3'");
    expect(forgetScript(P)).toMatch(/for a in 10\.0\.0\.11 10\.0\.0\.12 10\.0\.0\.13; do\n {2}if \[ -n "\$removed" \]; then \[ "\$\(r -h "\$a" -p 26389 SENTINEL RESET kv\)" = 1 \]/);
  });
});
