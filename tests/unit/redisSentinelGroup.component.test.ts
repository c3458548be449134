import * as pulumi from "@pulumi/pulumi";
import { redisQuote } from "../../components/redisSentinelGroup/render";
import { byName, installMocks, isSecret, ofType, recorded, resolve, settle } from "./mocks";

const SUBNET = "10.213.7.0/24";
const SPECIAL = `jhYg/=\\F'"$`;
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const NODES = [41, 42, 43].map((n) => ({ name: `redis${n - 40}`, address: `10.213.7.${n}` }));
const STEPS = ["password", "sentinel-password", "health-script", "redis-users", "redis-settings", "redis-conf", "redis", "redis-restart", "redis-ready",
  "sentinel-conf", "sentinel", "sentinel-settings"];
const HAPROXY_STEPS = ["haproxy-conf", "haproxy", "haproxy-reload"];
const ROTATE_STEPS = ["rotate-add", "rotate-switch", "rotate-drop"];
const KA_STEPS = ["keepalived-check", "keepalived-quiesce", "keepalived-conf", "keepalived", "keepalived-apply", "keepalived-resume", "keepalived-reload"];

interface Seen { name: string; parent?: pulumi.Resource; dependsOn: string[]; props: Record<string, any>; raw: pulumi.Resource[] }

const unwrap = (v: any): any => (v && typeof v === "object" && SECRET_SIG in v ? v.value : v);

async function build(name: string, vip?: string) {
  const { RedisSentinelGroup, resolveRedisSentinelGroupSettings } = await import("../../components/redisSentinelGroup");
  const seen: Seen[] = [];
  const names = new Map<pulumi.Resource, string>();
  const settings = resolveRedisSentinelGroupSettings({ enabled: true, nodes: NODES, vip }, SUBNET)!;
  const g = new RedisSentinelGroup(name, {
    settings,
    ssh: { privateKey: pulumi.secret("ssh-key"), user: "root", port: 22 },
    password: pulumi.secret(SPECIAL),
    sentinelPassword: pulumi.secret(`sentinel-${SPECIAL}`),
    keepalivedAuthPass: vip ? pulumi.secret("vrrp-" + SPECIAL) : undefined,
  }, {
    transformations: [(a) => {
      names.set(a.resource, a.name);
      if (a.type.startsWith("command:")) {
        const d = a.opts.dependsOn;
        seen.push({ name: a.name, parent: a.opts.parent, dependsOn: [], props: a.props, raw: (Array.isArray(d) ? d : d ? [d] : []) as pulumi.Resource[] });
      }
      return undefined;
    }],
  });
  await resolve(g.vip);
  await settle();
  for (const s of seen) s.dependsOn = s.raw.map((r) => names.get(r) ?? "?");
  const dep = (n: string) => seen.find((s) => s.name === n)!.dependsOn;
  return { g, seen, dep };
}

describe("RedisSentinelGroup wiring", () => {
  beforeAll(async () => { await installMocks(); });
  beforeEach(() => { recorded.length = 0; });

  it("creates every host's steps in order, restarts Redis one node at a time and gates on group health", async () => {
    const { g, seen, dep } = await build("cache");
    expect(byName("cache").type).toBe("hastack:cache:RedisSentinelGroup");
    const all = (st: string) => NODES.map((n) => `cache-${n.name}-${st}`);
    for (const [i, h] of NODES.entries()) {
      const n = (st: string) => `cache-${h.name}-${st}`;
      expect(dep(n("redis-survey"))).toEqual([n("packages")]);
      // a password rotation: every node accepts the new passwords before any switches, every node switches before any file changes
      expect(dep(n("rotate-add"))).toEqual([n("redis-survey")]);
      expect(dep(n("rotate-switch"))).toEqual(all("rotate-add"));
      expect(dep(n("password"))).toEqual([n("redis-survey"), ...all("rotate-switch")]);
      expect(dep(n("haproxy-conf"))).toEqual([n("redis-survey"), ...all("rotate-switch")]);
      for (let k = 1; k < HAPROXY_STEPS.length; k++) expect(dep(n(HAPROXY_STEPS[k]))).toEqual([n(HAPROXY_STEPS[k - 1])]);
      for (let k = 1; k < STEPS.length; k++) {
        const expected = n(STEPS[k - 1]);
        if (STEPS[k] === "redis-restart") {
          // one node at a time, and only once every HAProxy checks with its new login
          expect(dep(n(STEPS[k]))).toEqual([expected, ...(i === 0 ? [] : [`cache-${NODES[i - 1].name}-redis-ready`]), ...all("haproxy-reload")]);
        } else {
          expect(dep(n(STEPS[k]))).toEqual([expected]);
        }
      }
      expect(dep(n("health"))).toEqual([...all("sentinel-settings"), ...all("haproxy-reload"), "cache-redis1-forget-removed"]);
      expect(dep(n("rotate-drop"))).toEqual(all("health"));
    }
    // and the group's hand-over and forget steps (scale in)
    expect(seen).toHaveLength(NODES.length * (2 + STEPS.length + HAPROXY_STEPS.length + ROTATE_STEPS.length + 1) + 2);
    for (const s of seen) expect(s.parent).toBe(g);
  });

  it("rotation steps: the same script on every node, commands on a secret stdin, nothing logged, re-run only when a password changes", async () => {
    const { seen } = await build("cache");
    for (const st of ROTATE_STEPS) {
      const r = byName(`cache-redis2-${st}`).inputs;
      expect(r.create).toContain("REDISCLI_AUTH=$(cat \"$f\")");
      expect(r.create).toContain("'/etc/redis/hastack-cli.pass'");
      expect(r.logging).toBe("none");
      const stdin = seen.find((x) => x.name === `cache-redis2-${st}`)!.props.stdin;
      expect(await isSecret(stdin)).toBe(true);
      expect(await resolve(stdin)).toContain(st === "rotate-switch" ? "redis CONFIG SET masterauth " : "redis ACL SETUSER default ");
      expect(unwrap(r.triggers)).toHaveLength(1);
    }
  });

  it("scale in: the hand-over runs from the first node once its login file is there, the forget step after every node, before the group health", async () => {
    const { dep } = await build("cache");
    expect(dep("cache-redis1-hand-over")).toEqual(["cache-redis1-password"]);
    const hand = byName("cache-redis1-hand-over").inputs;
    expect(hand.create).toContain("wanted=' 10.213.7.41 10.213.7.42 10.213.7.43 '");
    expect(hand.create).toContain("REDISCLI_AUTH=$(cat '/etc/redis/hastack-cli.pass')");
    expect(unwrap(hand.triggers)).toEqual(["10.213.7.41 10.213.7.42 10.213.7.43"]);
    expect(dep("cache-redis1-forget-removed")).toEqual(["cache-redis1-hand-over", ...NODES.map((n) => `cache-${n.name}-sentinel-settings`)]);
    expect(byName("cache-redis1-forget-removed").inputs.create).toContain("SENTINEL RESET hastack");
    for (const h of NODES) expect(dep(`cache-${h.name}-health`)).toContain("cache-redis1-forget-removed");
  });

  it("exposes the endpoint, master name, Sentinel addresses, the application user and its secret password", async () => {
    const { g } = await build("cache");
    expect(await resolve(g.vip)).toBe("10.213.7.41");
    expect(await resolve(g.port)).toBe(6380);
    expect(await resolve(g.masterName)).toBe("hastack");
    expect(await resolve(g.sentinelAddresses)).toEqual(["10.213.7.41:26379", "10.213.7.42:26379", "10.213.7.43:26379"]);
    expect(await isSecret(g.password)).toBe(true);
    expect(await resolve(g.password)).toBe(SPECIAL);
    expect(await resolve(g.user)).toBe("app");
  });

  it("surveys every node's data before any redis.conf is written, and falls back to the surveyed master", async () => {
    const { dep } = await build("cache");
    for (const h of NODES) expect(dep(`cache-${h.name}-redis-survey`)).toEqual([`cache-${h.name}-packages`]);
    expect(byName("cache-redis1-redis-survey").inputs.create).toContain("redis-check-rdb '/var/lib/redis/dump.rdb'");
    // the mocks' surveys report no data: a new group starts on the first node
    expect(byName("cache-redis2-redis-conf").inputs.create).toContain("[ -n \"$master\" ] || { master=10.213.7.41;");
    expect(byName("cache-redis2-sentinel-conf").inputs.create).toContain("[ -n \"$master\" ] || { master=10.213.7.41;");
  });

  it("puts hastack's own password, not the application's, into the files on the hosts", async () => {
    const { seen } = await build("cache");
    const stdin = (n: string) => resolve(seen.find((x) => x.name === n)!.props.stdin) as Promise<string>;
    expect(await stdin("cache-redis1-password")).toBe(`sentinel-${SPECIAL}`);
    const acl = await stdin("cache-redis1-redis-users");
    expect(acl).toMatch(/^user default on #[0-9a-f]{64} ~\* &\* \+@all\nuser app on #[0-9a-f]{64} ~\* &\* \+@all -@dangerous \+info\n/);
    // the only clear secret in these files is hastack's own password (quoted for Redis); the application's is nowhere
    const internal = redisQuote(`sentinel-${SPECIAL}`);
    for (const n of ["cache-redis1-redis-users", "cache-redis1-redis-settings", "cache-redis1-sentinel-conf", "cache-redis1-haproxy-conf"]) {
      expect([n, (await stdin(n)).split(internal).join("").includes("jhYg")]).toEqual([n, false]);
    }
    expect(await stdin("cache-redis1-sentinel-conf")).toContain(`requirepass ${internal}`);
  });

  it("writes redis.conf and sentinel.conf only once and applies later changes through hashes", async () => {
    await build("cache");
    expect(byName("cache-redis1-redis-conf").inputs.create).toContain("[ -e /etc/redis/.hastack-redis-conf ]; then echo kept; exit 0; fi");
    expect(byName("cache-redis1-sentinel-conf").inputs.create).toContain("[ -e /etc/redis/.hastack-sentinel-conf ]; then cat >/dev/null; echo kept");
    expect(byName("cache-redis1-redis-conf").inputs.triggers).toBeUndefined();
    expect(byName("cache-redis1-sentinel-conf").inputs.triggers).toBeUndefined();
    for (const n of ["cache-redis2-redis-restart", "cache-redis2-redis-ready", "cache-redis2-sentinel-settings", "cache-redis2-haproxy-reload"]) {
      const t = unwrap(byName(n).inputs.triggers) as unknown[];
      expect(t.length).toBeGreaterThan(0);
      for (const h of t) expect(unwrap(h)).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(byName("cache-redis1-haproxy-conf").inputs.create).toContain(`haproxy -c -q -f "$NEW"`);
    expect(byName("cache-redis1-redis-settings").inputs.create).toContain("redis-server \"$T/test.conf\" --port 0");
  });

  it("adds keepalived with a real PING check after HAProxy when there is a VIP", async () => {
    const { g, dep, seen } = await build("vipcache", "10.213.7.70");
    for (const h of NODES) {
      const n = (st: string) => `vipcache-${h.name}-${st}`;
      const all = (st: string) => NODES.map((x) => `vipcache-${x.name}-${st}`);
      expect(dep(n("keepalived-check"))).toEqual([n("sentinel-settings"), n("haproxy-reload")]);
      // an auth_pass change: the backups stop before any node's file changes, and start once every holder reloaded
      expect(dep(n("keepalived-quiesce"))).toEqual(all("keepalived-check"));
      expect(dep(n("keepalived-conf"))).toEqual([n("keepalived-check"), ...all("keepalived-quiesce")]);
      expect(dep(n("keepalived"))).toEqual([n("keepalived-conf")]);
      expect(dep(n("keepalived-apply"))).toEqual([n("keepalived")]);
      expect(dep(n("keepalived-resume"))).toEqual([n("keepalived"), ...all("keepalived-apply")]);
      expect(dep(n("keepalived-reload"))).toEqual([n("keepalived"), n("keepalived-resume")]);
      expect(dep(n("health"))).toEqual([...all("keepalived-reload"), ...all("haproxy-reload"), "vipcache-redis1-forget-removed"]);
      expect(byName(n("keepalived-quiesce")).inputs.create).toContain("systemctl stop keepalived");
      expect(await isSecret(seen.find((x) => x.name === n("keepalived-quiesce"))!.props.stdin)).toBe(true);
    }
    expect(byName("vipcache-redis1-keepalived-conf").inputs.create).toContain(`keepalived -t -f "$NEW"`);
    expect(await resolve(g.vip)).toBe("10.213.7.70");
  });

  it("sends every secret over stdin only: secret inputs, 0600 files, nothing logged, no secret in any command text", async () => {
    const { seen } = await build("vipcache", "10.213.7.70");
    for (const st of ["password", "sentinel-password", "redis-users", "redis-settings", "sentinel-conf", "haproxy-conf", "keepalived-conf"]) {
      const n = `vipcache-redis2-${st}`;
      expect(await isSecret(seen.find((s) => s.name === n)!.props.stdin)).toBe(true);
      expect(byName(n).inputs.logging).toBe("none");
    }
    expect(byName("vipcache-redis2-password").inputs.create).toContain("chmod 0600");
    expect(byName("vipcache-redis2-haproxy-conf").inputs.create).toMatch(/chmod 0600 "\$NEW"\nchown haproxy:haproxy/);
    expect(byName("vipcache-redis2-redis-settings").inputs.create).toMatch(/chmod 0640 "\$NEW"\nchown redis:redis/);
    for (const c of ofType("command:remote:Command")) {
      for (const f of ["create", "update", "delete"]) {
        const text = JSON.stringify(unwrap(c.inputs[f]) ?? "");
        expect(text).not.toContain("jhYg");
      }
      expect(JSON.stringify(unwrap(c.inputs.triggers) ?? "")).not.toContain("jhYg");
    }
  });

  it.each([
    ["same", "same", `Invalid hastack:passwords.redisSentinel: got "<secret of 4 characters>, the same as hastack:passwords.redis"`],
    ["", "sentinel", `Invalid hastack:passwords.redis: got "<secret of 0 characters>"; expected a non-empty password`],
    ["app", "", `Invalid hastack:passwords.redisSentinel: got "<secret of 0 characters>"; expected a non-empty password`],
  ])("fails if the passwords are %j and %j (one empty, or both the same)", async (pw, spw, message) => {
    const { RedisSentinelGroup, resolveRedisSentinelGroupSettings } = await import("../../components/redisSentinelGroup");
    const settings = resolveRedisSentinelGroupSettings({ enabled: true, nodes: NODES }, SUBNET)!;
    expect(() => new RedisSentinelGroup(`bad${pw}${spw}`, { settings, ssh: { privateKey: "k", user: "root", port: 22 }, password: pw, sentinelPassword: spw }))
      .toThrow(message);
  });

  it("fails if a VIP has no keepalived secret", async () => {
    const { RedisSentinelGroup, resolveRedisSentinelGroupSettings } = await import("../../components/redisSentinelGroup");
    const settings = resolveRedisSentinelGroupSettings({ enabled: true, nodes: NODES, vip: "10.213.7.70" }, SUBNET)!;
    expect(() => new RedisSentinelGroup("bad", { settings, ssh: { privateKey: "k", user: "root", port: 22 }, password: "p", sentinelPassword: "s" }))
      .toThrow("Invalid keepalivedAuthPass: got nothing; expected a secret when the Redis group has a vip.");
  });
});
