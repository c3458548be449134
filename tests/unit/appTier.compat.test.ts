// A stack with an app tier after the app-tier scaling work (issue 13): the whole program under mocks must register
// the same resources (URNs) with the same inputs as before, plus the PgBouncer and Redis tables' `-admit` steps (a
// table change admits its new sources at once, narrows after nginx serves the new list: stacks/datacenter.ts). The
// fixture was written by this same test against commit 7585c2c (the last one before that work):
//   git archive 7585c2c | tar -x -C /tmp/base && cp this file and __fixtures__/workspad-test.deb there, link
//   node_modules, then HASTACK_WRITE_COMPAT_FIXTURE=1 npx jest tests/unit/appTier.compat.test.ts   (in /tmp/base)
// Inputs are compared by hash (they hold scripts and secrets); a differing resource is named in the failure. New
// dependencies (a node's start after the tables' admit steps, a table's load after nginx) are no inputs: no change.
import * as fs from "fs";
import * as path from "path";
import { haproxyCfgSteps, hastackConfig, leaderOffSteps, programFingerprint } from "./compat";

const FIXTURE = path.join(__dirname, "__fixtures__", "app-tier-before-scaling.json");
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const PASSWORDS = { postgresSuperuser: "a/=\\'\"$1", postgresReplication: "b/=\\'\"$2", postgresRewind: "c3-rewind-Qz7w", postgresApp: "d/=\\'\"$4",
  proxyKeepalived: "abcd1234", nginxKeepalived: "efgh5678", redis: "e/=\\'\"$5", redisSentinel: "s/=\\'\"$9", redisKeepalived: "ijkl9012",
  patroniRest: "f/=\\'\"$6", etcdRoot: "g/=\\'\"$7", etcdPatroni: "h/=\\'\"$8" };
const HOSTS = { pg1: 130, pg2: 131, pg3: 132, px1: 140, px2: 141, wp1: 121, wp2: 122, ngx1: 127, ngx2: 128, rd1: 151, rd2: 152, rd3: 153 };

/**
 * The reference layout: an app tier of two nodes behind two balancers, Redis, the firewall on; keys pinned. The CA and
 * certificates are generated (the mocks' tls resources answer the same every run; supplied ones would be made anew).
 */
function config(): Record<string, string> {
  const node = (n: keyof typeof HOSTS) => ({ name: n, address: `192.168.1.${HOSTS[n]}` });
  const c: Record<string, unknown> = {
    subnet: "192.168.1.0/24", sshPrivateKey: KEY,
    ssh: { hostKeys: Object.fromEntries(Object.values(HOSTS).map((a, i) =>
      [`192.168.1.${a}`, `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${String(i).padStart(2, "0")}AppTierCompatHostKeyAppTierCompat`])) },
    postgres: { nodes: [node("pg1"), node("pg2"), node("pg3")] },
    proxy: { nodes: [node("px1"), node("px2")], vip: "192.168.1.200" },
    workspad: { nodes: [node("wp1"), node("wp2")], packagePath: "tests/unit/__fixtures__/workspad-test.deb" },
    nginx: { nodes: [node("ngx1"), node("ngx2")], vip: "192.168.1.210" },
    redis: { enabled: true, nodes: [node("rd1"), node("rd2"), node("rd3")], vip: "192.168.1.150" },
    firewall: { adminSources: ["192.168.1.10/32"] },
    passwords: PASSWORDS,
  };
  return hastackConfig(c);
}

async function fingerprint(): Promise<Record<string, string>> {
  return programFingerprint(config());
}

describe("a stack with an app tier registers what it did before the app-tier scaling work", () => {
  it("the same URNs with the same inputs as the fixture written by the code before, plus the tables' admit steps", async () => {
    const all = await fingerprint();
    if (process.env.HASTACK_WRITE_COMPAT_FIXTURE) {
      fs.writeFileSync(FIXTURE, JSON.stringify(all, null, 1) + "\n");
      return;
    }
    // created once on the upgrade (each adds addresses the live table already holds); every resource before stays
    const admit = ["px1", "px2"].map((h) => `dc-proxy-${h}-firewall-admit`).concat(["rd1", "rd2", "rd3"].map((h) => `dc-cache-${h}-firewall-admit`))
      .map((n) => `urn:pulumi:dc::hastack::command:remote:Command::${n}`).sort();
    expect(Object.keys(all).filter((u) => u.endsWith("-admit")).sort()).toEqual(admit);
    // and the Redis secrets' rotation steps, three per node for the passwords and three for the VIP's auth_pass
    // (redisSentinelGroup/rotation.ts, keepalived/authRotation.ts), merged after this fixture was written
    const rotation = ["rd1", "rd2", "rd3"].flatMap((h) => ["rotate-add", "rotate-switch", "rotate-drop", "keepalived-quiesce", "keepalived-apply", "keepalived-resume"]
      .map((p) => `urn:pulumi:dc::hastack::command:remote:Command::dc-cache-${h}-${p}`));
    expect(rotation.filter((u) => u in all)).toEqual(rotation);
    // and the same three auth_pass steps on the PgBouncer and nginx pairs' nodes (keepalived/authRotationSteps.ts; no-ops
    // with this fixture's VRRPv3, which writes no auth_pass)
    const pairs = ["dc-proxy-px1", "dc-proxy-px2", "dc-edge-ngx1", "dc-edge-ngx2"].flatMap((p) => ["quiesce", "apply", "resume"]
      .map((step) => `urn:pulumi:dc::hastack::command:remote:Command::${p}-keepalived-${step}`));
    expect(pairs.filter((u) => u in all)).toEqual(pairs);
    // and each PostgreSQL member's etcd-leader-off steps (patroniCluster/etcdLeaderOff.ts)
    const leaderOff = leaderOffSteps("dc", ["pg1", "pg2", "pg3"]);
    expect(leaderOff.filter((u) => u in all)).toEqual(leaderOff);
    const added = [...admit, ...rotation, ...pairs, ...leaderOff];
    const now = Object.fromEntries(Object.entries(all).filter(([u]) => !added.includes(u)));
    const before: Record<string, string> = JSON.parse(fs.readFileSync(FIXTURE, "utf8"));
    expect(Object.keys(now).length).toBeGreaterThan(200);
    expect(Object.keys(now)).toEqual(Object.keys(before));
    const differing = Object.keys(now).filter((u) => now[u] !== before[u]);
    // changed on purpose: the Redis apply step's runtime path and update script (see redisGroups.compat.test.ts), and
    // the PostgreSQL scale-in hand-over's retries (patroniCluster/membership.ts; on upgrade it runs once and finds
    // a member the stack names leading, so it does nothing), and HAProxy's timeouts (haproxyCfgSteps)
    expect(differing).toEqual([...["rd1", "rd2", "rd3"].map((h) => `urn:pulumi:dc::hastack::command:remote:Command::dc-cache-${h}-redis-restart`),
      "urn:pulumi:dc::hastack::command:remote:Command::dc-db-pg1-hand-over", ...haproxyCfgSteps("dc", ["px1", "px2"])].sort());
  }, 240000); // the whole program under mocks: ~10 s alone, ~55 s on a loaded 2-core machine
});
