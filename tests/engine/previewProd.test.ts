// `npm run preview:prod` through the real engine (scripts/setup-engine.sh provides it; no root, no
// hosts: a preview connects to nothing): the prod plan has the reference datacenter's components
// and remote steps on every prod host, and no secret put into config shows in plaintext anywhere.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { EngineEvent } from "@pulumi/pulumi/automation";
import { readStateFiles, REPO } from "../../engine/automation";
import { leaks } from "../support/leaks";
import { PASSWORD_NAMES } from "../../stacks/secrets";
import { prodConfig, PreviewProdResult, previewProd, STACK } from "../../scripts/preview-prod";

const PROD_YAML = path.join(REPO, "Pulumi.prod.yaml");
const sha = (f: string) => crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex");

const nameOf = (urn: string) => urn.split("::").pop()!;

describe("npm run preview:prod: a real offline preview of the prod stack", () => {
  let r: PreviewProdResult;
  const prodBefore = sha(PROD_YAML);
  const cfg = prodConfig();
  const nodes = (key: string) => (JSON.parse(cfg[key].value).nodes as { name: string; address: string }[]);

  beforeAll(async () => {
    // throws (and so fails every test below) when the preview fails
    r = await previewProd({ passphrase: "preview-prod-test-passphrase" });
  }, 900000);

  afterAll(() => r?.cleanup());

  it("plans a fresh prod stack: only creates, as the summary and the engine events agree", () => {
    expect(r.stdout).toContain(`Previewing update (${STACK})`);
    expect(Object.keys(r.changeSummary)).toEqual(["create"]);
    const created = r.resources.filter((x) => x.op === "create" && !x.type.startsWith("pulumi:providers:"));
    expect(r.changeSummary.create).toBe(created.length);
    expect(r.resources.every((x) => x.op === "create")).toBe(true);
  });

  it("creates the reference datacenter's components; no Redis (disabled in prod)", () => {
    const count = (t: string) => r.resources.filter((x) => x.type === t).length;
    expect(count("pulumi:pulumi:Stack")).toBe(1);
    expect(count("hastack:stack:Datacenter")).toBe(1);
    expect(count("hastack:db:PatroniCluster")).toBe(1);
    expect(count("hastack:proxy:PgBouncerVipPair")).toBe(1);
    expect(count("hastack:app:WorksPadNode")).toBe(3);
    expect(count("hastack:edge:NginxBalancer")).toBe(1);
    expect(count("hastack:cache:RedisSentinelGroup")).toBe(0);
    expect(r.resources.filter((x) => /RedisSentinelGroup/.test(x.type))).toEqual([]);
    expect(r.resources.filter((x) => /RedisSentinelGroup|-cache-/.test(x.urn))).toEqual([]);
    // the random/tls plugins are replaced by supplied config when missing, so none of their resources
    if (!r.plugins.random) expect(r.resources.filter((x) => x.type.startsWith("random:"))).toEqual([]);
    if (!r.plugins.tls) expect(r.resources.filter((x) => x.type.startsWith("tls:"))).toEqual([]);
  });

  it("has remote commands on each of the 10 prod hosts, under the component that owns the host", () => {
    const sections: [string, string][] = [
      ["hastack:postgres", "hastack:db:PatroniCluster"], ["hastack:proxy", "hastack:proxy:PgBouncerVipPair"],
      ["hastack:workspad", "hastack:app:WorksPadNode"], ["hastack:nginx", "hastack:edge:NginxBalancer"],
    ];
    const hosts = sections.flatMap(([key, component]) => nodes(key).map((n) => ({ ...n, component })));
    expect(hosts.map((h) => h.address).sort()).toEqual([
      "192.168.1.122", "192.168.1.123", "192.168.1.124", "192.168.1.127", "192.168.1.128",
      "192.168.1.130", "192.168.1.131", "192.168.1.132", "192.168.1.140", "192.168.1.141",
    ]);
    const commands = r.resources.filter((x) => x.type === "command:remote:Command");
    for (const h of hosts) {
      const mine = commands.filter((x) => nameOf(x.urn).includes(`-${h.name}-`));
      expect({ host: h.name, atLeast5Commands: mine.length >= 5 }).toEqual({ host: h.name, atLeast5Commands: true });
      // URN type part is the parent chain: Datacenter$<component>$command:remote:Command, or the host's firewall table
      for (const c of mine) {
        const under = c.urn.includes("$hastack:net:HostFirewall$") ? "hastack:net:HostFirewall" : h.component;
        expect(c.urn).toContain(`hastack:stack:Datacenter$${under}$command:remote:Command::`);
      }
      // every host has the component's own steps, not only its firewall's
      expect(mine.some((c) => c.urn.includes(`$${h.component}$command:remote:Command::`))).toBe(true);
      // and the names are in the preview text a user reads
      expect(r.stdout).toContain(`::${nameOf(mine[0].urn)}]`);
    }
    expect(commands.map((c) => nameOf(c.urn))).toEqual(expect.arrayContaining(["dc-db-pg1-packages", "dc-proxy-px2-keepalived-cfg", "dc-app-wp3-wp3-health", "dc-edge-ngx1-site"]));
    // every WorksPad node gets its package copied over
    expect(r.resources.filter((x) => x.type === "command:remote:CopyToRemote").length).toBe(3);
  });

  it("keeps every secret it put in config out of the preview text, the engine events, the state and the config file", () => {
    // the SSH key, the passwords and every certificate key (when made offline)
    // a key per TLS host (WorksPad and nginx nodes) and the data-protection key
    const tlsKeys = nodes("hastack:workspad").length + nodes("hastack:nginx").length + 1;
    expect(r.secrets.length).toBe(1 + (r.plugins.random ? 0 : PASSWORD_NAMES.length) + (r.plugins.tls ? 0 : tlsKeys));
    const state = readStateFiles(r.backendDir);
    const stackConfigFile = path.join(r.workDir, `Pulumi.${STACK}.yaml`);
    const stackConfig = fs.readFileSync(stackConfigFile, "utf8");
    // "debug" is not in the SDK's severity type, but the engine does send it
    const isDebug = (e: EngineEvent) => (e.diagnosticEvent?.severity as string | undefined) === "debug";
    const found = [
      ...leaks("preview output", r.stdout, r.secrets),
      ...leaks("engine events", JSON.stringify(r.events.filter((e) => !isDebug(e))), r.secrets),
      ...leaks("state files", state, r.secrets),
      ...leaks(stackConfigFile, stackConfig, r.secrets),
      // Debug diagnostics (never printed without --debug) include the Node SDK's log of each
      // RegisterResource response, secret inputs in plaintext; the CLI replaces every secure config
      // value in them by "[secret]" (hence one secure value per password and key), but it cannot know
      // a value derived from one (a password quoted in a pgpass line or a connection string).
      ...leaks("debug diagnostics", JSON.stringify(r.events.filter(isDebug)), r.secrets, false),
    ];
    expect(found).toEqual([]);
    expect(r.stdout).not.toMatch(/PRIVATE KEY/);
    expect(JSON.stringify(r.events)).not.toMatch(/PRIVATE KEY/);
    expect(state).not.toMatch(/PRIVATE KEY/);
    expect(r.stdout).toContain("[secret]");
  });

  it("writes secrets into the temp stack config only as ciphertext, one secure value per password and key", () => {
    const doc = yaml.load(fs.readFileSync(path.join(r.workDir, `Pulumi.${STACK}.yaml`), "utf8")) as {
      encryptionsalt?: string; config: Record<string, any>;
    };
    expect(doc.encryptionsalt).toMatch(/^v1:/);
    const secure = { secure: expect.stringMatching(/^v1:/) };
    expect(doc.config["hastack:sshPrivateKey"]).toEqual(secure);
    if (!r.plugins.random) {
      // each password its own secure value, so the CLI can redact each from engine diagnostics
      expect(Object.keys(doc.config["hastack:passwords"]).sort()).toEqual([...PASSWORD_NAMES].sort());
      for (const v of Object.values(doc.config["hastack:passwords"])) expect(v).toEqual(secure);
    }
    if (!r.plugins.tls) {
      const c = doc.config["hastack:certificates"];
      expect(Object.keys(c.servers).sort()).toEqual(["ngx1", "ngx2", "wp1", "wp2", "wp3"]);
      for (const s of [...Object.values(c.servers), c.dataProtection] as any[]) expect(s).toEqual({ certPem: secure, keyPem: secure });
    }
    // everything else is the prod config itself, in plaintext
    expect(doc.config["hastack:subnet"]).toBe("192.168.1.0/24");
  });

  it("leaves the committed Pulumi.prod.yaml untouched", () => {
    expect(sha(PROD_YAML)).toBe(prodBefore);
    expect(r.workDir.startsWith(REPO)).toBe(false);
  });
});
