// A CA bundle change through the real engine and a real sshd on loopback (needs root): the trust step is replaced
// (its trigger is the bundle's hash), and Pulumi runs the new create before the old delete. The old delete (remove the
// bundle, rebuild the store) must not leave the host with no stack CA. Runs the WorksPad node's own systemTrust, with
// the file and the store rebuild pointed into a scratch directory instead of the machine's trust store.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Stack } from "@pulumi/pulumi/automation";
import { changes, openStack } from "../../engine/automation";
import { connectionFor } from "../../components/common";
import { OWNER_DIR } from "../../components/common/owner";
import { systemTrust } from "../../components/worksPadNode/worksPadNode";
import { certFixtures } from "../unit/certFixtures";
import { startSshd, TestSshd } from "./sshd";

const PROJECT = "hastack-catrust-probe";
const STACK = `catrust${process.pid}`;

describe("a CA bundle change leaves the host with the new bundle in its store (needs root: starts sshd on 127.0.0.1)", () => {
  const c = certFixtures();
  let sshd: TestSshd;
  let stack: Stack;
  let dir: string;
  let bundle = c.caCertPem;

  const program = async () => {
    const conn = connectionFor({ name: "app1", address: "127.0.0.1" },
      { privateKey: pulumi.secret(sshd.privateKey), user: "root", port: sshd.port, hostKeys: { "127.0.0.1": sshd.hostKey } });
    systemTrust("app1", {
      connection: conn, bundle, path: `${dir}/anchors/hastack-ca.crt`,
      // what update-ca-certificates does, in small: the store is every anchor concatenated
      update: `cat ${dir}/anchors/*.crt > ${dir}/store.pem 2>/dev/null || : > ${dir}/store.pem`,
      served: `printf '%s\\n%s\\n' 'this node' ${dir}/tls.crt`,
    }, {});
    return {};
  };
  const store = () => fs.readFileSync(`${dir}/store.pem`, "utf8");
  const anchor = () => fs.existsSync(`${dir}/anchors/hastack-ca.crt`) ? fs.readFileSync(`${dir}/anchors/hastack-ca.crt`, "utf8") : "missing";

  beforeAll(async () => {
    sshd = await startSshd();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-catrust-"));
    fs.writeFileSync(`${dir}/tls.crt`, c.serverCertPem);
    stack = await openStack({ stackName: STACK, projectName: PROJECT, config: {}, program,
      workDir: fs.mkdtempSync(path.join(os.tmpdir(), "hastack-catrust-ws-")) },
    { backendDir: fs.mkdtempSync(path.join(os.tmpdir(), "hastack-catrust-state-")), passphrase: "catrust-passphrase" });
  }, 300000);

  afterAll(() => {
    sshd?.stop();
    fs.rmSync(path.join(OWNER_DIR, `${PROJECT}.${STACK}`), { force: true });
  });

  it("the first up installs the old CA", async () => {
    expect((await stack.up()).summary.result).toBe("succeeded");
    expect(anchor()).toBe(c.caCertPem);
    expect(store()).toBe(c.caCertPem);
  });

  it("widening to old+new replaces the trust step, and the replaced step's delete leaves the new bundle in place", async () => {
    bundle = c.caCertPem + c.ca2CertPem;
    const up = await stack.up();
    // the file is updated in place, the rebuild step replaced (create the new, then delete the old)
    expect(changes(up.summary.resourceChanges)).toEqual({ update: 1, replace: 1 });
    expect(anchor()).toBe(bundle);
    expect(store()).toBe(bundle);
  });

  it("a bundle without the CA of the certificate served now is refused and the old one stays", async () => {
    bundle = c.ca2CertPem;
    await expect(stack.up()).rejects.toThrow(/refused: this node serves a certificate issued by CN = test CA, which hastack:certificates \(caCertPem and extraTrustedCaPem\) would no longer trust; rotate in three ups/);
    expect(anchor()).toBe(c.caCertPem + c.ca2CertPem);
    expect(store()).toBe(c.caCertPem + c.ca2CertPem);
  });

  it("once the host serves a certificate of the new CA, the old CA is dropped; a second up changes nothing", async () => {
    fs.writeFileSync(`${dir}/tls.crt`, c.server2CertPem);
    expect((await stack.up()).summary.result).toBe("succeeded");
    expect(anchor()).toBe(c.ca2CertPem);
    expect(store()).toBe(c.ca2CertPem);
    expect(changes((await stack.up()).summary.resourceChanges)).toEqual({});
  });

  it("destroy removes the bundle and rebuilds the store without it", async () => {
    expect((await stack.destroy()).summary.result).toBe("succeeded");
    expect(anchor()).toBe("missing");
    expect(store()).toBe("");
  });
});
