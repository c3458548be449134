// The stack's config through the real CLI (no root needed; no host is contacted):
// - Pulumi.yaml's declared config accepts a stack that sets only what the README tells a user to
//   set (the prod stack file + the SSH key), so the CLI's own validation lets the program run;
// - secret values reach the CLI on stdin: no command line on this machine ever holds one, and
//   each value comes back exactly (a key keeps its final newline); setting the same config again
//   runs no `pulumi config set` at all.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { ConfigMap } from "@pulumi/pulumi/automation";
import { openStack, REPO } from "../../engine/automation";
import { leaks, sampleCommandLines } from "../support/leaks";

jest.setTimeout(10 * 60 * 1000);

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";
const PASSWORD = `Zq8/=\\'"$(id)\`x\`-k3yVal4eNotInArgv`;

/** The prod stack file's settings, as a user's stack has them. */
function prodSettings(): ConfigMap {
  const prod = (yaml.load(fs.readFileSync(path.join(REPO, "Pulumi.prod.yaml"), "utf8")) as { config: Record<string, unknown> }).config;
  return Object.fromEntries(Object.entries(prod).map(([k, v]) => [k, { value: typeof v === "string" ? v : JSON.stringify(v) }]));
}

describe("stack config through the real CLI", () => {
  let dir: string;
  const engine = () => ({ backendDir: path.join(dir, "backend"), passphrase: "stack-config-test" });

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-config-"));
    fs.mkdirSync(path.join(dir, "project"));
    fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(dir, "project", "Pulumi.yaml"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("secret values travel on stdin: no process's command line shows them, and they come back exactly", async () => {
    const config: ConfigMap = {
      ...prodSettings(),
      "hastack:sshPrivateKey": { value: KEY, secret: true },
      "hastack:passwords.postgresApp": { value: PASSWORD, secret: true },
    };
    const sampler = sampleCommandLines(20);
    let lines: string[];
    let stack;
    try {
      stack = await openStack({ stackName: "argv", config, workDir: path.join(dir, "project"), program: async () => ({}) }, engine());
    } finally {
      lines = sampler.stop();
    }
    // the sampler did see the CLI at work, so an empty result means something
    expect(lines.some((l) => /pulumi.* config set --stack argv --secret/.test(l))).toBe(true);
    expect(leaks("command lines", lines.join("\n"), [KEY, PASSWORD])).toEqual([]);
    const back = await stack.getAllConfig();
    expect(back["hastack:sshPrivateKey"]).toEqual({ value: KEY, secret: true });
    expect(JSON.parse(back["hastack:passwords"].value)).toEqual({ postgresApp: PASSWORD });
    const file = fs.readFileSync(path.join(dir, "project", "Pulumi.argv.yaml"), "utf8");
    expect(leaks("Pulumi.argv.yaml", file, [KEY, PASSWORD])).toEqual([]);

    // the CLI's own config checks accept a secret object set leaf by leaf
    expect((await stack.preview()).stdout).not.toMatch(/error/i);

    const again = sampleCommandLines(20);
    await openStack({ stackName: "argv", config, workDir: path.join(dir, "project"), program: async () => ({}) }, engine());
    // this stack's own: the sampler sees the whole machine, and CI's lab stream sets its lab stack's config meanwhile
    expect(again.stop().filter((l) => / config set --stack argv /.test(l))).toEqual([]);
  });

  it("a stack with only the prod stack file and the SSH key gets past the CLI's config checks into the program", async () => {
    const config = prodSettings();
    config["hastack:sshPrivateKey"] = { value: KEY, secret: true };
    let reached = false;
    const stack = await openStack({
      stackName: "prod", config, workDir: path.join(dir, "project"),
      program: async () => { reached = true; return {}; },
    }, engine());
    const pv = await stack.preview();
    expect(reached).toBe(true);
    expect(pv.stdout).not.toMatch(/missing configuration value/);
  });
});
