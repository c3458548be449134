// A VRRPv2 pair's auth_pass changed (components/keepalived/authRotation.ts) on real keepalived 2.2: two network
// namespaces joined by a veth pair, each running keepalived on the file components/keepalived renders (VRRPv2, 1 s
// adverts, unicast peers, nopreempt), a VIP on the veth. systemd does not run here, so `systemctl` is a stand-in
// on PATH that starts, stops, HUPs and asks after that keepalived; the steps' scripts run inside each namespace.
// Who holds the VIP is sampled every 50 ms. First the way an up did it before (both files written, the nodes
// reloaded a few seconds apart, as parallel SSH steps on a loaded host are): both hold the VIP for a while. Then
// the three steps: never two holders, and afterwards the backup runs again and the holder still holds.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderKeepalivedConf, vrrpAuthPass } from "../../components/keepalived";
import { VRRP_V2_TIMING } from "../../components/keepalived/timing";
import { AuthRotationParams, authApplyScript, authQuiesceScript, authResumeScript } from "../../components/keepalived/authRotation";

const NS = ["hkrot1", "hkrot2"];
const ADDR = ["10.251.7.1", "10.251.7.2"];
const VIP = "10.251.7.100";
const UNIT = "hastack-test-keepalived";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
jest.setTimeout(4 * 60 * 1000);

const sh = (cmd: string, input?: string, env?: NodeJS.ProcessEnv) => {
  const r = spawnSync("sh", ["-c", cmd], { input, encoding: "utf8", env: env ?? process.env, timeout: 60000 });
  return { status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
};

describe("changing a VRRPv2 pair's auth_pass (real keepalived 2.2 in two network namespaces; needs root)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-ka-rotation-"));
  const bin = path.join(dir, "bin");
  const conf = (i: number) => path.join(dir, `node${i}`, "keepalived.conf");
  const env = (i: number) => ({ ...process.env, PATH: `${bin}:${process.env.PATH}`, HASTACK_TEST_NODE: String(i) });
  const holds = (i: number) => sh(`ip -n ${NS[i]} -o -4 addr show`).out.includes(` ${VIP}/`);
  const write = (i: number, pass: string) => fs.writeFileSync(conf(i), renderKeepalivedConf({
    instance: "hastack_test", interface: `veth-${NS[i]}`, virtualRouterId: 77, priority: 150 - 10 * i, selfAddress: ADDR[i],
    peers: [ADDR[1 - i]], vip: VIP, vipPrefix: 24, authPass: pass, timing: VRRP_V2_TIMING, checkScript: "/bin/true", checkIntervalSeconds: 1,
  }), { mode: 0o600 });
  /** Run a step's script on node i as the engine would (set -eu), inside its namespace. */
  const step = (i: number, script: string, input = "") => {
    const f = path.join(dir, `node${i}`, "step.sh");
    fs.writeFileSync(f, `set -eu\n${script}`);
    return sh(`ip netns exec ${NS[i]} sh ${f}`, input, env(i));
  };
  // the marker lives in /run on a host; both nodes share this machine's, so each gets its own
  const params = (i: number): AuthRotationParams => ({ unit: UNIT, confPath: conf(i), vip: VIP, marker: path.join(dir, `node${i}`, "marker") });
  const systemctl = (i: number, verb: string) => sh(`systemctl ${verb} ${UNIT}`, undefined, env(i));

  /** Samples who holds the VIP every 50 ms while `during` runs; returns how many samples saw both. */
  async function watch(during: () => Promise<void>): Promise<{ both: number; samples: number }> {
    let both = 0, samples = 0, stop = false;
    const poll = (async () => {
      while (!stop) {
        samples++;
        if (holds(0) && holds(1)) both++;
        await sleep(50);
      }
    })();
    try { await during(); await sleep(5000); } finally { stop = true; await poll; }
    return { both, samples };
  }
  const oneHolder = async () => {
    for (let t = 0; t < 200; t++) {
      if (holds(0) !== holds(1)) return;
      await sleep(100);
    }
    throw new Error("no single VIP holder within 20 s");
  };

  beforeAll(async () => {
    if (process.getuid && process.getuid() !== 0) throw new Error("daemon tests need root");
    if (spawnSync("sh", ["-c", "command -v keepalived"]).status !== 0) throw new Error("keepalived is not installed; this daemon test needs it");
    fs.mkdirSync(bin);
    // systemctl for one unit, per node (HASTACK_TEST_NODE): keepalived in that node's namespace, its pid files in the node's dir
    fs.writeFileSync(path.join(bin, "systemctl"), [
      "#!/bin/sh",
      `d=${dir}/node$HASTACK_TEST_NODE; ns=$(cat "$d/ns"); verb=$1; [ "$2" = --quiet ] && shift`,
      "running() { [ -s \"$d/pid\" ] && kill -0 \"$(cat \"$d/pid\")\" 2>/dev/null; }",
      "case $verb in",
      "  is-active) running ;;",
      "  start) running || keepalived --vrrp --namespace=\"$ns\" --use-file=\"$d/keepalived.conf\" --pid=\"$d/pid\" --vrrp_pid=\"$d/vrrp.pid\" --checkers_pid=\"$d/checkers.pid\";" +
        " for i in $(seq 50); do running && exit 0; sleep 0.1; done; exit 1 ;;",
      "  stop) running || exit 0; kill \"$(cat \"$d/pid\")\"; for i in $(seq 100); do running || { rm -f \"$d/pid\"; exit 0; }; sleep 0.1; done; exit 1 ;;",
      "  reload) running || { echo 'unit not active' >&2; exit 1; }; kill -HUP \"$(cat \"$d/pid\")\" ;;",
      "  *) echo \"unsupported: $*\" >&2; exit 1 ;;",
      "esac",
    ].join("\n"), { mode: 0o755 });
    sh(`for n in ${NS.join(" ")}; do ip netns del $n 2>/dev/null; done; true`);
    const setup = sh([
      ...NS.map((n) => `ip netns add ${n}`),
      `ip link add veth-${NS[0]} type veth peer name veth-${NS[1]}`,
      ...NS.map((n, i) => `ip link set veth-${n} netns ${n} && ip -n ${n} addr add ${ADDR[i]}/24 dev veth-${n} && ip -n ${n} link set veth-${n} up && ip -n ${n} link set lo up`),
    ].join(" && "));
    expect(setup).toMatchObject({ status: 0 });
    NS.forEach((n, i) => { fs.mkdirSync(path.dirname(conf(i))); fs.writeFileSync(path.join(dir, `node${i}`, "ns"), n); write(i, "first-pass"); });
    for (const i of [0, 1]) expect(systemctl(i, "start")).toMatchObject({ status: 0 });
    await sleep(5000);
    await oneHolder();
  });

  afterAll(() => {
    for (const i of [0, 1]) systemctl(i, "stop");
    sh(`for n in ${NS.join(" ")}; do ip netns del $n 2>/dev/null; done; true`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the files alone, reloaded 5 s apart: both nodes hold the VIP for a while", async () => {
    const seen = await watch(async () => {
      for (const i of [0, 1]) write(i, "second-p");
      expect(systemctl(0, "reload")).toMatchObject({ status: 0 });
      await sleep(5000);
      expect(systemctl(1, "reload")).toMatchObject({ status: 0 });
    });
    process.stderr.write(`keepalived auth_pass, files alone: both held the VIP in ${seen.both} of ${seen.samples} samples\n`);
    expect(seen.both).toBeGreaterThan(0);
    await oneHolder();
  });

  it("quiesce, the files, apply, resume (and the reload after): never two holders, then one holder and a running backup", async () => {
    const holder = holds(0) ? 0 : 1;
    const p = params;
    // the quiesce step's stdin: auth_pass as the file writes it (vrrpAuthPass of the secret)
    const newPass = vrrpAuthPass("third-pw");
    const outs: string[] = [];
    const seen = await watch(async () => {
      for (const i of [0, 1]) { const r = step(i, authQuiesceScript(p(i)), newPass); outs.push(r.out); expect(r.status).toBe(0); }
      for (const i of [0, 1]) write(i, "third-pw");
      for (const i of [0, 1]) { const r = step(i, authApplyScript(p(i))); outs.push(r.out); expect(r.status).toBe(0); }
      for (const i of [0, 1]) { const r = step(i, authResumeScript(p(i))); outs.push(r.out); expect(r.status).toBe(0); }
      for (const i of [0, 1]) expect(systemctl(i, "reload")).toMatchObject({ status: 0 });
    });
    process.stderr.write(`keepalived auth_pass, three steps: both held the VIP in ${seen.both} of ${seen.samples} samples; ${outs.join(" | ").replace(/\n/g, " ")}\n`);
    expect(seen.both).toBe(0);
    expect(outs.join("\n")).toMatch(/holds the VIP and reloads first/);
    expect(outs.join("\n")).toMatch(/keepalived stopped until/);
    expect(holds(holder)).toBe(true);
    expect(holds(1 - holder)).toBe(false);
    for (const i of [0, 1]) expect(systemctl(i, "is-active")).toMatchObject({ status: 0 });
    for (const i of [0, 1]) expect(fs.existsSync(params(i).marker!)).toBe(false);
    // the backup still takes over when the holder goes: the two agree on the new password
    expect(systemctl(holder, "stop")).toMatchObject({ status: 0 });
    for (let t = 0; t < 100 && !holds(1 - holder); t++) await sleep(100);
    expect(holds(1 - holder)).toBe(true);
    expect(systemctl(holder, "start")).toMatchObject({ status: 0 });
  });

  it("a second run with the same password does nothing", () => {
    const newPass = vrrpAuthPass("third-pw");
    for (const i of [0, 1]) {
      const p = params(i);
      for (const r of [step(i, authQuiesceScript(p), newPass), step(i, authApplyScript(p)), step(i, authResumeScript(p))]) expect(r).toEqual({ status: 0, out: "" });
      expect(systemctl(i, "is-active")).toMatchObject({ status: 0 });
    }
  });
});
