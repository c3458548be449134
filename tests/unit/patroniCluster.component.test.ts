import * as pulumi from "@pulumi/pulumi";
import { byName, installMocks, isSecret, ofType, recorded, resolve, settle } from "./mocks";

const SPECIAL = `jhYg/=\\F'"$`;
const nodes = [
  { name: "pg1", address: "10.213.7.11" },
  { name: "pg2", address: "10.213.7.12" },
  { name: "pg3", address: "10.213.7.13" },
];
const PASSWORDS = { superuserPassword: `su-${SPECIAL}`, replicationPassword: `repl-${SPECIAL}`, rewindPassword: `rw-${SPECIAL}`, appPassword: `app-${SPECIAL}`, restApiPassword: `rest-${SPECIAL}`,
  etcdRootPassword: `etcdroot-${SPECIAL}`, etcdPatroniPassword: `etcdpat-${SPECIAL}` };

// how the mock engine passes a secret input value
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const isSecretInput = (v: any) => typeof v === "object" && v !== null && v[SECRET_SIG] !== undefined;
const unwrap = (v: any): any => (isSecretInput(v) ? unwrap(v.value) : Array.isArray(v) ? v.map(unwrap) : v);

interface Seen { name: string; type: string; parent?: pulumi.Resource; dependsOn: pulumi.Resource[] }
const seen: Seen[] = [];
let cluster: any;

async function nameOf(r: pulumi.Resource): Promise<string> {
  const urn = await resolve(r.urn);
  return urn.split("::").pop()!;
}
async function depsOf(name: string): Promise<string[]> {
  const s = seen.find((x) => x.name === name);
  if (!s) throw new Error(`no resource ${name}`);
  return Promise.all(s.dependsOn.map(nameOf));
}

beforeAll(async () => {
  await installMocks();
  const { PatroniCluster, resolvePatroniClusterSettings } = await import("../../components/patroniCluster");
  const settings = resolvePatroniClusterSettings({ nodes }, "10.213.7.0/24");
  cluster = new PatroniCluster("db", {
    settings,
    ssh: { privateKey: pulumi.secret("KEY"), user: "root", port: 22 },
    superuserPassword: pulumi.secret(PASSWORDS.superuserPassword),
    replicationPassword: pulumi.secret(PASSWORDS.replicationPassword),
    rewindPassword: pulumi.secret(PASSWORDS.rewindPassword),
    appPassword: PASSWORDS.appPassword, // a plain string must come out secret as well
    restApiPassword: pulumi.secret(PASSWORDS.restApiPassword),
    etcdRootPassword: pulumi.secret(PASSWORDS.etcdRootPassword),
    etcdPatroniPassword: pulumi.secret(PASSWORDS.etcdPatroniPassword),
    access: { proxies: ["10.213.7.21", "10.213.7.22"], admin: ["10.213.7.1/32"] },
  }, {
    transformations: [(a) => {
      const d = a.opts.dependsOn;
      seen.push({ name: a.name, type: a.type, parent: a.opts.parent, dependsOn: Array.isArray(d) ? (d as pulumi.Resource[]) : d ? [d as pulumi.Resource] : [] });
      return undefined;
    }],
  });
  await resolve(cluster.memberAddresses);
  await settle(200);
});

const STEPS = ["packages", "packaged-cluster-off", "cluster-name-guard", "data-dirs", "etcd-config", "etcd-service", "etcd-restart", "rest-auth", "etcdctl-env", "etcd-healthy",
  "etcd-leader-off-script", "etcd-leader-off-service", "etcd-leader-off-timer", "etcd-leader-off-reload", "etcd-leader-off-on",
  "role-passwords", "patroni-config", "patroni-service", "patroni-reload", "app-database"];

describe("PatroniCluster wiring", () => {
  it("registers the component with its type token", () => {
    expect(recorded.filter((r) => r.type === "hastack:db:PatroniCluster").map((r) => r.name)).toEqual(["db"]);
  });

  it("creates every per-host step named <component>-<host>-<step>, and the cluster steps on the first member", () => {
    const names = ofType("command:remote:Command").map((r) => r.name).sort();
    const expected = [
      ...nodes.flatMap((n) => STEPS.map((s) => `db-${n.name}-${s}`)),
      "db-pg1-cluster-healthy", "db-pg1-dynamic-config", "db-pg1-rolling-restart", "db-pg1-patroni-etcd-login", "db-pg1-etcd-auth",
      "db-pg1-etcd-desired-members", "db-pg1-hand-over",
    ].sort();
    expect(names).toEqual(expected);
  });

  it("parents every child to the component", async () => {
    const children = seen.filter((s) => s.type !== "hastack:db:PatroniCluster");
    expect(children.length).toBe(nodes.length * STEPS.length + 7);
    for (const c of children) expect([c.name, c.parent && (await nameOf(c.parent))]).toEqual([c.name, "db"]);
  });

  it("orders each host copy → validate → swap → enable → reload-on-hash after etcd is healthy", async () => {
    for (const n of nodes) {
      const p = (s: string) => `db-${n.name}-${s}`;
      expect(await depsOf(p("packaged-cluster-off"))).toEqual([p("packages")]);
      expect(await depsOf(p("cluster-name-guard"))).toEqual([p("packages")]);
      // nothing named after the cluster (etcd's data dir, its config, Patroni's) before the rename guard
      expect(await depsOf(p("data-dirs"))).toEqual([p("cluster-name-guard")]);
      expect(await depsOf(p("etcd-config"))).toEqual([p("data-dirs")]);
      const i = nodes.indexOf(n);
      // a new member joins a running cluster only after the members before it restarted on the new membership
      expect(await depsOf(p("etcd-service"))).toEqual([p("etcd-config"), p("etcdctl-env"), ...(i > 0 ? [`db-${nodes[i - 1].name}-etcd-restart`] : [])]);
      // rolling: each member's etcd restart waits for the previous member's
      expect(await depsOf(p("etcd-restart"))).toEqual([p("etcd-service"), ...(i > 0 ? [`db-${nodes[i - 1].name}-etcd-restart`] : [])]);
      expect(await depsOf(p("rest-auth"))).toEqual([p("packages")]);
      expect(await depsOf(p("etcdctl-env"))).toEqual([p("packages")]);
      // no member's config carries a new system password before the leader's roles have it (rotation.ts)
      expect(await depsOf(p("patroni-config"))).toEqual([p("etcd-healthy"), p("data-dirs"), p("packaged-cluster-off"), ...nodes.map((m) => `db-${m.name}-role-passwords`)]);
      expect(await depsOf(p("role-passwords"))).toEqual([p("packaged-cluster-off")]);
      // the etcd-leader-off timer starts only once systemd has read its files
      for (const f of ["script", "service", "timer"]) expect(await depsOf(p(`etcd-leader-off-${f}`))).toEqual([p("packages")]);
      expect(await depsOf(p("etcd-leader-off-reload"))).toEqual(["script", "service", "timer"].map((f) => p(`etcd-leader-off-${f}`)));
      expect(await depsOf(p("etcd-leader-off-on"))).toEqual([p("etcd-leader-off-reload")]);
      // a leaving leader's switchover needs its REST login, so that file goes after the service
      expect(await depsOf(p("patroni-service"))).toEqual([p("patroni-config"), p("rest-auth")]);
      expect(await depsOf(p("patroni-reload"))).toEqual([p("patroni-service")]);
    }
  });

  it("waits for etcd health only after every member's etcd was started", async () => {
    for (const n of nodes) expect((await depsOf(`db-${n.name}-etcd-healthy`)).sort()).toEqual(nodes.map((m) => `db-${m.name}-etcd-restart`).sort());
  });

  it("waits for a leader after all members, then patches dynamic config, then creates the app database", async () => {
    expect((await depsOf("db-pg1-cluster-healthy")).sort()).toEqual(nodes.map((m) => `db-${m.name}-patroni-reload`).sort());
    expect(await depsOf("db-pg1-dynamic-config")).toEqual(["db-pg1-cluster-healthy", "db-pg1-rest-auth"]);
    for (const n of nodes) expect(await depsOf(`db-${n.name}-app-database`)).toEqual(["db-pg1-rolling-restart"]);
  });

  it("enables etcd authentication only after every Patroni has reloaded and shows its etcd login in /cluster", async () => {
    expect((await depsOf("db-pg1-patroni-etcd-login")).sort()).toEqual(nodes.map((m) => `db-${m.name}-patroni-reload`).sort());
    expect(byName("db-pg1-patroni-etcd-login").inputs.create).toContain("'http://10.213.7.11:8008/cluster'");
    expect(await depsOf("db-pg1-etcd-auth")).toEqual(["db-pg1-patroni-etcd-login"]);
    const auth = byName("db-pg1-etcd-auth").inputs;
    expect(auth.create).toContain("ctl auth enable");
    expect(auth.create).toContain("ctl role grant-permission patroni --prefix=true readwrite '/service/'");
    expect(unwrap(auth.stdin)).toBe(`${PASSWORDS.etcdRootPassword}\n${PASSWORDS.etcdPatroniPassword}\n`);
  });

  it("gives Patroni its etcd login, and root's etcdctl login to a root-only file on every member", () => {
    for (const n of nodes) {
      expect(unwrap(byName(`db-${n.name}-patroni-config`).inputs.stdin)).toMatch(/etcd3:\n(  .*\n)*  username: patroni\n  password: etcdpat-jhYg/);
      const env = byName(`db-${n.name}-etcdctl-env`).inputs;
      expect(env.create).toContain("chmod 0600");
      expect(env.create).toContain("chown root:root");
      expect(unwrap(env.stdin)).toContain(`export ETCDCTL_PASSWORD='etcdroot-jhYg/=\\F'\\''"$'`);
    }
  });

  it("checks the cluster name on every host before anything named after it", () => {
    for (const n of nodes) expect(byName(`db-${n.name}-cluster-name-guard`).inputs.create).toContain(`[ "$old" = 'hastack' ]`);
  });

  it("creates the app database on whichever member leads, locally over the socket, never as superuser over TCP", () => {
    for (const n of nodes) {
      const create = byName(`db-${n.name}-app-database`).inputs.create as string;
      expect(create).toContain(`'http://${n.address}:8008/primary'`);
      expect(create).toMatch(/if \[ "\$code" != 200 \]; then cat >\/dev\/null; echo "not the leader/);
      expect(create).toContain("runuser -u postgres --");
      expect(create).toContain("-h '/var/run/postgresql'");
      expect(create).not.toMatch(/-h "\$host"|10\.213\.7\.\d+:5432/);
    }
  });

  it("authenticates PATCH /config with credentials from a root-only 0600 file, never on the command line", () => {
    expect(byName("db-pg1-dynamic-config").inputs.create).toContain("curl -sf --max-time 30 -K '/etc/patroni/hastack-rest.curl' -XPATCH");
    const auth = byName("db-pg2-rest-auth").inputs;
    expect(auth.create).toContain("chmod 0600");
    expect(auth.create).toContain("chown root:root");
    expect(auth.logging).toBe("none");
    expect(unwrap(auth.stdin)).toContain(`user = "patroni:rest-jhYg/=\\\\F'\\"$"`);
  });

  it("admits the app role only from the proxies and operators given as access", () => {
    const hba = unwrap(byName("db-pg1-patroni-config").inputs.stdin) as string;
    expect(hba).toContain("- host workspad workspad 10.213.7.21/32 scram-sha-256");
    expect(hba).toContain("- host workspad workspad 10.213.7.1/32 scram-sha-256");
    expect(hba).not.toContain("10.213.7.0/24");
  });

  it("uses content hashes, not contents, as triggers", async () => {
    for (const name of ["db-pg1-etcd-restart", "db-pg2-patroni-reload", "db-pg1-etcd-auth", "db-pg1-patroni-etcd-login", "db-pg1-cluster-healthy", "db-pg1-dynamic-config", "db-pg1-app-database", "db-pg3-app-database"]) {
      const triggers = unwrap(byName(name).inputs.triggers);
      expect([name, triggers.length > 0, triggers.every((t: unknown) => typeof t === "string" && /^[0-9a-f]{64}$/.test(t))]).toEqual([name, true, true]);
    }
  });

  it("writes the Patroni config as a secret, 0600 owned by postgres, validated by patroni before the swap", async () => {
    const config = byName("db-pg2-patroni-config").inputs;
    expect(config.create).toContain("chmod 0600");
    expect(config.create).toContain("chown postgres:postgres");
    expect(config.create).toContain("'/etc/patroni/config.yml'");
    expect(config.create).toContain('patroni --validate-config "$NEW"');
    expect(config.logging).toBe("none");
    expect(isSecretInput(config.stdin)).toBe(true);
    expect(unwrap(config.stdin)).toContain(`password: su-jhYg/=\\F'"$`);
  });

  it("never puts a password into command text", async () => {
    for (const r of ofType("command:remote:Command")) {
      const text = JSON.stringify([r.inputs.create, r.inputs.update, r.inputs.delete]);
      for (const pw of Object.values(PASSWORDS)) expect([r.name, text.includes(pw) || text.includes(SPECIAL)]).toEqual([r.name, false]);
    }
  });

  it("sends secrets only on stdin of quiet steps", async () => {
    // every password starts with a marker that survives any quoting
    const withSecrets = ofType("command:remote:Command").filter((r) => /(su|repl|rw|app|rest|etcdroot|etcdpat)-jhYg/.test(String(unwrap(r.inputs.stdin) ?? "")));
    expect(withSecrets.map((r) => r.name).sort())
      .toEqual([...nodes.flatMap((n) => ["app-database", "patroni-config", "rest-auth", "etcdctl-env", "role-passwords"].map((s) => `db-${n.name}-${s}`)), "db-pg1-etcd-auth"].sort());
    for (const r of withSecrets) expect([r.name, r.inputs.logging, isSecretInput(r.inputs.stdin)]).toEqual([r.name, "none", true]);
  });

  it("keeps data on destroy: deletes stop services and remove config files only", () => {
    // what each delete does: its last line (the lines before skip it on a host renamed since, components/common/owner.ts)
    const deletes = ofType("command:remote:Command").filter((r) => r.inputs.delete).map((r) => [r.name, r.inputs.delete.split("\n").pop()]);
    expect(deletes).toEqual(expect.arrayContaining([
      ["db-pg1-etcd-service", "systemctl disable --now etcd.service >/dev/null 2>&1 || true"],
      ["db-pg1-patroni-service", "systemctl disable --now 'patroni.service' >/dev/null 2>&1 || true"],
      ["db-pg1-patroni-config", "rm -f '/etc/patroni/config.yml'"],
      ["db-pg1-etcd-config", "rm -f '/etc/default/etcd'"],
    ]));
    for (const [, d] of deletes) expect(d).not.toMatch(/\/var\/lib|rm -rf/);
  });

  it("exposes plain outputs and marks the passwords secret", async () => {
    expect(await resolve(cluster.memberAddresses)).toEqual(nodes.map((n) => n.address));
    expect(await resolve(cluster.pgPort)).toBe(5432);
    expect(await resolve(cluster.restApiPort)).toBe(8008);
    expect(await resolve(cluster.database)).toBe("workspad");
    expect(await resolve(cluster.appUser)).toBe("workspad");
    for (const k of ["superuserPassword", "replicationPassword", "appPassword"]) {
      expect([k, await isSecret(cluster[k])]).toEqual([k, true]);
    }
    expect(await resolve(cluster.appPassword)).toBe(PASSWORDS.appPassword);
  });
});
