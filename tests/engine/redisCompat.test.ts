// Through the real engine: a stack deployed by the code before the list form of hastack:redis (commit 55e9de5, the
// single-object form only), then previewed and re-run by this code, shows no change at all. The hosts are stand-ins
// (an `ssh` first on the engine's PATH that accepts every script without running it, as tests/engine/previewDiff
// does), so the state is what a real `pulumi up` writes, with no VM. The old code is that commit's tree (git archive
// of this repository's history), run in this process as the program of the first `up`.
// Needs: git history down to 55e9de5 (a full clone), openssh-client not needed (the stand-in replaces it).
import { execSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigMap } from "@pulumi/pulumi/automation";
import { changes, enginePaths, openStack, REPO } from "../../engine/automation";
import { offlineCertificates, secretLeaves } from "../../engine/offline-secrets";

jest.setTimeout(20 * 60 * 1000);

const BASE = "55e9de5";
const PROBE_MARK = "--hastack-probe-5f0c2e--"; // engine/command-provider/provider.ts: the probe answer follows it
const FAKE_SSH = `#!/bin/sh
for a in "$@"; do case "$a" in -M|-O) exit 0;; esac; done
for last in "$@"; do :; done
cat >/dev/null
case "$last" in *${PROBE_MARK}*) printf '\\n%s\\n%s\\n' '${PROBE_MARK}' 'stand-in host state';; esac
exit 0
`;
const A = (n: number) => `192.168.1.${n}`;
const HOSTS = [130, 131, 132, 140, 141, 151, 152, 153];

function config(): ConfigMap {
  const obj = (v: unknown) => ({ value: JSON.stringify(v) });
  return {
    "hastack:subnet": { value: "192.168.1.0/24" },
    "hastack:sshPrivateKey": { value: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", secret: true },
    // pinned keys (any well-formed ones: the stand-in checks none), so no step waits for a key learnt on first use
    "hastack:ssh": obj({ user: "root", port: 22, hostKeys: Object.fromEntries(HOSTS.map((a, i) =>
      [A(a), `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${String(i).padStart(2, "0")}RedisCompatStandInHostKeyRedisCompat`])) }),
    // a site stack: the smallest datacenter (no app tier)
    "hastack:site": obj({ name: "dc", peers: [], primarySite: "dc", epoch: 1 }),
    "hastack:postgres": obj({ nodes: [130, 131, 132].map((a, i) => ({ name: `pg${i + 1}`, address: A(a) })) }),
    "hastack:proxy": obj({ nodes: [{ name: "px1", address: A(140) }, { name: "px2", address: A(141) }], vip: A(200) }),
    "hastack:redis": obj({ enabled: true, nodes: [151, 152, 153].map((a, i) => ({ name: `rd${i + 1}`, address: A(a) })), vip: A(150), maxmemory: "64mb" }),
    ...secretLeaves("hastack:passwords", { postgresSuperuser: "su-'\"$1", postgresReplication: "repl-2", postgresRewind: "rew-3", postgresApp: "app-4",
      proxyKeepalived: "abcd1234", redis: "redis-'\"$5", redisSentinel: "internal-/=6", redisKeepalived: "efgh5678", patroniRest: "rest-7",
      etcdRoot: "root-8", etcdPatroni: "patroni-9" }),
    ...secretLeaves("hastack:certificates", { caCertPem: offlineCertificates([]).caCertPem }),
  };
}

describe("hastack:redis in the single-object form: a stack deployed before the list form sees no change (real engine, stand-in hosts)", () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-redis-compat-"));
    fs.mkdirSync(path.join(dir, "bin"));
    fs.writeFileSync(path.join(dir, "bin", "ssh"), FAKE_SSH, { mode: 0o755 });
    fs.mkdirSync(path.join(dir, "base"));
    execSync(`git -C ${JSON.stringify(REPO)} archive ${BASE} | tar -x -C ${JSON.stringify(path.join(dir, "base"))}`);
    fs.symlinkSync(path.join(REPO, "node_modules"), path.join(dir, "base", "node_modules"));
    fs.mkdirSync(path.join(dir, "project"));
    fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(dir, "project", "Pulumi.yaml"));
  });
  afterAll(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  it("up with the code of 55e9de5, then preview and up with this code: no Redis resource changes, and the next up changes nothing", async () => {
    const e = { backendDir: path.join(dir, "backend"), passphrase: "redis-compat-passphrase", env: { PATH: [path.join(dir, "bin"), ...enginePaths(), process.env.PATH].join(":") } };
    const spec = { stackName: "dc", config: config(), workDir: path.join(dir, "project") };
    const oldProgram = async () => (await import(path.join(dir, "base", "stacks", "program"))).program();
    const before = await openStack({ ...spec, program: oldProgram }, e);
    const up = await before.up();
    expect(up.summary.result).toBe("succeeded");
    expect(up.summary.resourceChanges?.create).toBeGreaterThan(100);

    // other upgrades since 55e9de5 change other steps (etcd membership, PgBouncer's SCRAM userlist): the Redis
    // group's own resources (named <stack>-cache-…) must see no step but the creates of the steps added since
    const now = await openStack(spec, e);
    const steps: string[] = [];
    const pv = await now.preview({ onEvent: (ev) => {
      const m = ev.resourcePreEvent?.metadata;
      if (m && m.op !== "same" && /::dc-cache-/.test(m.urn)) steps.push(`${m.op} ${m.urn.split("::").pop()}`);
    } });
    expect(pv.changeSummary).toBeDefined();
    // the scale-in steps (membership.ts) and the rotation steps (rotation.ts, keepalived/authRotation.ts) came later:
    // created once, restarting nothing; every other step stays
    const added = /-(hand-over|forget-removed|rotate-(add|switch|drop)|keepalived-(quiesce|apply|resume))$/;
    // and each node's Redis apply step is updated once (its script gained the runtime path): its update script records
    // a Redis that started on its files, restarting none (components/redisSentinelGroup/render.ts)
    expect(steps.filter((x) => !added.test(x))).toEqual(["rd1", "rd2", "rd3"].map((n) => `update dc-cache-${n}-redis-restart`));
    expect(steps.filter((x) => added.test(x)).sort()).toEqual(["create dc-cache-rd1-forget-removed", "create dc-cache-rd1-hand-over",
      ...["rd1", "rd2", "rd3"].flatMap((n) => ["keepalived-apply", "keepalived-quiesce", "keepalived-resume", "rotate-add", "rotate-drop", "rotate-switch"]
        .map((st) => `create dc-cache-${n}-${st}`))].sort());
    const upgraded = await now.up();
    expect(upgraded.summary.result).toBe("succeeded");
    const again = await now.up();
    expect(changes(again.summary.resourceChanges)).toEqual({});
  });
});
