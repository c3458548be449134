// The Redis group's password rotation (redisSentinelGroup/rotation.ts), the VRRPv2 auth_pass change
// (keepalived/authRotation.ts), and the proof that a VRRPv3 pair's keepalived secret changes no file.
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import { renderKeepalivedConf as renderPgBouncerKeepalived } from "../../components/pgBouncerVipPair/render";
import { resolveNginxBalancerSettings } from "../../components/nginxBalancer/args";
import { renderBalancerKeepalived } from "../../components/nginxBalancer/render";
import { resolveRedisSentinelGroupSettings } from "../../components/redisSentinelGroup/args";
import { renderRedisKeepalived, sentinelAuthPass, checkAuthPass } from "../../components/redisSentinelGroup/render";
import { rotationScript, rotationStdin, sentinelPeerPass } from "../../components/redisSentinelGroup/rotation";
import { authApplyScript, authQuiesceScript, authResumeScript } from "../../components/keepalived/authRotation";
import { VRRP_TIMING_DEFAULTS, VRRP_V2_TIMING } from "../../components/keepalived/timing";

const INTERNAL = `jhYg/=\\F'"$ x`;
const APP = `app'"/=$\\pw`;
const P = { appUser: "app", masterName: "hastack" };
const hash = (v: string) => createHash("sha256").update(v).digest("hex");
const parses = (script: string) => spawnSync("sh", ["-n"], { input: script }).status;

describe("Redis password rotation: the commands each phase sends", () => {
  it("add: every user and Sentinel's default user gain the new password's hash; nothing in clear but the login to try", () => {
    const add = rotationStdin("add", P, INTERNAL, APP).split("\n");
    expect(add).toEqual([
      `redis ACL SETUSER default #${hash(INTERNAL)}`,
      `redis ACL SETUSER app #${hash(APP)}`,
      `redis ACL SETUSER hastack-sentinel #${hash(sentinelAuthPass(INTERNAL))}`,
      `redis ACL SETUSER hastack-check #${hash(checkAuthPass(INTERNAL))}`,
      `sentinel ACL SETUSER default #${hash(INTERNAL)} #${hash(sentinelPeerPass(INTERNAL))}`,
      "sentinel SENTINEL FLUSHCONFIG",
      `new ${INTERNAL}`,
      "",
    ]);
  });

  it("switch: masterauth quoted for redis-cli's parser, Sentinel's logins as derived hex (Sentinel writes them back unquoted)", () => {
    expect(rotationStdin("switch", P, INTERNAL, APP).split("\n")).toEqual([
      `redis CONFIG SET masterauth "jhYg/=\\\\F'\\"$ x"`,
      `sentinel SENTINEL SET hastack auth-pass ${sentinelAuthPass(INTERNAL)}`,
      `sentinel SENTINEL CONFIG SET sentinel-pass ${sentinelPeerPass(INTERNAL)}`,
      `new ${INTERNAL}`,
      "",
    ]);
    expect(sentinelPeerPass(INTERNAL)).toMatch(/^[0-9a-f]{64}$/);
    expect(sentinelPeerPass(INTERNAL)).not.toBe(sentinelAuthPass(INTERNAL));
  });

  it("drop: every user keeps exactly its new password (resetpass first, in one command)", () => {
    const drop = rotationStdin("drop", P, INTERNAL, APP);
    expect(drop).toContain(`redis ACL SETUSER default resetpass #${hash(INTERNAL)}\n`);
    expect(drop).toContain(`redis ACL SETUSER app resetpass #${hash(APP)}\n`);
    expect(drop).toContain(`sentinel ACL SETUSER default resetpass #${hash(INTERNAL)} #${hash(sentinelPeerPass(INTERNAL))}\n`);
    expect(drop).not.toContain(APP);
  });

  it("fails if a password holds a line break (one command per line)", () => {
    expect(() => rotationStdin("add", P, "a\nb", APP)).toThrow(/line break/);
  });

  it("the script holds no secret, parses, and sends the commands on redis-cli's stdin, never in argv", () => {
    const script = rotationScript(6380, 26379, "/etc/redis/hastack-cli.pass");
    expect(parses(script)).toBe(0);
    expect(script).not.toContain("jhYg");
    expect(script).toContain(`redis-cli -h 127.0.0.1 -p "$1" < "$T/cmds"`);
    // a node without the password file (first deploy, a new node) does nothing
    expect(script.split("\n")[0]).toBe("if [ ! -s '/etc/redis/hastack-cli.pass' ]; then cat >/dev/null; echo 'no password file yet: nothing to rotate here'; exit 0; fi");
  });
});

describe("keepalived secrets", () => {
  const pair = (vrrpVersion: 2 | 3) => resolveNginxBalancerSettings({ nodes: [{ name: "lb1", address: "10.213.7.31" }, { name: "lb2", address: "10.213.7.32" }],
    vip: "10.213.7.60", vrrpVersion, ...(vrrpVersion === 2 ? { advertIntervalSeconds: 1 } : {}) }, "10.213.7.0/24");
  const pgb = (timing: typeof VRRP_V2_TIMING, authPass: string) => renderPgBouncerKeepalived({ routerId: "px1", interface: "eth0", virtualRouterId: 51,
    priority: 200, authPass, vip: "10.213.7.50", vipPrefix: 24, self: "10.213.7.21", peers: ["10.213.7.22"], unicast: true, checkIntervalSeconds: 2,
    checkFall: 2, checkRise: 2, timing });

  it("VRRPv3 (the nginx and PgBouncer pairs' default): a new nginxKeepalived/proxyKeepalived renders the same file, so nothing is written or reloaded", () => {
    expect(VRRP_TIMING_DEFAULTS.vrrpVersion).toBe(3);
    for (const i of [0, 1]) expect(renderBalancerKeepalived(pair(3), i, "old-pass")).toBe(renderBalancerKeepalived(pair(3), i, "new-pass"));
    expect(pgb(VRRP_TIMING_DEFAULTS, "Old12345")).toBe(pgb(VRRP_TIMING_DEFAULTS, "New12345"));
    expect(pgb(VRRP_TIMING_DEFAULTS, "Old12345")).not.toContain("auth_pass");
  });

  it("VRRPv2 (the Redis VIP always; nginx/PgBouncer with vrrpVersion 2): the password is on the wire and in the file", () => {
    expect(renderBalancerKeepalived(pair(2), 0, "old-pass")).not.toBe(renderBalancerKeepalived(pair(2), 0, "new-pass"));
    expect(pgb(VRRP_V2_TIMING, "Old12345")).toContain('auth_pass "Old12345"');
    const s = resolveRedisSentinelGroupSettings({ enabled: true, nodes: [41, 42, 43].map((n) => ({ name: `rd${n}`, address: `10.213.7.${n}` })),
      vip: "10.213.7.70" }, "10.213.7.0/24")!;
    expect(renderRedisKeepalived(s, 0, "a")).toMatch(/version 2\n[\s\S]*auth_pass [0-9a-f]{8}\n/);
  });

  it("the Redis VIP's three steps parse, hold no secret, and act only on the marker the quiesce step left", () => {
    const p = { unit: "hastack-redis-keepalived-kv", confPath: "/etc/keepalived/redis-kv.conf", vip: "10.213.7.70" };
    for (const script of [authQuiesceScript(p), authApplyScript(p), authResumeScript(p)]) expect(parses(script)).toBe(0);
    expect(authQuiesceScript(p)).toContain("grep -qF ' 10.213.7.70/'");
    expect(authQuiesceScript(p)).toContain("echo stopped > '/run/hastack-hastack-redis-keepalived-kv.auth-rotation'; systemctl stop hastack-redis-keepalived-kv");
    expect(authApplyScript(p).split("\n")[0]).toBe(`if [ "$(cat '/run/hastack-hastack-redis-keepalived-kv.auth-rotation' 2>/dev/null)" != holder ]; then exit 0; fi`);
    expect(authResumeScript(p)).toContain("systemctl start hastack-redis-keepalived-kv");
  });
});
