// The reference datacenter on 12 lab VMs, built and changed by the real Pulumi engine, then
// broken on purpose. Needs root: boots systemd-nspawn VMs on the private bridge 10.213.7.0/24.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as https from "https";
import * as path from "path";
import axios from "axios";
import { Stack } from "@pulumi/pulumi/automation";
import { changes } from "../../engine/automation";
import { openLabStack } from "../../lab/deploy";
import { byRole, LabOptions, layout } from "../../lab/stack";
import * as d from "../../bench/drills";

const REPO = path.resolve(__dirname, "..", "..");
const results: (d.DrillResult & { synchronousMode?: boolean })[] = [];
const http = axios.create({ timeout: 10000, httpsAgent: new https.Agent({ rejectUnauthorized: false }), validateStatus: () => true });

jest.setTimeout(30 * 60 * 1000);

// progress straight to stderr: jest holds console output until a test file ends
const progress = (msg: string) => process.stderr.write(`e2e: ${new Date().toISOString()} ${msg}\n`);
beforeEach(() => progress(`start: ${expect.getState().currentTestName}`));
afterEach(() => progress(`end: ${expect.getState().currentTestName}`));

describe("lab datacenter through the real engine (needs root: nspawn VMs on 10.213.7.0/24)", () => {
  let stack: Stack;
  let endpoint: string;
  const open = async (o: LabOptions = {}) => (stack = await openLabStack(o));

  beforeAll(async () => {
    execFileSync("bash", [path.join(REPO, "lab", "up-vms.sh")], { stdio: "inherit" });
    await open();
  });

  afterAll(() => {
    fs.mkdirSync(path.join(REPO, "bench", ".work"), { recursive: true });
    fs.writeFileSync(path.join(REPO, "bench", ".work", "e2e-drills.json"), JSON.stringify(results, null, 2));
    if (!process.env.HASTACK_KEEP_LAB) execFileSync("bash", [path.join(REPO, "lab", "down.sh")], { stdio: "inherit" });
  });

  it("pulumi up builds the whole datacenter", async () => {
    const up = await stack.up({ onOutput: (s) => process.stdout.write(s) });
    expect(up.summary.result).toBe("succeeded");
    endpoint = up.outputs.endpoint.value;
    expect(endpoint).toBe(`https://${byRole("nginx")[0].address}:443`);
    expect(await d.patroniHealthy()).toBe(true);
  });

  it("a request goes HTTPS → nginx → WorksPad → PgBouncer VIP → Patroni leader, and a write reads back", async () => {
    const health = await http.get(`${endpoint}/health`);
    expect(health.status).toBe(200);
    expect(health.data.db).toBe("ok");
    const body = `note ${Date.now()}`;
    const post = await http.post(`${endpoint}/api/notes`, body);
    expect(post.status).toBe(201);
    const get = await http.get(`${endpoint}/api/notes/${post.data.id}`);
    expect(get.status).toBe(200);
    expect(JSON.stringify(get.data)).toContain(body);
    // the write landed on the leader (replicas are read-only, so the row exists there first)
    const l = (await d.patroniLeader())!;
    const onLeader = await d.ssh(l, `cd /tmp && runuser -u postgres -- psql -tA -d workspad -c "select count(*) from notes where body = '${body}'"`);
    expect(onLeader).toBe("1");
  });

  it("a second pulumi up changes nothing", async () => {
    const up = await stack.up();
    expect(changes(up.summary.resourceChanges)).toEqual({});
  });

  it("changing PgBouncer's pool size touches only PgBouncer's resources, as the preview says", async () => {
    await open({ poolSize: 30 });
    const touched = new Set<string>();
    const pv = await stack.preview({
      onEvent: (e) => {
        const m = e.resourcePreEvent?.metadata;
        if (m && m.op !== "same") touched.add(m.urn.split("::").pop()!);
      },
    });
    expect(pv.changeSummary.same).toBeGreaterThan(100);
    // the ini file changes, and only the PgBouncer pair's own steps that follow it re-run
    expect([...touched]).toEqual(expect.arrayContaining(["dc-proxy-px1-pgbouncer-ini", "dc-proxy-px2-pgbouncer-ini"]));
    for (const name of touched) expect(name).toMatch(/^dc-proxy-px\d-/);
    const up = await stack.up();
    const applied = changes(up.summary.resourceChanges);
    expect(applied).toEqual(changes(pv.changeSummary));
    expect(await d.ssh("px1", "grep -E '^default_pool_size' /etc/pgbouncer/pgbouncer.ini")).toBe("default_pool_size = 30");
    await open();
    expect((await stack.up()).summary.result).toBe("succeeded");
  });

  describe("failure drills (a writer runs through the VIP for the whole drill)", () => {
    it("crash of the Patroni leader's VM: a replica takes over, the old leader rejoins as a replica", async () => {
      const r = await d.leaderCrash();
      results.push({ ...r, synchronousMode: false });
      expect(r.writeOutageSeconds).toBeLessThan(60);
      expect(r.ackedWrites).toBeGreaterThan(0);
      expect(await d.patroniHealthy()).toBe(true);
    });

    it("PgBouncer stopped on the VIP holder (keepalived still running): the VIP moves", async () => {
      const r = await d.pgbouncerStop();
      results.push(r);
      expect(r.writeOutageSeconds).toBeLessThan(30);
      expect(r.lostWrites).toBe(0);
    });

    it("crash of the VIP holder's VM: the other proxy takes the VIP, the crashed one returns as backup", async () => {
      const r = await d.vipHolderCrash();
      results.push(r);
      expect(r.writeOutageSeconds).toBeLessThan(30);
      expect(r.lostWrites).toBe(0);
      expect(await d.vipHolders(layout.vips.proxy)).toHaveLength(1);
    });

    it("crash of the WorksPad node serving the client: nginx routes around it", async () => {
      const r = await d.worksPadCrash(endpoint);
      results.push(r);
      expect(r.writeOutageSeconds).toBeLessThan(30);
      expect(r.lostWrites).toBe(0);
    });

    it("crash of the Redis master's VM: Sentinel promotes a replica, the VIP follows, the old master rejoins as replica", async () => {
      const r = await d.redisMasterCrash();
      results.push(r);
      expect(r.writeOutageSeconds).toBeLessThan(30);
    });

    it("with synchronous_mode on, a leader crash loses no acknowledged write", async () => {
      await open({ synchronousMode: true });
      expect((await stack.up()).summary.result).toBe("succeeded");
      await d.until("synchronous_mode in Patroni's config", async () => (await axios.get(`http://${byRole("postgres")[0].address}:8008/config`, { timeout: 2000 })).data.synchronous_mode === true, 30);
      await d.until("a synchronous standby", async () => (await d.patroni()).some((m) => m.role === "sync_standby"), 60);
      const r = await d.leaderCrash();
      results.push({ ...r, synchronousMode: true });
      expect(r.lostWrites).toBe(0);
      await open();
      expect((await stack.up()).summary.result).toBe("succeeded");
    });
  });

  it("pulumi destroy stops what the stack installed and keeps PostgreSQL's data", async () => {
    const res = await stack.destroy();
    expect(res.summary.result).toBe("succeeded");
    for (const p of byRole("postgres")) {
      expect(await d.ssh(p.name, "systemctl show -p ActiveState --value patroni")).not.toBe("active");
      expect(await d.ssh(p.name, "test -f /var/lib/postgresql/15/hastack/PG_VERSION && echo kept")).toBe("kept");
    }
    expect(await d.ssh("ngx1", "systemctl show -p ActiveState --value nginx")).not.toBe("active");
  });
});
