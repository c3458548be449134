import { scramSecret } from "../../components/common/scram";
import * as pulumi from "@pulumi/pulumi";
import { byName, installMocks, isSecret, ofType, recorded, resolve, settle } from "./mocks";
import { ConfigError } from "../../components/common/validate";

const SPECIAL = `jhYg/=\\F'"$`;
const AUTH = "Ab3dE6gH";
const KEY = "PRIVATE-KEY-MATERIAL";

type Seen = { parent?: string; dependsOn: string[]; props: Record<string, any> };
const seen = new Map<string, Seen>();
const nameOf = (r: any): string => r?.__name ?? "?";

const STEPS = [
  "packages", "haproxy-cfg", "haproxy-enable", "pgbouncer-userlist", "pgbouncer-ini", "pgbouncer-enable", "check-user", "check-script", "reset-script",
  "check-pgpass", "keepalived-cfg", "keepalived-enable", "haproxy-reload", "pgbouncer-restart", "keepalived-reload", "healthy",
];

const ROTATION = ["keepalived-quiesce", "keepalived-apply", "keepalived-resume"];

let mod: typeof import("../../components/pgBouncerVipPair");
let pair: import("../../components/pgBouncerVipPair").PgBouncerVipPair;

function make(name: string, over: Record<string, unknown> = {}, settingsOver: Record<string, unknown> = {}) {
  const settings = mod.resolvePgBouncerVipPairSettings({
    nodes: [{ name: "px1", address: "10.213.7.21" }, { name: "px2", address: "10.213.7.22" }], vip: "10.213.7.50", interface: "host0",
    // VRRPv2: the form that carries auth_pass, whose handling as a secret these tests check (VRRPv3 writes none)
    vrrpVersion: 2, advertIntervalSeconds: 1,
    ...settingsOver,
  }, "10.213.7.0/24", ["10.213.7.11", "10.213.7.12", "10.213.7.13"]);
  return new mod.PgBouncerVipPair(name, {
    settings,
    ssh: { privateKey: pulumi.secret(KEY), user: "root", port: 22 },
    patroniMembers: [{ name: "pg1", address: "10.213.7.11" }, { name: "pg2", address: "10.213.7.12" }, { name: "pg3", address: "10.213.7.13" }],
    pgPort: 5432,
    restApiPort: 8008,
    database: "workspad",
    appUser: "workspad",
    appPassword: pulumi.secret(SPECIAL),
    keepalivedAuthPass: pulumi.secret(AUTH),
    ...over,
  }, {
    transformations: [(a) => {
      const deps = a.opts.dependsOn;
      seen.set(a.name, {
        parent: a.opts.parent ? nameOf(a.opts.parent) : undefined,
        dependsOn: (Array.isArray(deps) ? deps : deps ? [deps] : []).map(nameOf),
        props: a.props,
      });
      return undefined;
    }],
  });
}

beforeAll(async () => {
  await installMocks();
  mod = await import("../../components/pgBouncerVipPair");
  pair = make("db");
  await settle(200);
});

describe("PgBouncerVipPair wiring", () => {
  test("registers the component with its type token", () => {
    expect(byName("db").type).toBe("hastack:proxy:PgBouncerVipPair");
  });

  test("creates every step on every node, named <name>-<host>-<step>, parented to the component", () => {
    for (const host of ["px1", "px2"]) {
      for (const step of [...STEPS, "vip-answers", "vip-held"]) {
        const n = `db-${host}-${step}`;
        expect(byName(n).type).toBe("command:remote:Command");
        expect(seen.get(n)?.parent).toBe("db");
      }
    }
    // and the auth_pass change's three steps (keepalived/authRotationSteps.ts): the only names added, none changed
    for (const host of ["px1", "px2"]) for (const step of ROTATION) expect(seen.get(`db-${host}-${step}`)?.parent).toBe("db");
    expect(ofType("command:remote:Command").map((r) => r.name).sort())
      .toEqual(["px1", "px2"].flatMap((h) => [...STEPS, "vip-answers", "vip-held", ...ROTATION].map((step) => `db-${h}-${step}`)).sort());
  });

  test("orders copy → validate → swap → enable → restart-on-hash → wait-for-health on each node", () => {
    for (const host of ["px1", "px2"]) {
      STEPS.slice(1).forEach((step, i) => {
        expect(seen.get(`db-${host}-${step}`)?.dependsOn).toContain(`db-${host}-${STEPS[i]}`);
      });
    }
  });

  test("restarts roll: the second node restarts only after the first is healthy again", () => {
    expect(seen.get("db-px2-haproxy-reload")?.dependsOn).toEqual(expect.arrayContaining(["db-px2-keepalived-enable", "db-px1-healthy"]));
    expect(seen.get("db-px1-haproxy-reload")?.dependsOn).toEqual(["db-px1-keepalived-enable", "db-px1-keepalived-resume", "db-px2-keepalived-resume"]);
  });

  test("a changed auth_pass: every quiesce before any keepalived file, each apply after its node's keepalived, the resumes after every apply", () => {
    const all = (step: string) => ["px1", "px2"].map((h) => `db-${h}-${step}`);
    for (const host of ["px1", "px2"]) {
      const n = (step: string) => `db-${host}-${step}`;
      expect(seen.get(n("keepalived-quiesce"))?.dependsOn).toEqual(all("check-pgpass"));
      expect(seen.get(n("keepalived-cfg"))?.dependsOn).toEqual([n("check-pgpass"), ...all("keepalived-quiesce")]);
      expect(seen.get(n("keepalived-apply"))?.dependsOn).toEqual([n("keepalived-enable")]);
      expect(seen.get(n("keepalived-resume"))?.dependsOn).toEqual([n("keepalived-enable"), ...all("keepalived-apply")]);
      // the rolling restarts (the first of them; the others follow it) and the reload wait until the change is over everywhere
      expect(seen.get(n("haproxy-reload"))?.dependsOn).toEqual(expect.arrayContaining(all("keepalived-resume")));
      expect(seen.get(n("keepalived-reload"))?.dependsOn).toEqual([n("pgbouncer-restart"), n("keepalived-resume")]);
      expect(byName(n("keepalived-quiesce")).inputs.create).toContain("echo stopped > '/run/hastack-keepalived.auth-rotation'; systemctl stop keepalived");
      expect(byName(n("keepalived-apply")).inputs.create).toContain("systemctl reload keepalived");
      expect(byName(n("keepalived-resume")).inputs.create).toContain("systemctl start keepalived");
    }
  });

  test("the quiesce step is given the auth_pass the file holds (secret), and the steps run again only when it changes", async () => {
    const stdin = seen.get("db-px1-keepalived-quiesce")!.props.stdin;
    expect(await isSecret(stdin)).toBe(true);
    expect(await resolve(stdin)).toBe(AUTH);
    expect(seen.get("db-px1-keepalived-quiesce")!.props.logging).toBe("stdoutAndStderr");
    // VRRPv3 writes no auth_pass: "" (the quiesce script finds a running file without one equal), and a new secret
    // changes no trigger, so nothing runs
    const v3 = { vrrpVersion: 3, advertIntervalSeconds: 0.3 };
    make("v3a", { keepalivedAuthPass: pulumi.secret("Old12345") }, v3);
    make("v3b", { keepalivedAuthPass: pulumi.secret("New12345") }, v3);
    await settle(200);
    expect(await resolve(seen.get("v3a-px1-keepalived-quiesce")!.props.stdin)).toBe("");
    for (const step of ROTATION) {
      const [a, b] = [await resolve(seen.get(`v3a-px2-${step}`)!.props.triggers), await resolve(seen.get(`v3b-px2-${step}`)!.props.triggers)];
      expect(a).toEqual(b);
    }
    // with VRRPv2 a new secret does
    make("v2b", { keepalivedAuthPass: pulumi.secret("New12345") });
    await settle(200);
    expect(await resolve(seen.get("v2b-px1-keepalived-quiesce")!.props.triggers))
      .not.toEqual(await resolve(seen.get("db-px1-keepalived-quiesce")!.props.triggers));
  });

  test("checks the VIP only after every node is healthy", () => {
    for (const host of ["px1", "px2"]) {
      expect(seen.get(`db-${host}-vip-answers`)?.dependsOn).toEqual(["db-px1-healthy", "db-px2-healthy"]);
      expect(seen.get(`db-${host}-vip-held`)?.dependsOn).toEqual([`db-${host}-vip-answers`]);
    }
    expect(byName("db-px1-vip-answers").inputs.create).toContain("check-pgbouncer' '10.213.7.50'");
    expect(byName("db-px1-vip-held").inputs.create).toContain("ip -o -4 addr show dev 'host0' | grep -cF ' 10.213.7.50/'");
  });

  test("restart steps are triggered by content hashes, not contents", async () => {
    for (const host of ["px1", "px2"]) {
      for (const step of ["haproxy-reload", "pgbouncer-restart", "keepalived-reload", "healthy"]) {
        const t = await resolve<string[]>(seen.get(`db-${host}-${step}`)!.props.triggers);
        expect(t.length).toBeGreaterThan(0);
        for (const h of t) expect(h).toMatch(/^[0-9a-f]{64}$/);
      }
    }
    expect(byName("db-px1-pgbouncer-restart").inputs.create).toContain("systemctl restart pgbouncer");
    expect(byName("db-px1-keepalived-reload").inputs.create).toContain("systemctl reload keepalived");
  });

  test("validates configs with the daemons' own checkers before swapping them in", () => {
    expect(byName("db-px1-haproxy-cfg").inputs.create).toContain(`haproxy -c -q -f "$NEW"`);
    expect(byName("db-px1-keepalived-cfg").inputs.create).toContain(`keepalived -t -f "$NEW"`);
    expect(byName("db-px1-check-script").inputs.create).toContain(`sh -n "$NEW"`);
  });

  test("secret files travel as secret stdin, mode 0600, owned by the user that reads them, with nothing logged", async () => {
    const files: [string, string][] = [["pgbouncer-userlist", "postgres:postgres"], ["check-pgpass", "keepalived_script:keepalived_script"],
      ["keepalived-cfg", "root:root"]];
    for (const [step, owner] of files) {
      const s = seen.get(`db-px1-${step}`)!;
      expect(await isSecret(s.props.stdin)).toBe(true);
      expect(s.props.logging).toBe("none");
      expect(s.props.create).toContain('chmod 0600 "$NEW"');
      expect(s.props.create).toContain(`chown ${owner} "$NEW"`);
    }
    // the app role's SCRAM secret (the one PatroniCluster sets), not the password
    const userlist = await resolve(seen.get("db-px1-pgbouncer-userlist")!.props.stdin);
    expect(userlist).toContain(`"workspad" "${scramSecret("workspad", SPECIAL)}"`);
    expect(userlist).not.toContain("jhYg");
    expect(await resolve(seen.get("db-px2-keepalived-cfg")!.props.stdin)).toContain(`auth_pass "${AUTH}"`);
    for (const host of ["px1", "px2"]) expect(await isSecret(seen.get(`db-${host}-pgbouncer-restart`)!.props.triggers[0])).toBe(true);
  });

  test("no secret appears in any command text", () => {
    const secrets = [SPECIAL, AUTH, mod.checkUserPassword(SPECIAL), KEY, "jhYg"];
    for (const r of ofType("command:remote:Command")) {
      expect(typeof r.inputs.create).toBe("string");
      for (const field of ["create", "update", "delete"]) {
        const text = String(r.inputs[field] ?? "");
        for (const s of secrets) expect(text).not.toContain(s);
      }
    }
  });

  test("keepalived priorities descend in node order", async () => {
    expect(await resolve(seen.get("db-px1-keepalived-cfg")!.props.stdin)).toContain("priority 200");
    expect(await resolve(seen.get("db-px2-keepalived-cfg")!.props.stdin)).toContain("priority 190");
  });

  test("destroy stops and disables the services and removes the files it wrote", () => {
    for (const unit of ["haproxy", "pgbouncer", "keepalived"]) {
      expect(byName(`db-px1-${unit}-enable`).inputs.delete).toContain(`systemctl disable --now '${unit}'`);
    }
    for (const [step, p] of [["haproxy-cfg", "/etc/haproxy/haproxy.cfg"], ["pgbouncer-ini", "/etc/pgbouncer/pgbouncer.ini"],
      ["pgbouncer-userlist", "/etc/pgbouncer/userlist.txt"], ["keepalived-cfg", "/etc/keepalived/keepalived.conf"],
      ["check-script", "/usr/local/lib/hastack/check-pgbouncer"], ["reset-script", "/usr/local/lib/hastack/reset-vip-sessions"], ["check-pgpass", "/var/lib/hastack-pgbouncer-check/pgpass"]]) {
      // its last line; the lines before skip it on a host renamed since (components/common/owner.ts)
      expect(byName(`db-px1-${step}`).inputs.delete.split("\n").pop()).toBe(`rm -f '${p}'`);
    }
  });

  test("outputs the VIP, the port, the nodes and a secret Npgsql connection string", async () => {
    expect(await resolve(pair.vip)).toBe("10.213.7.50");
    expect(await resolve(pair.port)).toBe(6432);
    expect(await resolve(pair.nodes)).toEqual([{ name: "px1", address: "10.213.7.21" }, { name: "px2", address: "10.213.7.22" }]);
    expect(await isSecret(pair.connectionString)).toBe(true);
    expect(await resolve(pair.connectionString))
      .toBe(`Host=10.213.7.50;Port=6432;Database=workspad;Username=workspad;Password="jhYg/=\\F'""$"`);
  });

  test("fails if the PgBouncer port clashes with Patroni's PostgreSQL port, before creating anything", () => {
    const before = recorded.length;
    expect(() => make("clash", { pgPort: 6432 })).toThrow(ConfigError);
    expect(() => make("clash2", { restApiPort: 5000 }))
      .toThrow("Invalid hastack:proxy.haproxyPort: got 5000; expected a port other than Patroni's REST API port (5000).");
    expect(recorded.slice(before).filter((r) => r.custom)).toEqual([]);
  });
});

describe("vipHolders", () => {
  test("names the single holder", () => expect(mod.vipHolders(["px1", "px2"], ["0\n", "1\n"])).toEqual(["px2"]));
  test("is empty while the reports are unknown", () => expect(mod.vipHolders(["px1", "px2"], ["", ""])).toEqual([]));
  test("fails if no node or both nodes hold the VIP", () => {
    expect(() => mod.vipHolders(["px1", "px2"], ["0", "0"])).toThrow("held by exactly one node, but 0 hold it");
    expect(() => mod.vipHolders(["px1", "px2"], ["1", "1"])).toThrow("but 2 hold it (px1, px2)");
  });
});
