// Stack-level checks that span components: run at preview, before any resource exists.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { readStackConfig } from "../../stacks/config";
import { resolveDatacenter } from "../../stacks/datacenter";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const deb = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hastack-deb-")), "workspad.deb");
fs.writeFileSync(deb, "not really a deb");

/** The reference datacenter (Pulumi.prod.yaml's layout) as plain config. */
function prod(): Record<string, unknown> {
  return {
    subnet: "192.168.1.0/24",
    sshPrivateKey: KEY,
    postgres: { nodes: [{ name: "pg1", address: "192.168.1.130" }, { name: "pg2", address: "192.168.1.131" }, { name: "pg3", address: "192.168.1.132" }] },
    proxy: { nodes: [{ name: "px1", address: "192.168.1.140" }, { name: "px2", address: "192.168.1.141" }], vip: "192.168.1.200" },
    workspad: { nodes: [{ name: "wp1", address: "192.168.1.122" }, { name: "wp2", address: "192.168.1.123" }, { name: "wp3", address: "192.168.1.124" }], packagePath: deb },
    nginx: { nodes: [{ name: "ngx1", address: "192.168.1.127" }] },
    redis: { enabled: false },
  };
}

const resolve = (c: Record<string, unknown>) => resolveDatacenter(readStackConfig((k) => c[k]));

describe("stack config", () => {
  it("accepts the reference datacenter", () => {
    const r = resolve(prod());
    expect(r.postgres.nodes.map((n) => n.address)).toEqual(["192.168.1.130", "192.168.1.131", "192.168.1.132"]);
    expect(r.redis).toBeUndefined();
  });

  it("fails if the SSH key is missing", () => {
    const c = prod(); delete c.sshPrivateKey;
    expect(() => resolve(c)).toThrow("Invalid hastack:sshPrivateKey: got nothing; expected an SSH private key, set with `pulumi config set --secret hastack:sshPrivateKey < KEYFILE`.");
  });

  it("fails if the SSH key is not a private key, without showing it", () => {
    const c = prod(); c.sshPrivateKey = "ssh-ed25519 AAAAPUBLIC";
    expect(() => resolve(c)).toThrow("Invalid hastack:sshPrivateKey: got \"(a value that is not a private key; not shown)\"; expected a PEM or OpenSSH private key beginning with -----BEGIN … PRIVATE KEY-----.");
  });

  it("fails if the subnet is not CIDR", () => {
    const c = prod(); c.subnet = "192.168.1.0";
    expect(() => resolve(c)).toThrow("Invalid hastack:subnet: got \"192.168.1.0\"; expected an IPv4 subnet in CIDR form, such as 192.168.1.0/24.");
  });

  it("fails if two hosts of different sections share an address", () => {
    const c = prod();
    (c.workspad as any).nodes[0] = { name: "wp1", address: "192.168.1.130" };
    expect(() => resolve(c)).toThrow("Invalid hastack:workspad.nodes[0].address: got \"192.168.1.130\"; expected an address not already used by host \"pg1\" (hastack:postgres.nodes[0]); duplicate addresses are not allowed.");
  });

  it("fails if one host name is given two addresses", () => {
    const c = prod();
    (c.nginx as any).nodes[0] = { name: "pg1", address: "192.168.1.127" };
    expect(() => resolve(c)).toThrow("Invalid hastack:nginx.nodes[0].address: got \"192.168.1.127\"; expected 192.168.1.130, the address hastack:postgres.nodes[0] gives host \"pg1\" (one host, one address).");
  });

  it("fails if two sections listen on one port of a shared host", () => {
    const c = prod();
    (c.nginx as any).nodes[0] = { name: "wp1", address: "192.168.1.122" };
    (c.nginx as any).listenPort = 4430;
    expect(() => resolve(c)).toThrow("Invalid hastack:nginx.listenPort: got 4430; expected a port not already used on 192.168.1.122 by hastack:workspad.port.");
  });

  it("fails if the proxy and Redis sections share a host (both own haproxy.cfg)", () => {
    const c = prod();
    c.redis = { enabled: true, nodes: [{ name: "px1", address: "192.168.1.140" }, { name: "rd2", address: "192.168.1.151" }, { name: "rd3", address: "192.168.1.152" }], haproxyPort: 6390 };
    expect(() => resolve(c)).toThrow("Invalid hastack:redis.nodes[0]: got {\"name\":\"px1\",\"address\":\"192.168.1.140\"}; expected a host that hastack:proxy does not also use: both would own /etc/haproxy/haproxy.cfg.");
  });

  it("reads hastack:firewall with its defaults, and fails if it has an unknown key", () => {
    expect(readStackConfig((k) => prod()[k]).firewall).toEqual({ enabled: true, adminSources: [] });
    const c = prod(); c.firewall = { adminSources: ["10.0.0.0/8"], allow: ["0.0.0.0/0"] };
    expect(() => resolve(c)).toThrow('Invalid hastack:firewall.allow: got ["0.0.0.0/0"]; expected no such key; known keys are enabled, adminSources.');
  });

  it("fails if the proxy VIP is one of the hosts", () => {
    const c = prod(); (c.proxy as any).vip = "192.168.1.127";
    expect(() => resolve(c)).toThrow(/^Invalid hastack:proxy\.vip: got "192\.168\.1\.127"/);
  });
});
