import * as pulumi from "@pulumi/pulumi";
import { byName, installMocks, isSecret, ofType, recorded, resolve, settle } from "./mocks";

const SUBNET = "10.213.7.0/24";
const SPECIAL = `jhYg/=\\F'"$`;
const KEY_PEM = "-----BEGIN PRIVATE KEY-----\nsecret-key-material\n-----END PRIVATE KEY-----\n";
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** What a transformation saw for each child: its parent and explicit dependencies. */
interface Seen { name: string; parent?: pulumi.Resource; dependsOn: string[]; props: Record<string, any> }

function unwrap(v: any): any {
  if (v && typeof v === "object" && SECRET_SIG in v) return v.value;
  return v;
}

async function build(pair: boolean) {
  const { NginxBalancer, resolveNginxBalancerSettings } = await import("../../components/nginxBalancer");
  const seen: Seen[] = [];
  const names = new Map<pulumi.Resource, string>();
  const settings = resolveNginxBalancerSettings(pair
    // VRRPv2: the form that carries auth_pass, whose handling as a secret these tests check (VRRPv3 writes none)
    ? { nodes: [{ name: "lb1", address: "10.213.7.31" }, { name: "lb2", address: "10.213.7.32" }], vip: "10.213.7.60", vrrpVersion: 2, advertIntervalSeconds: 1 }
    : { nodes: [{ name: "lb1", address: "10.213.7.31" }] }, SUBNET);
  const tls = Object.fromEntries(settings.nodes.map((n) => [n.name, { certPem: `cert-${n.name}`, keyPem: pulumi.secret(KEY_PEM) }]));
  const lb = new NginxBalancer(pair ? "edge" : "nginx", {
    settings,
    ssh: { privateKey: pulumi.secret("ssh-key"), user: "root", port: 22 },
    upstreams: [{ name: "wp1", address: pulumi.output("10.213.7.21"), port: 4430 }, { name: "wp2", address: "10.213.7.22", port: 4430 }],
    tls,
    caCertPem: pair ? "ca-pem" : undefined,
    upstreamTargets: pair ? [{ address: "10.213.7.21", port: 4430 }, { address: "10.213.7.22", port: 4430 }] : undefined,
    keepalivedAuthPass: pair ? pulumi.secret(SPECIAL) : undefined,
  }, {
    transformations: [(a) => {
      names.set(a.resource, a.name);
      if (!a.type.startsWith("command:")) return undefined;
      seen.push({ name: a.name, parent: a.opts.parent, dependsOn: [], props: a.props });
      const deps = a.opts.dependsOn;
      (seen[seen.length - 1] as any).rawDeps = Array.isArray(deps) ? deps : deps ? [deps] : [];
      return undefined;
    }],
  });
  const endpoint = await resolve(lb.endpoint);
  await settle();
  for (const s of seen) s.dependsOn = ((s as any).rawDeps as pulumi.Resource[]).map((r) => names.get(r) ?? "?");
  return { lb, seen, endpoint, names };
}

describe("NginxBalancer wiring", () => {
  beforeAll(async () => { await installMocks(); });
  beforeEach(() => { recorded.length = 0; });

  it("creates the per-host steps in copy → validate → swap → enable → reload → health order", async () => {
    const { seen, lb, endpoint } = await build(false);
    const order = ["packages", "cert", "key", "site", "enable-site", "nginx", "reload", "health"].map((s) => `nginx-lb1-${s}`);
    expect(seen.map((s) => s.name)).toEqual(order);
    for (let i = 1; i < order.length; i++) expect(seen[i].dependsOn).toEqual([order[i - 1]]);
    for (const s of seen) expect(s.parent).toBe(lb);
    expect(byName("nginx").type).toBe("hastack:edge:NginxBalancer");
    expect(endpoint).toBe("https://10.213.7.31:443");
    expect(await resolve(lb.caCertPem)).toBeUndefined();
  });

  it("validates the site with a staged nginx -t and the key against the certificate before swapping", async () => {
    await build(false);
    const site = byName("nginx-lb1-site").inputs.create as string;
    expect(site).toContain("nginx -t -c \"$T/nginx.conf\"");
    expect(site.indexOf("nginx -t")).toBeLessThan(site.indexOf("mv -f"));
    expect(byName("nginx-lb1-key").inputs.create).toContain("openssl pkey -in \"$NEW\" -pubout");
    expect(byName("nginx-lb1-reload").inputs.create).toContain("nginx -t && systemctl reload nginx");
    expect(byName("nginx-lb1-health").inputs.create).toContain("curl -sk -o /dev/null --max-time 3 https://127.0.0.1:443/");
  });

  it("restarts and re-checks on content hashes, not contents", async () => {
    await build(false);
    for (const n of ["nginx-lb1-reload", "nginx-lb1-health"]) {
      const t = unwrap(byName(n).inputs.triggers) as unknown[];
      expect(t).toHaveLength(4);
      for (const h of t) expect(unwrap(h)).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it("adds keepalived after nginx is healthy, a VIP health gate and the CA on a pair", async () => {
    const { seen, lb, endpoint, names: nameOf } = await build(true);
    const names = seen.map((s) => s.name);
    for (const h of ["lb1", "lb2"]) {
      expect(names).toEqual(expect.arrayContaining([`edge-${h}-ca`, `edge-${h}-keepalived-conf`, `edge-${h}-keepalived`, `edge-${h}-keepalived-reload`]));
      expect(seen.find((s) => s.name === `edge-${h}-keepalived-check`)!.dependsOn).toEqual([`edge-${h}-health`]);
      expect(seen.find((s) => s.name === `edge-${h}-keepalived-conf`)!.dependsOn)
        .toEqual([`edge-${h}-keepalived-check`, "edge-lb1-keepalived-quiesce", "edge-lb2-keepalived-quiesce"]);
      // the CA bundle is in force (trust-reload) before the site, which waits for the upstreams: it waits for nothing upstream
      expect(seen.find((s) => s.name === `edge-${h}-trust-reload`)!.dependsOn).toEqual([`edge-${h}-ca`]);
      expect(seen.find((s) => s.name === `edge-${h}-site`)!.dependsOn).toEqual([`edge-${h}-trust-reload`]);
    }
    expect(lb.trustApplied.map((r) => nameOf.get(r))).toEqual(["edge-lb1-trust-reload", "edge-lb2-trust-reload"]);
    // a bundle is refused while an upstream serves a certificate it would not trust, fetched by the name nginx verifies
    const ca = byName("edge-lb1-ca").inputs.create as string;
    expect(ca).toContain("for t in '10.213.7.21:4430' '10.213.7.22:4430'; do");
    expect(ca).toContain("-servername 'workspad'");
    expect(ca.indexOf(`openssl verify -CAfile "$NEW"`)).toBeLessThan(ca.indexOf("mv -f"));
    expect(byName("edge-lb1-trust-reload").inputs.create).toContain("if systemctl is-active --quiet nginx; then nginx -t && systemctl reload nginx; fi");
    expect(seen.find((s) => s.name === "edge-vip-health")!.dependsOn)
      .toEqual(["edge-lb1-health", "edge-lb2-health", "edge-lb1-keepalived-reload", "edge-lb2-keepalived-reload"]);
    for (const s of seen) expect(s.parent).toBe(lb);
    expect(endpoint).toBe("https://10.213.7.60:443");
    expect(await resolve(lb.caCertPem)).toBe("ca-pem");
    expect(byName("edge-lb1-keepalived-conf").inputs.create).toContain("keepalived -t -f \"$NEW\"");
    // the VIP check goes through nginx to WorksPad's health path, as a root-only file keepalived runs
    const check = byName("edge-lb1-keepalived-check");
    expect(unwrap(check.inputs.stdin)).toContain("'https://localhost:443/'");
    expect(check.inputs.create).toMatch(/chmod 0700/);
    expect(check.inputs.create).toContain(`sh -n "$NEW"`);
  });

  it("a changed auth_pass on a pair: every quiesce before either keepalived file, the resumes after both applies, each reload after its resume", async () => {
    const { seen } = await build(true);
    const dep = (n: string) => seen.find((s) => s.name === n)!.dependsOn;
    const all = (step: string) => ["lb1", "lb2"].map((h) => `edge-${h}-${step}`);
    // the names before, plus the three steps per node: no name changed
    expect(seen.map((s) => s.name).filter((n) => /keepalived/.test(n)).sort()).toEqual(["lb1", "lb2"].flatMap((h) =>
      ["keepalived-check", "keepalived-conf", "keepalived", "keepalived-reload", "keepalived-quiesce", "keepalived-apply", "keepalived-resume"]
        .map((step) => `edge-${h}-${step}`)).sort());
    for (const h of ["lb1", "lb2"]) {
      const n = (step: string) => `edge-${h}-${step}`;
      // both nodes serve (their checks follow their health) before either backup may stop
      expect(dep(n("keepalived-quiesce"))).toEqual(all("keepalived-check"));
      expect(dep(n("keepalived-apply"))).toEqual([n("keepalived")]);
      expect(dep(n("keepalived-resume"))).toEqual([n("keepalived"), ...all("keepalived-apply")]);
      expect(dep(n("keepalived-reload"))).toEqual([n("keepalived"), n("keepalived-resume")]);
      expect(byName(n("keepalived-quiesce")).inputs.create).toContain("grep -qF ' 10.213.7.60/'");
      for (const step of ["quiesce", "apply", "resume"]) expect(seen.find((s) => s.name === n(`keepalived-${step}`))!.parent).toBe(seen[0].parent);
    }
    // given what the file holds: keepalived's auth_pass, the secret's 8 hex (keepalived/render.ts), as a secret
    const { vrrpAuthPass } = await import("../../components/keepalived");
    const stdin = seen.find((s) => s.name === "edge-lb2-keepalived-quiesce")!.props.stdin;
    expect(await isSecret(stdin)).toBe(true);
    expect(await resolve(stdin)).toBe(vrrpAuthPass(SPECIAL));
    expect(unwrap(byName("edge-lb2-keepalived-conf").inputs.stdin)).toContain(`auth_pass ${vrrpAuthPass(SPECIAL)}\n`);
  });

  it("marks the key and keepalived config secret, logs nothing for them and never puts a secret in command text", async () => {
    const { seen } = await build(true);
    for (const n of ["edge-lb1-key", "edge-lb2-key", "edge-lb1-keepalived-conf"]) {
      const s = seen.find((x) => x.name === n)!;
      expect(await isSecret(s.props.stdin)).toBe(true);
      expect(byName(n).inputs.logging).toBe("none");
      expect(byName(n).inputs.create).toMatch(/chmod 0600/);
    }
    for (const c of ofType("command:remote:Command")) {
      for (const f of ["create", "update", "delete"]) {
        const text = JSON.stringify(unwrap(c.inputs[f]) ?? "");
        expect(text).not.toContain("secret-key-material");
        expect(text).not.toContain("jhYg");
      }
    }
    const ka = unwrap(byName("edge-lb1-keepalived-conf").inputs.stdin) as string;
    expect(ka).toContain("auth_pass ");
  });

  it("fails before creating anything when a node has no certificate", async () => {
    const { NginxBalancer, resolveNginxBalancerSettings } = await import("../../components/nginxBalancer");
    const settings = resolveNginxBalancerSettings({ nodes: [{ name: "lb1", address: "10.213.7.31" }] }, SUBNET);
    expect(() => new NginxBalancer("bad", {
      settings, ssh: { privateKey: "k", user: "root", port: 22 }, upstreams: [], tls: {},
    })).toThrow("Invalid tls.lb1: got nothing; expected a {certPem, keyPem} for balancer node lb1.");
  });

  it("fails if a pair has no keepalived secret", async () => {
    const { NginxBalancer, resolveNginxBalancerSettings } = await import("../../components/nginxBalancer");
    const settings = resolveNginxBalancerSettings({ nodes: [{ name: "lb1", address: "10.213.7.31" }, { name: "lb2", address: "10.213.7.32" }],
      vip: "10.213.7.60" }, SUBNET);
    expect(() => new NginxBalancer("bad2", {
      settings, ssh: { privateKey: "k", user: "root", port: 22 }, upstreams: [],
      tls: { lb1: { certPem: "c", keyPem: "k" }, lb2: { certPem: "c", keyPem: "k" } },
    })).toThrow("Invalid keepalivedAuthPass: got nothing; expected a secret when the balancer has a vip.");
  });
});
