// The real Pulumi CLI drives remote commands against a real sshd on loopback (needs root):
// update vs replace, delete with the old command, secrets kept out of state and output.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Stack } from "@pulumi/pulumi/automation";
import { changes, readStateFiles } from "../../engine/automation";
import { openProbeStack, TestSshd } from "./sshd";

const SECRET = `jhYg/=\\F'"$-probe-secret`;

describe("command:remote through the real engine (needs root: starts sshd on 127.0.0.1)", () => {
  let sshd: TestSshd;
  let stack: Stack;
  let target: string;
  let backendDir: string;
  let script = "create-v1";
  let trigger = "t1";

  const program = async () => {
    const connection = { host: "127.0.0.1", port: sshd.port, user: "root", privateKey: pulumi.secret(sshd.privateKey), hostKey: sshd.hostKey };
    const file = new command.remote.Command("probe-file", {
      connection,
      create: `# ${script}\nset -eu\numask 077\ncat > ${target}/secret.txt\necho ${script} >> ${target}/runs.log`,
      delete: `rm -f ${target}/secret.txt; echo deleted >> ${target}/runs.log`,
      stdin: pulumi.secret(SECRET),
      logging: "none",
    });
    const restart = new command.remote.Command("probe-restart", {
      connection,
      create: `echo restart-${trigger} >> ${target}/runs.log; echo restarted`,
      triggers: [trigger],
    }, { dependsOn: [file] });
    return { restartOut: restart.stdout };
  };

  beforeAll(async () => {
    ({ sshd, stack, target, backendDir } = await openProbeStack("probe", program));
  }, 300000);

  afterAll(async () => {
    sshd?.stop();
  });

  const runs = () => fs.readFileSync(path.join(target, "runs.log"), "utf8").trim().split("\n");

  it("creates over SSH, writes stdin to the host with mode 0600, and keeps the secret out of state and output", async () => {
    let out = "";
    const up = await stack.up({ onOutput: (s) => (out += s) });
    expect(up.summary.result).toBe("succeeded");
    expect(fs.readFileSync(path.join(target, "secret.txt"), "utf8")).toBe(SECRET);
    expect(fs.statSync(path.join(target, "secret.txt")).mode & 0o777).toBe(0o600);
    expect(up.outputs.restartOut.value).toBe("restarted");
    // the state file as the backend stores it (exportStack would decrypt secrets for us)
    const state = readStateFiles(backendDir);
    expect(state).toContain("ciphertext");
    expect(state).not.toContain("probe-secret");
    expect(state).not.toContain("BEGIN OPENSSH PRIVATE KEY");
    expect(out).not.toContain("probe-secret");
  });

  it("a second up changes nothing and runs nothing on the host", async () => {
    const before = runs().length;
    const up = await stack.up();
    expect(changes(up.summary.resourceChanges)).toEqual({});
    expect(runs().length).toBe(before);
  });

  it("refresh reads state back without running anything on the host", async () => {
    const before = runs().length;
    const r = await stack.refresh();
    expect(r.summary.result).toBe("succeeded");
    expect(changes(r.summary.resourceChanges)).toEqual({});
    expect(runs().length).toBe(before);
  });

  it("a changed script is an update that runs on the host, not a replacement", async () => {
    script = "create-v2";
    const pv = await stack.preview();
    expect(changes(pv.changeSummary)).toEqual({ update: 1 });
    const up = await stack.up();
    expect(changes(up.summary.resourceChanges)).toEqual({ update: 1 });
    expect(runs()).toContain("create-v2");
    expect(runs()).not.toContain("deleted");
  });

  it("a changed trigger replaces the resource and runs create again", async () => {
    trigger = "t2";
    const up = await stack.up();
    expect(changes(up.summary.resourceChanges)).toEqual({ replace: 1 });
    expect(runs()).toContain("restart-t2");
  });

  it("destroy runs the delete command recorded in state", async () => {
    const d = await stack.destroy();
    expect(d.summary.result).toBe("succeeded");
    expect(fs.existsSync(path.join(target, "secret.txt"))).toBe(false);
    expect(runs()).toContain("deleted");
  });
});
