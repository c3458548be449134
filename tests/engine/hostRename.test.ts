// Renaming a host at the same address through the real engine and a real sshd on loopback (needs root): Pulumi
// creates the new-named steps, then deletes the old-named ones; the old deletes must not undo what the new ones did.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Stack } from "@pulumi/pulumi/automation";
import { changes } from "../../engine/automation";
import { connectionFor, putFile, runScript } from "../../components/common";
import { OWNER_DIR } from "../../components/common/owner";
import { openProbeStack, TestSshd } from "./sshd";

const PROJECT = "hastack-rename-probe";
const STACK = `rename${process.pid}`;
const MARKER = path.join(OWNER_DIR, `${PROJECT}.${STACK}`);

describe("a host renamed at the same address keeps what the stack set up on it (needs root: starts sshd on 127.0.0.1)", () => {
  let sshd: TestSshd;
  let stack: Stack;
  let target: string;
  let hostName = "app1";

  // one host, one config file and one "service" (a state file its delete removes, as serviceEnabled's disables the unit)
  const program = async () => {
    const conn = connectionFor({ name: hostName, address: "127.0.0.1" },
      { privateKey: pulumi.secret(sshd.privateKey), user: "root", port: sshd.port, hostKeys: { "127.0.0.1": sshd.hostKey } });
    const file = putFile(`svc-${hostName}-config`, { connection: conn, path: `${target}/svc.conf`, content: "setting = 1\n" }, {});
    runScript(`svc-${hostName}-service`, {
      connection: conn, create: `echo running > ${target}/svc.state`, delete: `rm -f ${target}/svc.state; echo stopped >> ${target}/stops.log`,
    }, { dependsOn: [file] });
    return {};
  };

  beforeAll(async () => {
    ({ sshd, stack, target } = await openProbeStack("rename", program, { stackName: STACK, projectName: PROJECT }));
  }, 300000);

  afterAll(() => {
    sshd?.stop();
    fs.rmSync(MARKER, { force: true });
  });

  const present = () => ({ config: fs.existsSync(`${target}/svc.conf`), service: fs.existsSync(`${target}/svc.state`) });

  it("the first up sets the host up and records its name for this stack on the host", async () => {
    expect((await stack.up()).summary.result).toBe("succeeded");
    expect(present()).toEqual({ config: true, service: true });
    expect(fs.readFileSync(MARKER, "utf8")).toBe("app1\n");
  });

  it("renaming it creates the new-named steps and deletes the old ones, whose deletes leave the config and the service", async () => {
    hostName = "web1";
    const up = await stack.up();
    expect(changes(up.summary.resourceChanges)).toEqual({ create: 2, delete: 2 });
    expect(present()).toEqual({ config: true, service: true });
    expect(fs.existsSync(`${target}/stops.log`)).toBe(false);
    expect(fs.readFileSync(MARKER, "utf8")).toBe("web1\n");
  });

  it("a second up changes nothing", async () => {
    expect(changes((await stack.up()).summary.resourceChanges)).toEqual({});
  });

  it("destroy under the new name still stops and removes what the stack set up", async () => {
    expect((await stack.destroy()).summary.result).toBe("succeeded");
    expect(present()).toEqual({ config: false, service: false });
    expect(fs.readFileSync(`${target}/stops.log`, "utf8")).toBe("stopped\n");
  });
});
