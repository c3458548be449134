// Scaling the app tier (issue 13) through the real engine with the whole program: WorksPad nodes removed from and
// added back into the middle of hastack:workspad.nodes. The hosts are stand-ins (an `ssh` first on the engine's PATH
// that runs nothing, as tests/engine/redisCompat does) which note, per host, the steps that matter in the order the
// engine runs them: so this shows the real engine's order of the real program's steps, creates and updates first,
// deletes last, with the dependencies stacks/datacenter.ts gives them. What the scripts do on a host is covered
// elsewhere (tests/daemons: the tables on real nft, nginx, the WorksPad double).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigMap, Stack } from "@pulumi/pulumi/automation";
import { applyConfig, changes, EngineEnv, engineEnv, enginePaths, openStack, REPO } from "../../engine/automation";
import { offlineCertificates, secretLeaves } from "../../engine/offline-secrets";

jest.setTimeout(30 * 60 * 1000);

const PROBE_MARK = "--hastack-probe-5f0c2e--"; // engine/command-provider/provider.ts: the probe answer follows it
/** The stand-in host: accepts every script; notes `<host> <what>` for the steps the test follows. */
const FAKE_SSH = (log: string) => `#!/bin/sh
for a in "$@"; do case "$a" in -M|-O) exit 0;; esac; done
for last in "$@"; do :; done
host=; for a in "$@"; do case "$a" in root@*) host=\${a#root@};; esac; done
cat >/dev/null
tag=
case "$last" in
  *"systemctl disable --now 'workspad'"*) tag=stop-workspad;;
  *"systemctl enable 'workspad'"*) tag=start-workspad;;
  *"systemctl restart 'workspad'"*) tag=restart-workspad;;
  *"https://127.0.0.1:4430/health"*) tag=health-workspad;;
  *"if systemctl is-active --quiet nginx; then nginx -t"*) tag=trust-reload;;
  *"nginx -t && systemctl reload nginx"*) tag=nginx-reload;;
  *"nft add element"*) tag=admit;;
  *"systemctl restart 'hastack-firewall-"*) tag=load-$(printf '%s' "$last" | sed -n "s/.*systemctl restart 'hastack-firewall-\\([a-z_]*\\)\\.service'.*/\\1/p" | head -n 1);;
esac
[ -z "$tag" ] || echo "$host $tag" >> ${JSON.stringify(log)}
case "$last" in *${PROBE_MARK}*) printf '\\n%s\\n%s\\n' '${PROBE_MARK}' 'stand-in host state';; esac
exit 0
`;
const A = (n: number) => `192.168.1.${n}`;
const WP = { wp1: 121, wp2: 122, wp3: 123 } as const;
const OTHER = [130, 131, 132, 140, 141, 127, 151, 152, 153];
const NGX = A(127), WP2 = A(WP.wp2);
const PROXIES = [A(140), A(141)], CACHES = [A(151), A(152), A(153)];

// no tls provider offline: every certificate supplied, made once (a server certificate only for the nodes listed)
const PKI = offlineCertificates([...Object.entries(WP).map(([name, a]) => ({ name, address: A(a), dnsNames: ["workspad"] })), { name: "ngx1", address: NGX }]);

function config(apps: readonly (keyof typeof WP)[]): ConfigMap {
  const obj = (v: unknown) => ({ value: JSON.stringify(v) });
  return {
    "hastack:subnet": { value: "192.168.1.0/24" },
    "hastack:sshPrivateKey": { value: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", secret: true },
    // pinned keys (any well-formed ones: the stand-in checks none), so no step waits for a key learnt on first use
    "hastack:ssh": obj({ user: "root", port: 22, hostKeys: Object.fromEntries([...Object.values(WP), ...OTHER].map((a, i) =>
      [A(a), `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${String(i).padStart(2, "0")}AppScaleStandInHostKeyAppScaleStand`])) }),
    "hastack:postgres": obj({ nodes: [130, 131, 132].map((a, i) => ({ name: `pg${i + 1}`, address: A(a) })) }),
    "hastack:proxy": obj({ nodes: [{ name: "px1", address: A(140) }, { name: "px2", address: A(141) }], vip: A(200) }),
    "hastack:workspad": obj({ nodes: apps.map((n) => ({ name: n, address: A(WP[n]) })), packagePath: path.join(REPO, "tests/unit/__fixtures__/workspad-test.deb") }),
    "hastack:nginx": obj({ nodes: [{ name: "ngx1", address: NGX }] }),
    "hastack:redis": obj({ enabled: true, nodes: [151, 152, 153].map((a, i) => ({ name: `rd${i + 1}`, address: A(a) })), vip: A(150), maxmemory: "64mb" }),
    ...secretLeaves("hastack:passwords", { postgresSuperuser: "su-'\"$1", postgresReplication: "repl-2", postgresRewind: "rew-3", postgresApp: "app-4",
      proxyKeepalived: "abcd1234", redis: "redis-'\"$5", redisSentinel: "internal-/=6", redisKeepalived: "efgh5678", patroniRest: "rest-7",
      etcdRoot: "root-8", etcdPatroni: "patroni-9" }),
    ...secretLeaves("hastack:certificates", { ...PKI, servers: Object.fromEntries(Object.entries(PKI.servers).filter(([n]) => n === "ngx1" || apps.includes(n as keyof typeof WP))) }),
  };
}

describe("scaling the app tier through the real engine (whole program, stand-in hosts)", () => {
  let dir: string, log: string, stack: Stack, e: EngineEnv;
  const up = async (apps: readonly (keyof typeof WP)[]) => {
    await applyConfig(stack, config(apps), path.join(dir, "project"), engineEnv(e));
    fs.writeFileSync(log, "");
    const r = await stack.up();
    expect(r.summary.result).toBe("succeeded");
    return { changes: changes(r.summary.resourceChanges), lines: fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean) };
  };
  /** Positions of the lines that match. */
  const at = (lines: string[], host: string | RegExp, what: string | RegExp) => lines.flatMap((l, i) => {
    const [h, t] = l.split(" ");
    const hostOk = typeof host === "string" ? h === host : host.test(h);
    const whatOk = typeof what === "string" ? t === what : what.test(t);
    return hostOk && whatOk ? [i] : [];
  });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-appscale-"));
    log = path.join(dir, "steps.log");
    fs.mkdirSync(path.join(dir, "bin"));
    fs.writeFileSync(path.join(dir, "bin", "ssh"), FAKE_SSH(log), { mode: 0o755 });
    fs.mkdirSync(path.join(dir, "project"));
    fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(dir, "project", "Pulumi.yaml"));
    e = { backendDir: path.join(dir, "backend"), passphrase: "appscale-passphrase", env: { PATH: [path.join(dir, "bin"), ...enginePaths(), process.env.PATH].join(":") } };
    stack = await openStack({ stackName: "dc", config: config(["wp1", "wp2", "wp3"]), workDir: path.join(dir, "project"),
      program: async () => (await import("../../stacks/program")).program() }, e);
  });
  afterAll(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  it("deploys three nodes, then a second up changes nothing", async () => {
    const first = await up(["wp1", "wp2", "wp3"]);
    expect(first.changes.create).toBeGreaterThan(250);
    expect(at(first.lines, WP2, "start-workspad")).toHaveLength(1);
    expect((await up(["wp1", "wp2", "wp3"])).changes).toEqual({});
  });

  it("removing wp2 from the middle: nginx reloads without it, then the PgBouncer and Redis tables narrow, and only at the end its service stops", async () => {
    const { changes: c, lines } = await up(["wp1", "wp3"]);
    expect(c.delete).toBeGreaterThan(20);
    expect(c.create ?? 0).toBe(0);
    const reload = at(lines, NGX, "nginx-reload");
    const loads = [...PROXIES.flatMap((h) => at(lines, h, "load-proxy")), ...CACHES.flatMap((h) => at(lines, h, "load-cache"))];
    const stop = at(lines, WP2, "stop-workspad");
    if (process.env.HASTACK_APPSCALE_LOG) console.log(lines.join("\n")); // the noted steps in order
    expect([reload.length, loads.length, stop.length]).toEqual([1, 5, 1]);
    for (const l of loads) expect(l).toBeGreaterThan(reload[0]);
    expect(stop[0]).toBeGreaterThan(Math.max(...loads));
    // the kept nodes are neither restarted nor started again
    expect(lines.filter((l) => /^192\.168\.1\.12[13] /.test(l))).toEqual([]);
    expect((await up(["wp1", "wp3"])).changes).toEqual({});
  });

  it("adding it back in the middle: admitted by the tables first, started, healthy, then nginx takes it; the tables load after nginx", async () => {
    const { changes: c, lines } = await up(["wp1", "wp2", "wp3"]);
    expect(c.delete ?? 0).toBe(0);
    expect(c.create).toBeGreaterThan(20);
    const admits = [...PROXIES, ...CACHES].flatMap((h) => at(lines, h, "admit"));
    const start = at(lines, WP2, "start-workspad"), health = at(lines, WP2, "health-workspad");
    const reload = at(lines, NGX, "nginx-reload");
    const loads = [...PROXIES.flatMap((h) => at(lines, h, "load-proxy")), ...CACHES.flatMap((h) => at(lines, h, "load-cache"))];
    expect([admits.length, start.length, health.length, reload.length, loads.length]).toEqual([5, 1, 1, 1, 5]);
    expect(start[0]).toBeGreaterThan(Math.max(...admits));
    expect(health[0]).toBeGreaterThan(start[0]);
    expect(reload[0]).toBeGreaterThan(health[0]);
    for (const l of loads) expect(l).toBeGreaterThan(reload[0]);
    expect(lines.filter((l) => /^192\.168\.1\.12[13] /.test(l))).toEqual([]);
    expect((await up(["wp1", "wp2", "wp3"])).changes).toEqual({});
  });
});
