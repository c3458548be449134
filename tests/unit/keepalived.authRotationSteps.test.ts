// What the auth_pass change's quiesce step is given (keepalived/authRotationSteps.ts: the auth_pass the new file holds)
// and what the quiesce script (keepalived/authRotation.ts) then does on a host, run here with systemctl and ip stubbed.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { authPassInFile, authQuiesceScript, vrrpAuthPass, VRRP_TIMING_DEFAULTS, VRRP_V2_TIMING } from "../../components/keepalived";
import { renderKeepalivedConf as renderPgBouncerKeepalived } from "../../components/pgBouncerVipPair/render";
import { resolveNginxBalancerSettings } from "../../components/nginxBalancer/args";
import { renderBalancerKeepalived } from "../../components/nginxBalancer/render";
import { resolveRedisSentinelGroupSettings } from "../../components/redisSentinelGroup/args";
import { renderRedisKeepalived } from "../../components/redisSentinelGroup/render";

const VIP = "10.213.7.50";
const pgb = (timing: typeof VRRP_V2_TIMING, authPass: string) => renderPgBouncerKeepalived({ routerId: "px1", interface: "eth0", virtualRouterId: 51,
  priority: 200, authPass, vip: VIP, vipPrefix: 24, self: "10.213.7.21", peers: ["10.213.7.22"], unicast: true, checkIntervalSeconds: 2,
  checkFall: 2, checkRise: 2, timing });
const ngx = (vrrpVersion: 2 | 3, authPass: string) => renderBalancerKeepalived(resolveNginxBalancerSettings({
  nodes: [{ name: "lb1", address: "10.213.7.31" }, { name: "lb2", address: "10.213.7.32" }], vip: VIP, vrrpVersion,
  ...(vrrpVersion === 2 ? { advertIntervalSeconds: 1 } : {}) }, "10.213.7.0/24"), 0, authPass);

describe("authPassInFile: the quiesce step's stdin is the auth_pass the file holds", () => {
  it("PgBouncer (quoted raw secret), nginx and Redis (8 hex of its hash) with VRRPv2", () => {
    expect(authPassInFile(pgb(VRRP_V2_TIMING, "Ab3dE6gH"))).toBe("Ab3dE6gH");
    expect(authPassInFile(ngx(2, "efgh5678"))).toBe(vrrpAuthPass("efgh5678"));
    const s = resolveRedisSentinelGroupSettings({ enabled: true, nodes: [41, 42, 43].map((n) => ({ name: `rd${n}`, address: `10.213.7.${n}` })),
      vip: "10.213.7.70" }, "10.213.7.0/24")!;
    expect(authPassInFile(renderRedisKeepalived(s, 1, "ijkl9012"))).toBe(vrrpAuthPass("ijkl9012"));
  });
  it("empty with VRRPv3 (no auth_pass written), whatever the secret", () => {
    expect(VRRP_TIMING_DEFAULTS.vrrpVersion).toBe(3);
    expect(authPassInFile(pgb(VRRP_TIMING_DEFAULTS, "Ab3dE6gH"))).toBe("");
    expect(authPassInFile(ngx(3, "efgh5678"))).toBe("");
  });
});

describe("the quiesce script on a host (systemctl and ip stubbed)", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-quiesce-"));
    fs.mkdirSync(path.join(dir, "bin"));
    // systemctl: keepalived runs; every call is logged
    fs.writeFileSync(path.join(dir, "bin", "systemctl"), `#!/bin/sh\necho "$*" >> '${dir}/calls'\nexit 0\n`, { mode: 0o755 });
    // ip: this node holds the VIP when $HOLDER is set
    fs.writeFileSync(path.join(dir, "bin", "ip"),
      `#!/bin/sh\necho "1: lo    inet 127.0.0.1/8 scope host lo"\n[ -z "$HOLDER" ] || echo "2: eth0    inet ${VIP}/24 scope global secondary eth0"\n`, { mode: 0o755 });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Runs the step as runScript does (set -eu first) with the running file `running` and `stdin`. */
  function quiesce(running: string, stdin: string, holder = false): { status: number | null; calls: string[]; marker?: string } {
    const conf = path.join(dir, "keepalived.conf"), marker = path.join(dir, "marker");
    fs.writeFileSync(conf, running);
    for (const f of ["calls", "marker"]) fs.rmSync(path.join(dir, f), { force: true });
    const script = `set -eu\n${authQuiesceScript({ unit: "keepalived", confPath: conf, vip: VIP, marker })}`;
    const r = spawnSync("sh", ["-c", script], { input: stdin, encoding: "utf8",
      env: { ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, HOLDER: holder ? "1" : "" } });
    const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim() : undefined);
    return { status: r.status, calls: (read(path.join(dir, "calls")) ?? "").split("\n").filter(Boolean), marker: read(marker) };
  }

  it("VRRPv3: the file holds no auth_pass and the helper passes \"\": keepalived keeps running", () => {
    const r = quiesce(pgb(VRRP_TIMING_DEFAULTS, "Old12345"), authPassInFile(pgb(VRRP_TIMING_DEFAULTS, "New12345")));
    expect(r.status).toBe(0);
    expect(r.calls).toEqual([]);
    expect(r.marker).toBeUndefined();
  });

  it("VRRPv3 given the secret itself (what the helper must not pass): the backup would be stopped for nothing", () => {
    const r = quiesce(ngx(3, "efgh5678"), "efgh5678");
    expect(r.calls).toEqual(["is-active --quiet keepalived", "stop keepalived"]);
    expect(r.marker).toBe("stopped");
  });

  it("VRRPv2, the same auth_pass (an up without rotation): nothing", () => {
    for (const [running, next] of [[pgb(VRRP_V2_TIMING, "Ab3dE6gH"), pgb(VRRP_V2_TIMING, "Ab3dE6gH")], [ngx(2, "efgh5678"), ngx(2, "efgh5678")]]) {
      const r = quiesce(running, authPassInFile(next));
      expect(r.status).toBe(0);
      expect(r.calls).toEqual([]);
    }
  });

  it("VRRPv2, a new auth_pass: a backup stops, the holder only notes it holds the VIP", () => {
    for (const [running, next] of [[pgb(VRRP_V2_TIMING, "Old12345"), pgb(VRRP_V2_TIMING, "New12345")], [ngx(2, "old-pass"), ngx(2, "new-pass")]]) {
      const backup = quiesce(running, authPassInFile(next));
      expect(backup.status).toBe(0);
      expect(backup.calls).toEqual(["is-active --quiet keepalived", "stop keepalived"]);
      expect(backup.marker).toBe("stopped");
      const holder = quiesce(running, authPassInFile(next), true);
      expect(holder.calls).toEqual(["is-active --quiet keepalived"]);
      expect(holder.marker).toBe("holder");
    }
  });
});
