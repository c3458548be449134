// A state backend a team can share, with the real CLI and a real S3 protocol server on loopback
// (backend/s3server; no root): two sites' stacks keep their state in one bucket, one reads the
// other's outputs through a StackReference, the state outlives the server process, and a second
// `up` on a stack that is being updated stops at once on the lock, saying who holds it.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Stack } from "@pulumi/pulumi/automation";
import { EngineEnv, openStack } from "../../engine/automation";
import { getObject, listKeys, S3Server, startS3Server } from "../../engine/s3backend";

jest.setTimeout(10 * 60 * 1000);

const PROJECT = "sharedprobe";
const PASSPHRASE = "shared-backend-test-passphrase";
const stateKey = (stack: string) => `.pulumi/stacks/${PROJECT}/${stack}.json`;

describe("a shared S3 state backend (loopback S3 server, real CLI, no root)", () => {
  let dir: string;
  let s3: S3Server;
  // a value only dc1's program knows, exported as a secret
  const token = crypto.randomBytes(16).toString("hex");
  let dc1Vip = "10.20.1.100";

  /** One teammate's machine: its own PULUMI_HOME and project checkout, the shared bucket. */
  const machine = (name: string): EngineEnv & { workDir: string } => {
    const workDir = path.join(dir, name, "project");
    fs.mkdirSync(workDir, { recursive: true });
    return { backendDir: path.join(dir, name, "engine"), passphrase: PASSPHRASE, backendUrl: s3.backendUrl, env: s3.env, workDir };
  };
  const open = (stackName: string, program: () => Promise<Record<string, unknown>>, m = machine("alice")) =>
    openStack({ stackName, projectName: PROJECT, config: {}, program, workDir: m.workDir }, m);

  const dc1 = async () => ({ site: "dc1", vip: dc1Vip, token: pulumi.secret(token) });
  const dc2 = async () => {
    const peer = new pulumi.StackReference(`organization/${PROJECT}/dc1`);
    return { peerSite: peer.requireOutput("site"), peerVip: peer.requireOutput("vip"), peerToken: peer.requireOutput("token") };
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-shared-state-"));
    s3 = await startS3Server(path.join(dir, "s3"));
  });

  afterAll(async () => {
    await s3?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("keeps both sites' state in the bucket and none on the machine that ran the updates", async () => {
    await (await open("dc1", dc1)).up();
    await (await open("dc2", dc2)).up();
    const keys = await listKeys(s3.endpoint, s3.bucket, ".pulumi/stacks/");
    expect(keys).toEqual(expect.arrayContaining([stateKey("dc1"), stateKey("dc2")]));
    expect(fs.existsSync(path.join(dir, "alice", "engine", ".pulumi", "stacks"))).toBe(false);
    const state = await getObject(s3.endpoint, s3.bucket, stateKey("dc1"));
    expect(JSON.parse(state).checkpoint.latest.resources.length).toBeGreaterThan(0);
    // the secret output is stored encrypted with the stacks' passphrase
    expect(state).toContain("ciphertext");
    expect(state).not.toContain(token);
  });

  it("dc2 reads dc1's outputs through a StackReference, the secret one still secret", async () => {
    const out = await (await open("dc2", dc2)).outputs();
    expect(out.peerSite).toEqual({ value: "dc1", secret: false });
    expect(out.peerToken).toEqual({ value: token, secret: true });
    expect(await getObject(s3.endpoint, s3.bucket, stateKey("dc2"))).not.toContain(token);
  });

  it("a change dc1's update writes is what another machine's dc2 update reads next", async () => {
    dc1Vip = "10.20.1.101";
    await (await open("dc1", dc1)).up();
    // bob's machine has never seen either stack: everything it knows comes from the bucket
    const bob = machine("bob");
    fs.copyFileSync(path.join(dir, "alice", "project", "Pulumi.dc2.yaml"), path.join(bob.workDir, "Pulumi.dc2.yaml"));
    const up = await (await open("dc2", dc2, bob)).up();
    expect(up.outputs.peerVip.value).toBe("10.20.1.101");
  });

  it("keeps the state when the server restarts", async () => {
    await s3.stop();
    s3 = await startS3Server(path.join(dir, "s3"));
    const stack = await open("dc2", dc2);
    expect((await stack.workspace.listStacks()).map((s) => s.name).sort()).toEqual(["dc1", "dc2"]);
    expect((await stack.outputs()).peerVip.value).toBe("10.20.1.101");
  });

  describe("two updates of one stack at once", () => {
    let release: () => void = () => undefined;
    let first: Promise<unknown>;
    let second: Error | undefined;
    let locksWhileHeld: string[] = [];
    let firstSettled = false;
    let firstSettledBeforeSecondFailed = true;

    beforeAll(async () => {
      const started = new Promise<void>((resolve) => {
        // the first update holds the stack's lock (taken before the program runs) until released
        const held = new Promise<void>((r) => { release = r; });
        first = open("locked", async () => { resolve(); await held; return { n: 1 }; }).then((s) => s.up())
          .finally(() => { firstSettled = true; });
      });
      await started;
      locksWhileHeld = await listKeys(s3.endpoint, s3.bucket, ".pulumi/locks/");
      // a teammate's update of the same stack from another machine, with the same checkout
      const bob = machine("bob");
      fs.copyFileSync(path.join(dir, "alice", "project", "Pulumi.locked.yaml"), path.join(bob.workDir, "Pulumi.locked.yaml"));
      second = await open("locked", async () => ({ n: 2 }), bob).then((s) => s.up()).then(() => undefined, (e: Error) => e);
      firstSettledBeforeSecondFailed = firstSettled;
    });

    afterAll(() => release());

    it("the first holds a lock object in the bucket, where every machine sees it", () => {
      expect(locksWhileHeld).toHaveLength(1);
      expect(locksWhileHeld[0]).toMatch(new RegExp(`^\\.pulumi/locks/organization/${PROJECT}/locked/[0-9a-f-]+\\.json$`));
    });

    it("the second fails at once, without waiting, saying the stack is locked and by whom", () => {
      expect(second).toBeInstanceOf(Error);
      const msg = String(second?.message);
      expect(msg).toContain("the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.");
      expect(msg).toMatch(new RegExp(`created by \\S+@${os.hostname()} \\(pid \\d+\\)`));
      // it did not wait for the first: that one is held until the next test releases it
      expect(firstSettledBeforeSecondFailed).toBe(false);
    });

    it("the first completes, leaves no lock behind, and the stack takes the next update", async () => {
      release();
      const up = (await first) as Awaited<ReturnType<Stack["up"]>>;
      expect(up.outputs.n.value).toBe(1);
      expect(await listKeys(s3.endpoint, s3.bucket, ".pulumi/locks/")).toEqual([]);
      const again = await (await open("locked", async () => ({ n: 3 }))).up();
      expect(again.outputs.n.value).toBe(3);
    });
  });
});
