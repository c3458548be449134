// The PgBouncer and nginx pairs on VRRPv2 after their keepalived auth_pass change got the three steps of
// keepalived/authRotationSteps.ts: the whole program under mocks must register the same resources (URNs) with the same
// inputs as before, plus each pair node's -keepalived-quiesce/-apply/-resume. The fixture was written by this same test
// against commit 8252653 (the last one before those steps):
//   git archive 8252653 | tar -x -C /tmp/base && cp this file and __fixtures__/workspad-test.deb there, link
//   node_modules, then HASTACK_WRITE_COMPAT_FIXTURE=1 npx jest tests/unit/keepalivedAuthRotation.compat.test.ts   (in /tmp/base)
// Inputs are compared by hash (they hold scripts and secrets); a differing resource is named in the failure. New
// dependencies (a keepalived file after every node's quiesce, a rolling restart after the resumes) are no inputs.
import * as fs from "fs";
import * as path from "path";
import { haproxyCfgSteps, hastackConfig, leaderOffSteps, programFingerprint } from "./compat";
import { recorded } from "./mocks";

const FIXTURE = path.join(__dirname, "__fixtures__", "vrrp2-pairs-before-auth-rotation.json");
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const PASSWORDS = { postgresSuperuser: "a/=\\'\"$1", postgresReplication: "b/=\\'\"$2", postgresRewind: "c3-rewind-Qz7w", postgresApp: "d/=\\'\"$4",
  proxyKeepalived: "abcd1234", nginxKeepalived: "efgh5678", redis: "e/=\\'\"$5", redisSentinel: "s/=\\'\"$9", redisKeepalived: "ijkl9012",
  patroniRest: "f/=\\'\"$6", etcdRoot: "g/=\\'\"$7", etcdPatroni: "h/=\\'\"$8" };
const HOSTS = { pg1: 130, pg2: 131, pg3: 132, px1: 140, px2: 141, wp1: 121, wp2: 122, ngx1: 127, ngx2: 128 };

/** Both VIP pairs on VRRPv2 (the form that writes auth_pass), an app tier of two nodes, the firewall on; keys pinned. */
function config(): Record<string, string> {
  const node = (n: keyof typeof HOSTS) => ({ name: n, address: `192.168.1.${HOSTS[n]}` });
  const v2 = { vrrpVersion: 2, advertIntervalSeconds: 1 };
  const c: Record<string, unknown> = {
    subnet: "192.168.1.0/24", sshPrivateKey: KEY,
    ssh: { hostKeys: Object.fromEntries(Object.values(HOSTS).map((a, i) =>
      [`192.168.1.${a}`, `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${String(i).padStart(2, "0")}Vrrp2CompatHostKeyVrrp2CompatHos`])) },
    postgres: { nodes: [node("pg1"), node("pg2"), node("pg3")] },
    proxy: { nodes: [node("px1"), node("px2")], vip: "192.168.1.200", ...v2 },
    workspad: { nodes: [node("wp1"), node("wp2")], packagePath: "tests/unit/__fixtures__/workspad-test.deb" },
    nginx: { nodes: [node("ngx1"), node("ngx2")], vip: "192.168.1.210", ...v2 },
    firewall: { adminSources: ["192.168.1.10/32"] },
    passwords: PASSWORDS,
  };
  return hastackConfig(c);
}

async function fingerprint(): Promise<Record<string, string>> {
  return programFingerprint(config());
}

describe("VRRPv2 PgBouncer and nginx pairs register what they did before the auth_pass change's steps", () => {
  it("the same URNs with the same inputs as the fixture written by the code before, plus three steps per pair node", async () => {
    const all = await fingerprint();
    const cmd = "urn:pulumi:dc::hastack::command:remote:Command::";
    const added = [...["px1", "px2"].map((h) => `dc-proxy-${h}`), ...["ngx1", "ngx2"].map((h) => `dc-edge-${h}`)]
      .flatMap((p) => ["quiesce", "apply", "resume"].map((step) => `${cmd}${p}-keepalived-${step}`)).sort();
    const leaderOff = leaderOffSteps("dc", ["pg1", "pg2", "pg3"]);
    expect(leaderOff.filter((u) => u in all)).toEqual(leaderOff);
    const now = Object.fromEntries(Object.entries(all).filter(([u]) => !added.includes(u) && !leaderOff.includes(u)));
    if (process.env.HASTACK_WRITE_COMPAT_FIXTURE) {
      fs.writeFileSync(FIXTURE, JSON.stringify(now, null, 1) + "\n");
      return;
    }
    // both pairs really write auth_pass (VRRPv2), and their quiesce steps are given it
    const stdin = (n: string) => JSON.stringify(recorded.find((r) => r.name === n)!.inputs.stdin);
    expect(stdin("dc-proxy-px1-keepalived-cfg")).toContain('auth_pass \\"abcd1234\\"');
    expect(stdin("dc-edge-ngx2-keepalived-conf")).toContain("auth_pass ");
    expect(stdin("dc-proxy-px2-keepalived-quiesce")).toContain('"abcd1234"');
    // the steps exist, and they are the only new resources
    expect(Object.keys(all).filter((u) => /-keepalived-(quiesce|apply|resume)$/.test(u)).sort()).toEqual(added);
    const before: Record<string, string> = JSON.parse(fs.readFileSync(FIXTURE, "utf8"));
    expect(Object.keys(now).length).toBeGreaterThan(150);
    expect(Object.keys(now)).toEqual(Object.keys(before));
    const differing = Object.keys(now).filter((u) => now[u] !== before[u]);
    // changed on purpose since: the PostgreSQL scale-in hand-over's retries (patroniCluster/membership.ts; on an
    // upgrade it runs once, finds a member the stack names leading and does nothing)
    // and HAProxy's timeouts (haproxyCfgSteps)
    expect(differing).toEqual(["urn:pulumi:dc::hastack::command:remote:Command::dc-db-pg1-hand-over", ...haproxyCfgSteps("dc", ["px1", "px2"])].sort());
  }, 240000); // the whole program under mocks: ~10 s alone, ~55 s on a loaded 2-core machine
});
