// Two datacenters through the real engine: dc1 (primary) and dc2 (a Patroni standby cluster of dc1)
// as two stacks of one file backend, joined only by their exported contracts. Needs root: boots the
// routed two-site lab (lab/sites.sh: 10 nspawn VMs on hsbr1/hsbr2, 10.213.11.0/24 and 10.213.12.0/24,
// no L2 between them) in beforeAll and removes it in afterAll.
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import axios from "axios";
import { Stack } from "@pulumi/pulumi/automation";
import { changes } from "../../engine/automation";
import { hostsOf, openSiteStack, SiteOptions, SITES_ENV, SITES_STATE, siteOf, sitesDown, sitesUp } from "../../lab/sites";
import { bootSite, failoverDrill, labHandles, switchoverDrill, switchoverViaCli } from "../../bench/sitesDrills";
import { failover, switchover } from "../../ops/sites";
import { until } from "../support/until";

const run = promisify(execFile);
const LAB = path.resolve(__dirname, "..", "..", "lab");
jest.setTimeout(30 * 60 * 1000);
const progress = (msg: string) => process.stderr.write(`e2e-sites: ${new Date().toISOString()} ${msg}\n`);
beforeEach(() => progress(`start: ${expect.getState().currentTestName}`));
afterEach(() => progress(`end: ${expect.getState().currentTestName}`));

/** ssh into a sites-lab VM by name; `stdin` carries anything secret. */
async function ssh(name: string, cmd: string, stdin?: string): Promise<string> {
  const p = run("bash", [path.join(LAB, "ssh.sh"), name, cmd], { env: SITES_ENV, timeout: 30000 });
  if (stdin !== undefined) p.child.stdin!.end(stdin); else p.child.stdin!.end();
  return (await p).stdout.trim();
}

/** The member of a site whose Patroni REST answers 200 on `endpoint` (the contract's leader rule). */
async function memberAnswering(site: string, endpoint: "/primary" | "/standby-leader"): Promise<{ name: string; address: string } | undefined> {
  for (const m of hostsOf(site, "postgres")) {
    try { if ((await axios.get(`http://${m.address}:8008${endpoint}`, { timeout: 2000, validateStatus: () => true })).status === 200) return m; } catch { /* down */ }
  }
  return undefined;
}

const sql = (db: string, q: string) => `cd /tmp && runuser -u postgres -- psql -X -tA -d ${db} -c "${q}"`;
/** The application's login, as a pgpass line on stdin (the app password is the primary site's). */
const appPgpass = () => {
  const pw = JSON.parse(fs.readFileSync(path.join(SITES_STATE, "secrets-shared.json"), "utf8")).postgresApp as string;
  return `*:*:*:workspad:${pw.replace(/\\/g, "\\\\").replace(/:/g, "\\:")}\n`;
};
/** psql run on a VM as the application, through `host:port`, password from stdin into a 0600 temp file. */
const appPsql = (host: string, port: number, q: string) =>
  `umask 077; f=$(mktemp); trap 'rm -f "$f"' EXIT; cat > "$f"; PGPASSFILE="$f" PGCONNECT_TIMEOUT=5 psql -X -tA -h ${host} -p ${port} -U workspad -d workspad -c "${q}"`;

describe("two datacenters joined by stack references (needs root: routed nspawn sites)", () => {
  const stacks: Record<string, Stack> = {};
  const open = async (name: string, o: SiteOptions = {}) => (stacks[name] = await openSiteStack(name, o));
  const up = async (name: string) => {
    const t0 = Date.now();
    const r = await stacks[name].up({ onOutput: (s) => process.stdout.write(s) });
    progress(`${name} up ${r.summary.result} in ${((Date.now() - t0) / 1000).toFixed(1)}s, changes ${JSON.stringify(changes(r.summary.resourceChanges))}`);
    return r;
  };

  beforeAll(async () => {
    sitesUp();
    // every stack exists before the first up: a peer that was never deployed has no outputs (allowed for a standby peer)
    await open("dc1");
    await open("dc2");
  });

  afterAll(() => {
    if (!process.env.HASTACK_KEEP_LAB) sitesDown();
  });

  it("dc1 comes up as the primary site while dc2 has never been deployed", async () => {
    const r = await up("dc1");
    expect(r.summary.result).toBe("succeeded");
    expect(r.outputs.site.value).toMatchObject({ site: "dc1", role: "primary", primarySite: "dc1", epoch: 1 });
    expect(r.outputs.postgres.value.leaderName).toBeUndefined();
    expect(await memberAnswering("dc1", "/primary")).toBeDefined();
  });

  it("dc2 comes up as a standby cluster of dc1, streaming through the permanent slot dc1 keeps for it", async () => {
    const r = await up("dc2");
    expect(r.summary.result).toBe("succeeded");
    expect(r.outputs.site.value).toMatchObject({ site: "dc2", role: "standby", primarySite: "dc1", epoch: 1 });
    expect(await memberAnswering("dc2", "/primary")).toBeUndefined();
    const standbyLeader = await memberAnswering("dc2", "/standby-leader");
    expect(standbyLeader).toBeDefined();
    const leader = (await memberAnswering("dc1", "/primary"))!;
    expect(await ssh(leader.name, sql("postgres", "select active from pg_replication_slots where slot_name = 'standby_dc2'"))).toBe("t");
    expect(await ssh(leader.name, sql("postgres", "select client_addr from pg_stat_replication where application_name = '" + standbyLeader!.name + "'"))).toBe(standbyLeader!.address);
  });

  it("a write in dc1 reads back on dc2's standby leader", async () => {
    const mark = `dc1-${Date.now()}`;
    // a client of site 1 (a proxy VM there) writes through site 1's VIP
    const v1 = siteOf("dc1").vips.proxy;
    await ssh("d1px2", appPsql(v1, 6432, `create table if not exists notes(body text); insert into notes values ('${mark}')`), appPgpass());
    const sl = (await memberAnswering("dc2", "/standby-leader"))!;
    await until(`${mark} on ${sl.name}`, async () => (await ssh(sl.name, sql("workspad", `select count(*) from notes where body = '${mark}'`))) === "1", 30, 500);
    expect(await ssh(sl.name, sql("workspad", "select pg_is_in_recovery()"))).toBe("t");
  });

  it("a client in dc2 writes through dc2's own VIP and the row lands on dc1's leader", async () => {
    const mark = `dc2-${Date.now()}`;
    const v2 = siteOf("dc2").vips.proxy;
    const out = await ssh("d2px2", appPsql(v2, 6432, `insert into notes values ('${mark}') returning host(inet_server_addr()), pg_is_in_recovery()`), appPgpass());
    const leader = (await memberAnswering("dc1", "/primary"))!;
    expect(out.split("\n")[0]).toBe(`${leader.address}|f`);
    expect(await ssh(leader.name, sql("workspad", `select count(*) from notes where body = '${mark}'`))).toBe("1");
  });

  it("a second pulumi up on each stack changes nothing", async () => {
    // dc1's first up ran before dc2 existed: its next up learns dc2's members (HAProxy fallback, the promotion check)
    const first = changes((await up("dc1")).summary.resourceChanges);
    expect(Object.keys(first).filter((op) => !["read", "update", "replace", "create", "delete"].includes(op))).toEqual([]);
    expect(changes((await up("dc2")).summary.resourceChanges)).toEqual({});
    expect(changes((await up("dc1")).summary.resourceChanges)).toEqual({});
  });

  it("a stack whose primarySite disagrees with its peer at the same epoch is refused at preview, naming both values", async () => {
    // in a process of its own: an inline program's error also surfaces as an unhandled rejection in the host process
    const res = await run("npx", ["ts-node", "--transpile-only", path.join(LAB, "sites.ts"), "preview", "dc1", "dc2", "1"], { cwd: path.join(LAB, ".."), timeout: 600000 })
      .then(() => ({ code: 0, stderr: "" }), (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }));
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('Invalid hastack:site.primarySite: got "dc2"; expected "dc1", what peer dc2 says at the same epoch 1');
    await open("dc1");
    expect(changes((await stacks.dc1.preview()).changeSummary)).toEqual({});
  });

  const drills: Record<string, unknown>[] = [];
  afterAll(() => {
    fs.mkdirSync(path.join(LAB, "..", "bench", ".work"), { recursive: true });
    fs.writeFileSync(path.join(LAB, "..", "bench", ".work", "e2e-sites.json"), JSON.stringify(drills, null, 2));
  });
  /**
   * After a role change: each stack's `pulumi up` (old primary first), then a second one that changes nothing on
   * any host. A "read" is the StackReference re-reading a peer whose outputs its own up just changed.
   */
  const converge = async (order: string[]) => {
    for (const n of order) { await open(n); expect((await up(n)).summary.result).toBe("succeeded"); }
    for (const n of order) {
      const { read: _peerRead, ...rest } = changes((await up(n)).summary.resourceChanges);
      expect(rest).toEqual({});
    }
  };

  it("a planned switchover to dc2 pauses a dc1 client's writes for seconds and loses none; both stacks converge with nothing left to change", async () => {
    const d = await switchoverDrill("dc2", "dc1", progress);
    drills.push({ drill: "switchover dc1→dc2", ...d, report: { ...d.report, lines: undefined } });
    expect(d.lost).toBe(0);
    expect(d.acked).toBeGreaterThan(100);
    expect(d.report.writePauseSeconds).toBeLessThanOrEqual(30);
    expect(d.clientGapSeconds).toBeLessThanOrEqual(30);
    expect(await memberAnswering("dc2", "/primary")).toBeDefined();
    expect(await memberAnswering("dc1", "/primary")).toBeUndefined();
    expect(await memberAnswering("dc1", "/standby-leader")).toBeDefined();
    await converge(["dc1", "dc2"]);
    expect((await stacks.dc2.outputs()).site.value).toMatchObject({ role: "primary", primarySite: "dc2", epoch: 2 });
  });

  it("running the switchover again changes nothing", async () => {
    const { handles, setRole } = await labHandles();
    const r = await switchover(handles, "dc2", { setRole, log: progress });
    expect(r.nothingToDo).toBe(true);
    expect(await memberAnswering("dc2", "/primary")).toBeDefined();
  });

  it("switches back to dc1 with the user's command (npm run switchover on the stacks' own files), a dc2 client losing nothing", async () => {
    const d = await switchoverViaCli("dc1", "dc2", progress);
    drills.push({ drill: "switchover dc2→dc1 (CLI)", ...d, report: { ...d.report, lines: undefined } });
    expect(d.lost).toBe(0);
    expect(d.acked).toBeGreaterThan(100);
    expect(d.report.writePauseSeconds).toBeLessThanOrEqual(30);
    expect(await memberAnswering("dc1", "/primary")).toBeDefined();
    expect(await memberAnswering("dc2", "/standby-leader")).toBeDefined();
    // the command recorded the new role in both stack files itself
    for (const n of ["dc1", "dc2"]) {
      const site = JSON.parse((await stacks[n].getConfig("hastack:site")).value);
      expect({ stack: n, primarySite: site.primarySite, epoch: Number(site.epoch) }).toEqual({ stack: n, primarySite: "dc1", epoch: 3 });
    }
    // and ran both ups: the next ones change nothing on any host
    for (const n of ["dc2", "dc1"]) {
      await open(n);
      const { read: _peerRead, ...rest } = changes((await up(n)).summary.resourceChanges);
      expect(rest).toEqual({});
    }
  });

  it("unplanned loss of dc1 (every VM crashed): a forced failover makes dc2 accept writes and reports its WAL position", async () => {
    const d = await failoverDrill("dc1", "dc2", progress);
    drills.push({ drill: "failover dc1 lost → dc2", ...d, report: { ...d.report, lines: undefined } });
    expect(d.report.promotedAt?.replayed).toBeGreaterThan(0);
    expect(d.decisionToWritesSeconds).toBeLessThan(60);
    expect(await memberAnswering("dc2", "/primary")).toBeDefined();
    await open("dc2");
    expect((await up("dc2")).summary.result).toBe("succeeded");
    expect(changes((await up("dc2")).summary.resourceChanges)).toEqual({});
  });

  it("a planned switchover, and a failover without --force, are refused with a clear error while dc1 is down", async () => {
    const { handles, setRole } = await labHandles();
    await expect(switchover(handles, "dc1", { setRole, log: progress })).rejects.toThrow(/site dc1 does not answer .*a planned switchover needs every site/);
    // dc2 leads already: a failover to it is a no-op, one to the lost site is refused
    await expect(failover(handles, "dc1", false, { setRole, log: progress })).rejects.toThrow(/dc2 still accepts writes: use `npm run switchover -- --to dc1`/);
  });

  it("dc1 comes back as a standby of dc2 with its own pulumi up (never a second primary), streams again, and converges", async () => {
    const t0 = Date.now();
    await bootSite("dc1");
    // the fence (site-role fence before Patroni starts): dc2 leads, so dc1 comes up as its standby before any deploy
    await until("a dc1 standby leader after the boot", () => memberAnswering("dc1", "/standby-leader"), 240, 500);
    expect(await memberAnswering("dc1", "/primary")).toBeUndefined();
    await open("dc1");
    const r = await up("dc1");
    expect(r.summary.result).toBe("succeeded");
    expect(r.outputs.site.value).toMatchObject({ role: "standby", primarySite: "dc2" });
    const leader = (await memberAnswering("dc2", "/primary"))!;
    await until("dc1 streaming from dc2", async () => (await ssh(leader.name, sql("postgres", "select active from pg_replication_slots where slot_name = 'standby_dc1'"))) === "t", 180, 500);
    drills.push({ drill: "dc1 returns as standby", secondsUntilStreaming: (Date.now() - t0) / 1000 });
    expect(await memberAnswering("dc1", "/primary")).toBeUndefined();
    await converge(["dc1", "dc2"]);
  });
});
