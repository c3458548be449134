// Trust on first use through the real engine against a real sshd (needs root: starts sshd on
// 127.0.0.1): the key seen at first contact is recorded in state and enforced afterwards, so a
// host that presents another key later stops the deploy instead of being trusted again.
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Stack } from "@pulumi/pulumi/automation";
import { changes, readStateFiles } from "../../engine/automation";
import { ObservedHostKey } from "../../components/common/hostKey";
import { openProbeStack, TestSshd } from "./sshd";

jest.setTimeout(10 * 60 * 1000);

describe("SSH host keys recorded on first use (needs root: starts sshd on 127.0.0.1)", () => {
  let sshd: TestSshd;
  let stack: Stack;
  let backendDir: string;
  let trigger = "t1";

  const program = async () => {
    const observed = new ObservedHostKey("probe-host-key", { address: "127.0.0.1", port: sshd.port });
    const connection = { host: "127.0.0.1", port: sshd.port, user: "root", privateKey: pulumi.secret(sshd.privateKey), hostKey: observed.key };
    const run = new command.remote.Command("probe-run", { connection, create: "echo reached", triggers: [trigger] });
    return { key: observed.key, out: run.stdout };
  };

  beforeAll(async () => {
    ({ sshd, stack, backendDir } = await openProbeStack("tofu", program, { projectName: "tofuprobe" }));
  });

  afterAll(async () => {
    sshd?.stop();
    fs.rmSync(backendDir, { recursive: true, force: true });
  });

  it("records the host's key at first contact and connects with it checked", async () => {
    const up = await stack.up();
    expect(up.outputs.key.value).toBe(sshd.hostKey);
    expect(up.outputs.out.value).toBe("reached");
    expect(readStateFiles(backendDir)).toContain(sshd.hostKey.split(" ")[1]);
  });

  it("a second up changes nothing, and a refresh keeps the recorded key", async () => {
    expect(changes((await stack.up()).summary.resourceChanges)).toEqual({});
    await stack.refresh();
    expect((await stack.outputs()).key.value).toBe(sshd.hostKey);
  });

  it("a host that later presents another key stops the deploy", async () => {
    const other = await sshd.newHostKey();
    expect(other).not.toBe(sshd.hostKey);
    trigger = "t2"; // the command must connect again
    const err = await stack.up().then(() => undefined, (e: Error) => e);
    expect(err).toBeDefined();
    expect(String(err?.message)).toMatch(/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key/i);
    expect((await stack.outputs()).key.value).toBe(sshd.hostKey);
  });
});
