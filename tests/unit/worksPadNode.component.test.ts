import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { byName, installMocks, ofType, recorded, resetRecorded, resolve, settle } from "./mocks";
import type * as WP from "../../components/worksPadNode";

const PASSWORD = `jhYg/=\\F'"$`;
const TLS_KEY = "-----BEGIN PRIVATE KEY-----\ntls-key-of-wp1\n-----END PRIVATE KEY-----\n";
const DP_KEY = "-----BEGIN PRIVATE KEY-----\ndata-protection-key\n-----END PRIVATE KEY-----\n";
const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nssh\n-----END OPENSSH PRIVATE KEY-----\n";
const MS_KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmskey\n-----END PGP PUBLIC KEY BLOCK-----\n";

let mod: typeof WP;
let dir: string;
let deb: string;

interface Seen { name: string; type: string; parent?: pulumi.Resource; dependsOn: string[]; props: Record<string, any>; resource: pulumi.Resource }
const seen: Seen[] = [];
const names = new WeakMap<pulumi.Resource, string>();

beforeAll(async () => {
  await installMocks();
  mod = await import("../../components/worksPadNode");
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-wp-comp-"));
  deb = path.join(dir, "workspad-double_1.0_all.deb");
  fs.writeFileSync(deb, "deb bytes v1");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
beforeEach(() => { resetRecorded(); seen.length = 0; });

const record: pulumi.ResourceTransformation = (a) => {
  names.set(a.resource, a.name);
  const entry: Seen = { name: a.name, type: a.type, parent: a.opts.parent, dependsOn: [], props: a.props, resource: a.resource };
  seen.push(entry);
  // dependsOn may be a promise (trustFirst resolves once nginx is built): named once it resolves, before settle() returns
  // (flattened the way the SDK gathers them: arrays and promises nested in any order)
  const gather = async (d: any): Promise<pulumi.Resource[]> => Array.isArray(d) ? (await Promise.all(d.map(gather))).flat()
    : d instanceof Promise ? gather(await d) : pulumi.Output.isInstance(d) ? gather(await (d as any).promise()) : d ? [d] : [];
  void gather(a.opts.dependsOn).then((rs) => entry.dependsOn.push(...rs.map((r) => names.get(r) ?? "?")));
  return undefined;
};

function build(extra: Record<string, unknown> = {}, args: Partial<WP.WorksPadNodeArgs> = {}): WP.WorksPadNode {
  const settings = mod.resolveWorksPadNodeSettings({
    nodes: [{ name: "wp1", address: "10.213.7.31" }, { name: "wp2", address: "10.213.7.32" }], packagePath: deb, ...extra,
  }, "10.213.7.0/24");
  return new mod.WorksPadNode("workspad-wp1", {
    settings, nodeName: "wp1",
    ssh: { privateKey: pulumi.secret(SSH_KEY), user: "root", port: 22 },
    dbHost: pulumi.output("10.213.7.50"), dbPort: 6432, database: "workspad", dbUser: "workspad", dbPassword: pulumi.secret(PASSWORD),
    tls: { wp1: { certPem: "TLS-CERT-wp1", keyPem: pulumi.secret(TLS_KEY) }, wp2: { certPem: "TLS-CERT-wp2", keyPem: pulumi.secret("other") } },
    dataProtection: { certPem: "DP-CERT", keyPem: pulumi.secret(DP_KEY) },
    ...args,
  }, { transformations: [record] });
}

const P = "workspad-wp1-wp1";
const STEPS = ["prereqs", "package-dir", "package-copy", "preseed", "package-install", "appsettings", "tls-cert", "tls-key", "dp-cert", "dp-key",
  "enable-workspad", "restart", "health"].map((s) => `${P}-${s}`);
const deps = (n: string) => seen.find((s) => s.name === n)!.dependsOn;
const HEX64 = /^[0-9a-f]{64}$/;
/** Mocks receive secret inputs wrapped in Pulumi's secret envelope; the hashes inside are what a diff shows. */
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const unwrap = (v: any): any => (v && typeof v === "object" && Object.values(v).includes(SECRET_SIG) ? v.value : v);

describe("WorksPadNode wiring", () => {
  test("creates one component of type hastack:app:WorksPadNode and its steps named <name>-<host>-<step>", async () => {
    build();
    await settle();
    expect(ofType("hastack:app:WorksPadNode").map((r) => r.name)).toEqual(["workspad-wp1"]);
    expect(recorded.filter((r) => r.custom).map((r) => r.name).sort()).toEqual([...STEPS].sort());
    expect(byName(`${P}-package-copy`).type).toBe("command:remote:CopyToRemote");
  });

  test("every step is a child of the component", async () => {
    const c = build();
    await settle();
    const children = seen.filter((s) => s.resource !== c);
    expect(children.map((s) => s.name).sort()).toEqual([...STEPS].sort());
    for (const s of children) expect([s.name, s.parent]).toEqual([s.name, c]);
  });

  test("steps run in order: prerequisites → copy → preseed → install → appsettings and certificates → enable → restart → health", async () => {
    build();
    await settle();
    expect(deps(`${P}-prereqs`)).toEqual([]);
    expect(deps(`${P}-package-dir`)).toEqual([`${P}-prereqs`]);
    expect(deps(`${P}-package-copy`)).toEqual([`${P}-package-dir`]);
    expect(deps(`${P}-preseed`)).toEqual([`${P}-package-copy`]);
    expect(deps(`${P}-package-install`)).toEqual([`${P}-package-copy`, `${P}-preseed`]);
    expect(deps(`${P}-appsettings`)).toEqual([`${P}-package-install`]);
    for (const f of ["tls-cert", "tls-key", "dp-cert", "dp-key"]) expect(deps(`${P}-${f}`)).toEqual([`${P}-package-install`]);
    expect(deps(`${P}-enable-workspad`)).toEqual(["appsettings", "tls-cert", "tls-key", "dp-cert", "dp-key"].map((f) => `${P}-${f}`));
    expect(deps(`${P}-restart`)).toEqual([`${P}-enable-workspad`]);
    expect(deps(`${P}-health`)).toEqual([`${P}-restart`]);
  });

  test("with a CA: the trust store first, and the TLS pair only after it and after every other verifier's trust (trustFirst)", async () => {
    const nginxTrust = new pulumi.ComponentResource("hastack:test:Trust", "nginx-trust", {}, { transformations: [record] });
    build({}, { caCertPem: "CA-BUNDLE", trustFirst: Promise.resolve([nginxTrust]) });
    await settle();
    expect(deps(`${P}-ca-cert`)).toEqual([`${P}-prereqs`]);
    expect(deps(`${P}-ca-trust`)).toEqual([`${P}-ca-cert`]);
    for (const f of ["tls-cert", "tls-key"]) expect(deps(`${P}-${f}`)).toEqual([`${P}-package-install`, `${P}-ca-trust`, "nginx-trust"]);
    for (const f of ["dp-cert", "dp-key"]) expect(deps(`${P}-${f}`)).toEqual([`${P}-package-install`]);
    // the bundle is refused while the certificate this node serves now would lose its trust
    expect(byName(`${P}-ca-cert`).inputs.create).toContain(`openssl verify -CAfile "$NEW" "$file"`);
    expect(byName(`${P}-ca-cert`).inputs.create).toContain("'/opt/workspad/certs/tls.crt'");
    // the rebuild step is replaceable and its delete is guarded by its generation (the file stays after a replacement)
    expect(byName(`${P}-ca-trust`).inputs.delete).toContain("kept: replaced by a newer generation of this step");
  });

  test("the package is copied to /var/cache/hastack and reinstalled only when its sha256 changes", async () => {
    build();
    await settle();
    const hash = crypto.createHash("sha256").update("deb bytes v1").digest("hex");
    const copy = byName(`${P}-package-copy`).inputs;
    // a fixed name on the host: the local file name never reaches a shell there
    expect(copy.remotePath).toBe("/var/cache/hastack/workspad.deb");
    expect(await seen.find((x) => x.name === `${P}-package-copy`)!.props.source.path).toBe(deb);
    expect(copy.triggers).toEqual([hash]);
    expect(byName(`${P}-package-install`).inputs.triggers).toEqual([hash]);
    expect(byName(`${P}-appsettings`).inputs.triggers).toEqual([hash]);
  });

  test("restart and health gate are triggered by content hashes, never by contents", async () => {
    build();
    await settle();
    for (const n of ["restart", "health"]) {
      const t = unwrap(byName(`${P}-${n}`).inputs.triggers) as string[];
      expect(t).toHaveLength(6);
      for (const h of t) expect(h).toMatch(HEX64);
    }
    expect(byName(`${P}-restart`).inputs.create).toContain("systemctl restart 'workspad'");
    expect(byName(`${P}-health`).inputs.create).toContain("https://127.0.0.1:4430/health");
    expect(byName(`${P}-health`).inputs.create).toContain("timed out after 120s");
  });

  test("the password, the connection string and the private keys travel as secret stdin with nothing logged", async () => {
    build();
    await settle();
    const props = (n: string) => seen.find((s) => s.name === `${P}-${n}`)!.props;
    for (const n of ["preseed", "appsettings", "tls-key", "dp-key"]) {
      expect(await pulumi.isSecret(props(n).stdin)).toBe(true);
      expect(props(n).logging).toBe("none");
    }
    expect(await resolve(props("appsettings").stdin)).toBe(`Host=10.213.7.50;Port=6432;Database=workspad;Username=workspad;Password="jhYg/=\\F'""$"`);
    expect(await resolve(props("preseed").stdin)).toContain(`workspad workspad/db_password password ${PASSWORD}\n`);
    expect(await resolve(props("tls-key").stdin)).toBe(TLS_KEY);
    expect(byName(`${P}-tls-key`).inputs.create).toContain("chmod 0600");
    expect(byName(`${P}-dp-key`).inputs.create).toContain("/opt/workspad/certs/dataprotection.key");
    expect(byName(`${P}-tls-cert`).inputs.create).toContain("chmod 0644");
  });

  test("no secret appears in any command text", async () => {
    build({}, { caCertPem: "CA-CERT" });
    await settle();
    const texts = recorded.filter((r) => r.type === "command:remote:Command")
      .flatMap((r) => [r.inputs.create, r.inputs.update, r.inputs.delete].filter((x) => x !== undefined));
    expect(texts.length).toBeGreaterThan(10);
    // a secret command text would arrive as a secret envelope, not a string
    for (const t of texts) expect(typeof t).toBe("string");
    for (const t of texts) {
      for (const secret of [PASSWORD, "Password=", TLS_KEY, DP_KEY, "tls-key-of-wp1", "data-protection-key", SSH_KEY]) expect(t).not.toContain(secret);
    }
  });

  test("outputs the node address, port and name", async () => {
    const c = build({ port: 8443 });
    await settle();
    expect(await resolve(c.address)).toBe("10.213.7.31");
    expect(await resolve(c.port)).toBe(8443);
    expect(await resolve(c.name)).toBe("wp1");
  });

  test("prerequisites include the tools the steps use", async () => {
    build({ prerequisites: ["libicu72"] });
    await settle();
    expect(byName(`${P}-prereqs`).inputs.create).toContain("for p in 'curl' 'libicu72' 'openssl' 'python3'; do");
  });

  test("with microsoftRepo the key and apt source are written before the prerequisites", async () => {
    build({ microsoftRepo: true, microsoftRepoKey: MS_KEY });
    await settle();
    expect(byName(`${P}-msrepo-key`).inputs.create).toContain("/usr/share/keyrings/microsoft-prod.asc");
    expect(byName(`${P}-msrepo-source`).inputs.stdin).toContain("packages.microsoft.com/debian/12/prod bookworm main");
    expect(deps(`${P}-msrepo-source`)).toEqual([`${P}-msrepo-key`]);
    expect(deps(`${P}-prereqs`)).toEqual([`${P}-msrepo-key`, `${P}-msrepo-source`]);
  });

  test("a CA certificate goes to the system trust store and its hash restarts the server", async () => {
    build({}, { caCertPem: "CA-CERT" });
    await settle();
    expect(byName(`${P}-ca-cert`).inputs.create).toContain("/usr/local/share/ca-certificates/hastack-ca.crt");
    expect(byName(`${P}-ca-trust`).inputs.triggers[0]).toMatch(HEX64);
    expect(deps(`${P}-enable-workspad`)).toContain(`${P}-ca-trust`);
    expect(unwrap(byName(`${P}-restart`).inputs.triggers)).toHaveLength(7);
  });

  test("destroy stops and disables the services but leaves package and appsettings", async () => {
    build();
    await settle();
    // the last line acts; the lines before skip it on a host renamed since (components/common/owner.ts)
    expect(byName(`${P}-enable-workspad`).inputs.delete.split("\n").pop()).toBe("systemctl disable --now 'workspad' >/dev/null 2>&1 || true");
    for (const n of ["prereqs", "package-install", "appsettings", "preseed"]) expect(byName(`${P}-${n}`).inputs.delete).toBeUndefined();
  });

  test("fails if the node is not one of the configured nodes", () => {
    expect(() => build({}, { nodeName: "wp9" })).toThrow(`WorksPadNode workspad-wp1: nodeName "wp9" is not one of hastack:workspad.nodes (wp1, wp2).`);
  });

  test("fails if the node has no TLS certificate", () => {
    expect(() => build({}, { tls: {} })).toThrow(`WorksPadNode workspad-wp1: no TLS certificate given for node "wp1".`);
  });
});
