// The single-object form of hastack:redis after the list form was added: the whole program under mocks must
// register the same resources (URNs) with the same inputs as before. The fixture was written by this same
// test run against commit 55e9de5 (the last one with only the single-object form):
//   git archive 55e9de5 | tar -x -C /tmp/base && cp this file there, link node_modules, then
//   HASTACK_WRITE_COMPAT_FIXTURE=1 npx jest tests/unit/redisGroups.compat.test.ts   (in /tmp/base)
// Inputs are compared by hash (they hold scripts and secrets); a differing resource is named in the failure.
import * as fs from "fs";
import * as path from "path";
import { hastackConfig, programFingerprint } from "./compat";
import { certFixtures } from "./certFixtures";

const FIXTURE = path.join(__dirname, "__fixtures__", "redis-single-form.json");
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const PASSWORDS = { postgresSuperuser: "a/=\\'\"$1", postgresReplication: "b/=\\'\"$2", postgresRewind: "c3-rewind-Qz7w", postgresApp: "d/=\\'\"$4",
  proxyKeepalived: "abcd1234", redis: "e/=\\'\"$5", redisSentinel: "s/=\\'\"$9", redisKeepalived: "ijkl9012",
  patroniRest: "f/=\\'\"$6", etcdRoot: "g/=\\'\"$7", etcdPatroni: "h/=\\'\"$8" };
const RD = [1, 2, 3].map((n) => ({ name: `rd${n}`, address: `192.168.1.15${n}` }));

/** A site stack without an app tier (no certificate generated at random), Redis in the single-object form, with a VIP. */
function config(): Record<string, string> {
  const c: Record<string, unknown> = {
    subnet: "192.168.1.0/24", sshPrivateKey: KEY,
    ssh: { hostKeys: Object.fromEntries(["130", "131", "132", "140", "141", "151", "152", "153"].map((a, i) =>
      [`192.168.1.${a}`, `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${String(i).padStart(2, "0")}CompatFixtureHostKeyCompatFixture`])) },
    site: { name: "dc", peers: [], primarySite: "dc", epoch: 1 },
    postgres: { nodes: [130, 131, 132].map((a, i) => ({ name: `pg${i + 1}`, address: `192.168.1.${a}` })) },
    proxy: { nodes: [{ name: "px1", address: "192.168.1.140" }, { name: "px2", address: "192.168.1.141" }], vip: "192.168.1.200" },
    redis: { enabled: true, nodes: RD, vip: "192.168.1.150", port: 6390, maxmemory: "64mb" },
    passwords: PASSWORDS,
    certificates: { caCertPem: certFixtures().caCertPem },
  };
  return hastackConfig(c);
}

// the Redis group's resources and the firewall tables on its hosts: what the list form could have moved
async function fingerprint(): Promise<Record<string, string>> {
  return programFingerprint(config(), (n) => /-cache[-]|rd\d/.test(n));
}

describe("hastack:redis in the single-object form registers what it did before the list form", () => {
  it("the same URNs with the same inputs as the fixture written by the code before", async () => {
    // the scale-in steps (membership.ts), the password rotation's three steps per node (rotation.ts) and the VIP's
    // auth_pass change's three (keepalived/authRotation.ts) came later, the only additions; every resource before stays as it was
    const cmd = "urn:pulumi:dc::hastack::command:remote:Command::dc-cache-";
    const added = [`${cmd}rd1-forget-removed`, `${cmd}rd1-hand-over`,
      ...RD.flatMap((n) => ["add", "switch", "drop"].map((phase) => `${cmd}${n.name}-rotate-${phase}`)),
      ...RD.flatMap((n) => ["quiesce", "apply", "resume"].map((phase) => `${cmd}${n.name}-keepalived-${phase}`))];
    const all = await fingerprint();
    expect(added.filter((u) => u in all)).toEqual(added);
    const now = Object.fromEntries(Object.entries(all).filter(([u]) => !added.includes(u)));
    if (process.env.HASTACK_WRITE_COMPAT_FIXTURE) fs.writeFileSync(FIXTURE, JSON.stringify(now, null, 1) + "\n");
    const before: Record<string, string> = JSON.parse(fs.readFileSync(FIXTURE, "utf8"));
    expect(Object.keys(now).length).toBeGreaterThan(60);
    expect(Object.keys(now)).toEqual(Object.keys(before));
    const differing = Object.keys(now).filter((u) => now[u] !== before[u]);
    // changed on purpose, one kind only: each node's Redis apply step got a runtime path (ACL LOAD, no restart, when
    // only users or masterauth change) and an update script, which an upgraded stack runs once instead of the restart:
    // a Redis that started on its files is recorded, not restarted (tests/unit/redisApplyRuntime.test.ts)
    expect(differing).toEqual(RD.map((n) => `${cmd}${n.name}-redis-restart`));
  }, 240000); // the whole program under mocks: ~10 s alone, ~55 s on a loaded 2-core machine
});
