// Real-daemon checks of what a named Redis group (list form of hastack:redis) renders besides the single group's
// files: its own systemd units (systemd-analyze verify, as systemd would load them), its HAProxy config (haproxy -c)
// and its keepalived config (the hosts' own keepalived -t check). Needs root (haproxy -c and keepalived -t as on the hosts)
// and systemd-analyze (Debian's systemd package).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolveRedisGroups } from "../../components/redisSentinelGroup/args";
import { keepalivedValidateCommand } from "../../components/keepalived";
import { redisLayout, renderHaproxyCfg, renderHaproxyUnit, renderKeepalivedCheck, renderKeepalivedUnit, renderRedisKeepalived } from "../../components/redisSentinelGroup/render";

const SUBNET = "10.213.7.0/24";
const NODES = [41, 42, 43].map((n) => ({ name: `redis${n - 40}`, address: `10.213.7.${n}` }));
const SPECIAL = `jhYg/=\\F'"$`;
const [kv] = resolveRedisGroups([{ name: "kv-a", masterName: "kv-a", nodes: NODES, port: 6389, sentinelPort: 26389, haproxyPort: 6390,
  vip: "10.213.7.70", virtualRouterId: 60 }], SUBNET);

describe("a named Redis group's units and configs against the real tools", () => {
  let dir: string;
  beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-redis-groups-")); });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("systemd-analyze verify loads its HAProxy and keepalived units without a complaint", () => {
    const L = redisLayout("kv-a");
    const files = [[L.unitFiles!.haproxy, renderHaproxyUnit("kv-a")], [L.unitFiles!.keepalived, renderKeepalivedUnit("kv-a")]]
      .map(([p, text]) => { const f = path.join(dir, path.basename(p)); fs.writeFileSync(f, text); return f; });
    const r = spawnSync("systemd-analyze", ["verify", ...files], { encoding: "utf8", env: { ...process.env, SYSTEMD_LOG_LEVEL: "notice" } });
    // an unknown key is only a warning (exit 0): the output must be empty too
    expect({ status: r.status, out: (r.stdout + r.stderr).trim() }).toEqual({ status: 0, out: "" });
    // and the same check does complain about a unit with a misspelt key
    fs.writeFileSync(files[0], renderHaproxyUnit("kv-a").replace("KillMode=", "KilMode="));
    const bad = spawnSync("systemd-analyze", ["verify", files[0]], { encoding: "utf8" });
    expect(bad.stdout + bad.stderr).toMatch(/Unknown key 'KilMode'/);
  });

  it("haproxy -c accepts its haproxy.cfg (no admin socket, no daemon line: its unit runs it with -Ws)", () => {
    const f = path.join(dir, "redis-kv-a.cfg");
    fs.writeFileSync(f, renderHaproxyCfg(kv, SPECIAL));
    const r = spawnSync("haproxy", ["-c", "-f", f], { encoding: "utf8" });
    expect({ status: r.status, stderr: r.status === 0 ? "" : r.stderr + r.stdout }).toEqual({ status: 0, stderr: "" });
  });

  it.each([0, 1, 2])("keepalived -t accepts node %i's config of the group's own instance", (i) => {
    const check = path.join(dir, "check.sh");
    fs.writeFileSync(check, renderKeepalivedCheck(kv), { mode: 0o700 });
    const f = path.join(dir, `keepalived-${i}.conf`);
    fs.writeFileSync(f, renderRedisKeepalived(kv, i, SPECIAL).replace(redisLayout("kv-a").paths.keepalivedCheck, check));
    const r = spawnSync("sh", ["-euc", keepalivedValidateCommand()], { env: { ...process.env, NEW: f }, encoding: "utf8" });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
  });
});
