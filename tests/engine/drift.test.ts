// Drift through the real CLI against a real sshd on loopback (needs root): a managed file edited by
// hand shows in `preview --refresh` on the step that owns it (and on the restart step that loads it),
// `up --refresh` puts it back and restarts, and an undrifted host still gives zero changes.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { changes, readStateFiles } from "../../engine/automation";
import { contentHash } from "../../components/common/hash";
import { installPackages, putFile, restartOnChange } from "../../components/common/remote";
import { openProbeStack, TestSshd } from "./sshd";

const SECRET = `jhYg/=\\F'"$-drift-secret`;
const HAND_SECRET = "hand-edited-drift-secret";
const CONF = "listen_addr = 10.0.0.5\npool_size = 20\n";

describe("drift on managed files through the real engine (needs root: starts sshd on 127.0.0.1)", () => {
  let sshd: TestSshd;
  let stack: Stack;
  let target: string;
  let backendDir: string;

  const program = async () => {
    const connection = { host: "127.0.0.1", port: sshd.port, user: "root", privateKey: pulumi.secret(sshd.privateKey), hostKey: sshd.hostKey };
    const secret = pulumi.secret(SECRET);
    const conf = putFile("drift-conf", { connection, path: `${target}/app.conf`, content: CONF, mode: "0640" }, {});
    const secretFile = putFile("drift-secret", { connection, path: `${target}/app.secret`, content: secret, secret: true }, {});
    // installed on every machine that runs this suite (sshd is): a package probe must see no drift
    const pkgs = installPackages("drift-packages", connection, ["openssh-server"], {});
    restartOnChange("drift-restart", connection, `echo restart >> ${target}/runs.log`, [contentHash(CONF, secret)],
      { dependsOn: [conf, secretFile, pkgs] });
    // a restart step whose triggers cover no managed file owns nothing: no probe, never drift
    restartOnChange("drift-unrelated", connection, `echo unrelated >> ${target}/runs.log`, [contentHash("nothing")], { dependsOn: [pkgs] });
  };

  beforeAll(async () => {
    ({ sshd, stack, target, backendDir } = await openProbeStack("drift", program));
  }, 300000);

  afterAll(() => sshd?.stop());

  const runs = () => fs.readFileSync(path.join(target, "runs.log"), "utf8").trim().split("\n");
  /** Names of the resources an operation updates, from the engine's own events, and all its text. */
  const watch = () => {
    const updated: string[] = [];
    let text = "";
    return {
      updated, text: () => text,
      onOutput: (s: string) => { text += s; },
      onEvent: (e: EngineEvent) => {
        // debug diagnostics are the inline program's own SDK log of its RPCs (it echoes planned inputs
        // at preview); what the provider and the engine report is checked here
        if ((e.diagnosticEvent?.severity as string | undefined) !== "debug") text += JSON.stringify(e);
        const m = e.resourcePreEvent?.metadata;
        if (m && m.op === "update") updated.push(m.urn.split("::").pop()!);
      },
    };
  };

  it("an undrifted host: up, then up, refresh and preview --refresh all report zero changes", async () => {
    expect((await stack.up()).summary.result).toBe("succeeded");
    const restarts = runs().length;
    expect(changes((await stack.up()).summary.resourceChanges)).toEqual({});
    expect(changes((await stack.refresh()).summary.resourceChanges)).toEqual({});
    const w = watch();
    const pv = await stack.preview({ refresh: true, onEvent: w.onEvent });
    expect(changes(pv.changeSummary)).toEqual({});
    expect(w.updated).toEqual([]);
    expect(runs().length).toBe(restarts);
  }, 300000);

  it("a hand-edited file and secret file show as updates of their steps and of the restart step that loads them", async () => {
    fs.writeFileSync(path.join(target, "app.conf"), "listen_addr = 10.0.0.99\npool_size = 20\n");
    fs.writeFileSync(path.join(target, "app.secret"), HAND_SECRET);
    const restarts = runs().length;
    const w = watch();
    const pv = await stack.preview({ refresh: true, onEvent: w.onEvent, onOutput: w.onOutput });
    expect(w.updated.sort()).toEqual(["drift-conf", "drift-restart", "drift-secret"]);
    expect(changes(pv.changeSummary)).toEqual({ update: 3 });
    // a preview changes nothing on the host
    expect(fs.readFileSync(path.join(target, "app.conf"), "utf8")).toContain("10.0.0.99");
    expect(runs().length).toBe(restarts);
    // neither the managed secret nor what was hand-written over it reaches events, output or state
    for (const s of [w.text(), readStateFiles(backendDir)]) {
      expect(s).not.toContain(HAND_SECRET);
      expect(s).not.toContain("jhYg");
    }
  }, 300000);

  it("a mode changed by hand is drift too", async () => {
    fs.chmodSync(path.join(target, "app.conf"), 0o666);
    const w = watch();
    await stack.preview({ refresh: true, onEvent: w.onEvent });
    expect(w.updated).toContain("drift-conf");
  }, 300000);

  it("up --refresh puts both files back, restarts after the repair, and a plain up then changes nothing", async () => {
    const restarts = runs().length;
    const up = await stack.up({ refresh: true });
    expect(up.summary.result).toBe("succeeded");
    expect(fs.readFileSync(path.join(target, "app.conf"), "utf8")).toBe(CONF);
    expect(fs.statSync(path.join(target, "app.conf")).mode & 0o777).toBe(0o640);
    expect(fs.readFileSync(path.join(target, "app.secret"), "utf8")).toBe(SECRET);
    expect(runs().slice(restarts)).toEqual(["restart"]);
    expect(readStateFiles(backendDir)).not.toContain(HAND_SECRET);

    expect(changes((await stack.up()).summary.resourceChanges)).toEqual({});
    const w = watch();
    expect(changes((await stack.preview({ refresh: true, onEvent: w.onEvent })).changeSummary)).toEqual({});
    expect(w.updated).toEqual([]);
    expect(runs().length).toBe(restarts + 1);
  }, 300000);

  it("pulumi refresh alone records the drift, and the next plain up repairs it", async () => {
    fs.rmSync(path.join(target, "app.conf"));
    const r = await stack.refresh();
    expect(changes(r.summary.resourceChanges)).toEqual({ update: 2 });
    const up = await stack.up();
    expect(changes(up.summary.resourceChanges)).toEqual({ update: 2 });
    expect(fs.readFileSync(path.join(target, "app.conf"), "utf8")).toBe(CONF);
    expect(changes((await stack.up()).summary.resourceChanges)).toEqual({});
  }, 300000);

  it("destroy removes the files it wrote", async () => {
    expect((await stack.destroy()).summary.result).toBe("succeeded");
    expect(fs.existsSync(path.join(target, "app.conf"))).toBe(false);
  }, 300000);
});
