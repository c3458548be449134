// What a reviewer reads: `pulumi preview --diff` of a one-setting change to a deployed prod stack
// (hastack:proxy.defaultPoolSize) through the real CLI, the project's command provider and the
// policy pack. The stack is deployed against stand-in hosts: an `ssh` first on the engine's PATH that
// accepts every script without running it (and answers drift probes), so the state is the one a
// real `pulumi up` writes, with no host and no root. The diff must list only the steps the setting
// reaches, show no secret and no regenerated script.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EngineEvent, OpType } from "@pulumi/pulumi/automation";
import { changes, enginePaths } from "../../engine/automation";
import { openProdStack, ProdStack, prodConfig } from "../../scripts/preview-prod";
import { leaks } from "../support/leaks";

jest.setTimeout(20 * 60 * 1000);

const PROBE_MARK = "--hastack-probe-5f0c2e--"; // engine/command-provider/provider.ts: the probe answer follows it

/** A stand-in for every host: swallows stdin, runs nothing, answers a drift probe with a fixed state. */
const FAKE_SSH = `#!/bin/sh
for a in "$@"; do case "$a" in -M|-O) exit 0;; esac; done
for last in "$@"; do :; done
cat >/dev/null
case "$last" in *${PROBE_MARK}*) printf '\\n%s\\n%s\\n' '${PROBE_MARK}' 'stand-in host state';; esac
exit 0
`;

interface Step { op: OpType; urn: string; type: string; diffs: string[]; newInputs: Record<string, unknown> }

describe("a one-setting change previews as a short, readable diff (real CLI, stand-in hosts)", () => {
  let prod: ProdStack;
  let dir: string;
  let text = "";
  const steps: Step[] = [];
  const proxy = JSON.parse(prodConfig()["hastack:proxy"].value);
  const before: number = proxy.defaultPoolSize ?? 20;
  const after = before + 5;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-preview-diff-"));
    fs.writeFileSync(path.join(dir, "ssh"), FAKE_SSH, { mode: 0o755 });
    prod = await openProdStack({ passphrase: "preview-diff-passphrase", backendEnv: { PATH: [dir, ...enginePaths(), process.env.PATH].join(":") } });
    // pinned keys (any well-formed ones: the stand-in checks none), so no step waits for a key learnt on first use
    const ssh = { user: "root", port: 22, hostKeys: Object.fromEntries(allAddresses().map((a, i) =>
      [a, `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${String(i).padStart(2, "0")}PreviewDiffStandInHostKeyPreviewDiff`])) };
    await prod.stack.setConfig("hastack:ssh", { value: JSON.stringify(ssh) });
    const up = await prod.stack.up();
    expect(up.summary.result).toBe("succeeded");
    // the deployed stack is at rest: a plain re-run changes nothing
    expect(changes((await prod.stack.preview()).changeSummary)).toEqual({});
    await prod.stack.setConfig("hastack:proxy", { value: JSON.stringify({ ...proxy, defaultPoolSize: after }) });
    const pv = await prod.stack.preview({
      diff: true, color: "never",
      onOutput: (s) => { text += s; },
      onEvent: (ev: EngineEvent) => {
        const m = ev.resourcePreEvent?.metadata;
        if (m && m.op !== "same") steps.push({ op: m.op, urn: m.urn, type: m.type, diffs: m.diffs ?? [], newInputs: m.new?.inputs ?? {} });
      },
    });
    text = text || pv.stdout;
    // the whole diff, for a person to read (it holds no secret: see below)
    if (process.env.HASTACK_PREVIEW_DIFF_OUT) fs.writeFileSync(process.env.HASTACK_PREVIEW_DIFF_OUT, text);
  });

  afterAll(() => {
    prod?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  function allAddresses(): string[] {
    const cfg = prodConfig();
    return [...new Set(["hastack:postgres", "hastack:proxy", "hastack:workspad", "hastack:nginx"]
      .flatMap((k) => (JSON.parse(cfg[k].value).nodes as { address: string }[]).map((n) => n.address)))];
  }

  it("changes only PgBouncer's steps, on the proxy hosts", () => {
    expect(steps.length).toBeGreaterThan(0);
    const proxyNodes = (proxy.nodes as { name: string }[]).map((n) => n.name);
    for (const s of steps) {
      expect(s.urn).toContain("hastack:proxy:PgBouncerVipPair");
      expect(proxyNodes.some((n) => s.urn.split("::").pop()!.includes(`-${n}-`))).toBe(true);
    }
  });

  it("no step's script changes, and unchanged scripts are shown abbreviated, never whole", () => {
    for (const s of steps) expect(s.diffs.filter((d) => d === "create" || d === "update" || d === "delete")).toEqual([]);
    for (const s of steps) {
      const create = s.newInputs.create;
      if (typeof create !== "string") continue;
      const lines = create.split("\n").filter((l) => l.trim().length > 0);
      // the CLI prints the first lines of an unchanged script and "..."; a re-rendered one would be printed to its end
      if (lines.length >= 5) expect(text.includes(lines[lines.length - 1].trim())).toBe(false);
    }
  });

  it("the diff names exactly the changed steps, and its changed lines are the setting's old and new value", () => {
    const changedNames = new Set(steps.map((s) => s.urn.split("::").pop()!));
    // each resource block: "<marker> <type>: (<op>)", [id=…], [urn=…::<name>]
    const blocks = [...text.matchAll(/^\s*(?:~|\+-|-\+|\+|-)?\s*[\w:/.-]+: \(([\w-]+)\)\n(?:\s+\[id=[^\]]*\]\n)?\s+\[urn=[^\]]*::([^\]]+)\]/gm)];
    const printedChanged = new Set(blocks.filter((m) => m[1] !== "same").map((m) => m[2]));
    expect([...printedChanged].sort()).toEqual([...changedNames].sort());
    // inside a property, a changed line ("- x" / "+ x" without "name:") is a line of a file's content
    const contentLines = text.split("\nResources:\n")[0].split("\n").filter((l) => /^\s+[-+] /.test(l) && !/^\s+[-+] ?\w+\s*:/.test(l));
    expect(contentLines.length).toBeGreaterThan(0);
    for (const l of contentLines) expect(l.includes(String(before)) || l.includes(String(after))).toBe(true);
  });

  it("shows no secret value", () => {
    expect(leaks("preview --diff", text, prod.secrets)).toEqual([]);
    expect(text).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  });

  it("the policy pack checked the preview and passed it", () => {
    // the CLI lists the packs it ran under "Policy Packs run:" (with --diff) or as "hastack@v0.1.0"
    expect(text).toMatch(/Policy Packs run:\s+Name\s+Version\s+hastack\|local\|\S+\s+0\.1\.0|hastack@v0\.1\.0/);
    expect(text).not.toMatch(/\[mandatory\]/);
  });
});
