// Changing which site leads the PostgreSQL data, across datacenter stacks: a planned switchover (no
// acknowledged write lost, writes paused for seconds) and a forced failover when the leading site is gone.
// The data path runs over SSH with the hosts' own script (components/patroniCluster/site-role.sh), then
// every stack's config (primarySite, epoch) is updated and `pulumi up` makes each site match it.
import { ConfigMap, Stack } from "@pulumi/pulumi/automation";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Connection, closeMaster, openMaster, run as sshRun } from "../engine/command-provider/ssh";
import { changes } from "../engine/automation";
import { parseContract, SiteContract } from "../stacks/contract";
import { standbySlotName } from "../stacks/site";
import { SITE_ROLE_PATH, demoteBody, memberRestUrls, parseStatus, promoteBody, MemberStatus } from "../components/patroniCluster/siteRole";
import { shq } from "../components/common";
import { CHECK_USER, PATHS as PGB } from "../components/pgBouncerVipPair/render";

/** One datacenter stack, opened by the caller (a workspace of this project, or the lab's). */
export interface SiteHandle {
  readonly name: string;
  readonly stack: Stack;
}

export interface SiteOpsOptions {
  /** Progress lines. @default console.log */
  readonly log?: (line: string) => void;
  /**
   * Record the new role in a stack's config. @default `pulumi config set --path hastack:site.primarySite/epoch`
   * (the lab passes its own, because it rebuilds the whole config from its layout).
   */
  readonly setRole?: (site: SiteHandle, primarySite: string, epoch: number) => Promise<void>;
  /** Run `pulumi up` on every stack afterwards. @default true */
  readonly converge?: boolean;
}

interface Host { name: string; address: string }

/** What the tools need of one site: its contract, its config, and SSH to its hosts. */
interface SiteView {
  readonly handle: SiteHandle;
  readonly contract: SiteContract;
  readonly primarySite: string;
  readonly epoch: number;
  readonly members: Host[];
  readonly proxies: Host[];
  readonly conn: (h: Host) => Connection;
}

export interface Phase { readonly name: string; readonly seconds: number; readonly detail?: string }

export interface SwitchReport {
  readonly from: string;
  readonly to: string;
  readonly epoch: number;
  readonly nothingToDo?: boolean;
  readonly phases: Phase[];
  /** Seconds between pausing and resuming PgBouncer in every site (the clients' wait). */
  readonly writePauseSeconds?: number;
  /** Seconds from the end of the pause until the old site streams from the new one again. */
  readonly streamsAgainSeconds?: number;
  readonly lines: string[];
}

const json = (c: ConfigMap, k: string): any => (c[k] ? JSON.parse(c[k].value) : undefined);

async function view(h: SiteHandle): Promise<SiteView> {
  const outs = await h.stack.outputs();
  if (!outs.site) throw new Error(`stack ${h.name} has no "site" output: run \`pulumi up\` on it first`);
  const contract = parseContract(h.name, outs.site.value);
  const cfg = await h.stack.getAllConfig();
  const site = json(cfg, "hastack:site");
  if (!site) throw new Error(`stack ${h.name} has no hastack:site config: it is not part of a multi-site setup`);
  const ssh = json(cfg, "hastack:ssh") ?? {};
  const key = cfg["hastack:sshPrivateKey"]?.value;
  if (!key) throw new Error(`stack ${h.name}: hastack:sshPrivateKey is not set`);
  const hostKeys: Record<string, string> = ssh.hostKeys ?? {};
  const conn = (x: Host): Connection => {
    if (!hostKeys[x.address] && !ssh.trustOnFirstUse) throw new Error(`stack ${h.name}: no pinned SSH host key for ${x.name} (${x.address}) in hastack:ssh.hostKeys`);
    return { host: x.address, port: ssh.port ?? 22, user: ssh.user ?? "root", privateKey: key, hostKey: hostKeys[x.address], dialErrorLimit: 1, perDialTimeout: 5,
      controlPath: masters.get(x.address) };
  };
  const proxy = json(cfg, "hastack:proxy") ?? {};
  return {
    handle: h, contract, primarySite: site.primarySite, epoch: site.epoch,
    members: contract.postgres.members.map((m) => ({ name: m.name, address: m.address })),
    proxies: (proxy.nodes ?? []).map((n: Host) => ({ name: n.name, address: n.address })), conn,
  };
}

/** Master SSH connections (address → control socket), so the timed phases pay no handshake. */
const masters = new Map<string, string>();

async function openMasters(sites: SiteView[]): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-ops-"));
  const hosts = sites.flatMap((v) => [...v.members, ...v.proxies].map((h) => ({ v, h })));
  const ok = await Promise.all(hosts.map(async ({ v, h }) => {
    const cp = path.join(dir, h.address);
    if (await openMaster(v.conn(h), cp)) { masters.set(h.address, cp); return true; }
    return false;
  }));
  return `${ok.filter(Boolean).length} of ${hosts.length} hosts`;
}

async function closeMasters(sites: SiteView[]): Promise<void> {
  await Promise.all(sites.flatMap((v) => [...v.members, ...v.proxies].map(async (h) => {
    const cp = masters.get(h.address);
    if (cp) { masters.delete(h.address); await closeMaster(v.conn(h), cp); }
  })));
}

async function onHost(v: SiteView, h: Host, script: string, stdin?: string): Promise<{ ok: boolean; out: string; err: string }> {
  try {
    const r = await sshRun(v.conn(h), script, stdin);
    return { ok: r.code === 0, out: r.stdout, err: r.stderr.trim() || (r.code === 255 ? "unreachable" : `exit ${r.code}`) };
  } catch (e) {
    return { ok: false, out: "", err: e instanceof Error ? e.message : String(e) };
  }
}

/** `site-role status` of every member of a site (undefined where the member does not answer). */
async function statuses(v: SiteView): Promise<{ host: Host; status?: MemberStatus; err?: string }[]> {
  return Promise.all(v.members.map(async (host) => {
    const r = await onHost(v, host, `${SITE_ROLE_PATH} status`);
    if (!r.ok) return { host, err: r.err };
    try { return { host, status: parseStatus(r.out) }; } catch (e) { return { host, err: String(e) }; }
  }));
}

const leads = (st: { status?: MemberStatus }[]) => st.some((x) => x.status?.readWrite);
const answered = (st: { status?: MemberStatus }[]) => st.some((x) => x.status);

export class Clock {
  readonly phases: Phase[] = [];
  readonly lines: string[] = [];
  constructor(private readonly log: (l: string) => void) {}
  say(line: string): void { this.lines.push(line); this.log(line); }
  /** Run one phase, timed and printed. */
  async phase<T>(name: string, f: () => Promise<T>, detail?: (x: T) => string | undefined): Promise<T> {
    const t0 = Date.now();
    const x = await f();
    const seconds = (Date.now() - t0) / 1000;
    const d = detail?.(x);
    this.phases.push({ name, seconds, ...(d ? { detail: d } : {}) });
    this.say(`  ${name}: ${seconds.toFixed(1)} s${d ? ` (${d})` : ""}`);
    return x;
  }
}

/** Every member of a site runs one site-role command; the leading member's output is the answer. */
async function onMembers(v: SiteView, cmd: string, stdin: string): Promise<string> {
  const rs = await Promise.all(v.members.map(async (h) => ({ h, r: await onHost(v, h, cmd, stdin) })));
  const failed = rs.filter((x) => !x.r.ok && x.r.err !== "unreachable");
  if (failed.length) throw new Error(`${cmd.split(" ")[1]} on ${v.handle.name} failed: ${failed.map((x) => `${x.h.name}: ${x.r.err}`).join("; ")}`);
  return rs.map((x) => x.r.out.trim()).filter((o) => o && o !== "not-leader").join("; ");
}

/**
 * PgBouncer PAUSE/RESUME by signal on every proxy (SIGUSR1/SIGUSR2): clients wait instead of failing. PAUSE
 * lets running queries end, then closes every server connection; the pause is complete when SHOW SERVERS is
 * empty (PgBouncer 1.18, Debian 12's, has no SHOW STATE). Waited for up to 2 s only: in session pooling (the
 * default poolMode) a client's open connection keeps its server connection, so the pause never completes for
 * it; the demotion ends that session (the client sees one error and reconnects). In transaction pooling clients
 * wait without an error.
 */
async function pgbouncers(sites: SiteView[], action: "pause" | "resume"): Promise<string> {
  const sig = action === "pause" ? "SIGUSR1" : "SIGUSR2";
  const rs = await Promise.all(sites.flatMap((v) => v.proxies.map(async (h) => {
    const servers = `PGPASSFILE=${shq(PGB.checkPgpass)} psql -X -qAt -w -h 127.0.0.1 -p ${v.contract.vips.db.port} -U ${CHECK_USER} -d pgbouncer -c 'SHOW SERVERS' | wc -l`;
    const script = action === "resume" ? `systemctl kill -s ${sig} pgbouncer.service` : [
      // a deadline by the clock, not a count of polls: on a loaded host one psql poll took ~0.6 s, so 20 polls were 12-15 s of pause
      `systemctl kill -s ${sig} pgbouncer.service`, "end=$(( $(date +%s%N) + 2000000000 ))",
      `while [ "$(${servers})" != 0 ] && [ "$(date +%s%N)" -lt "$end" ]; do sleep 0.1; done`,
      `[ "$(${servers})" = 0 ] && echo drained || echo busy`].join("\n");
    const r = await onHost(v, h, script);
    return `${h.name}:${r.ok ? (action === "pause" ? `paused${r.out.trim() === "busy" ? " (server connections still open after 2 s)" : ""}` : "resumed") : r.err}`;
  })));
  const failed = rs.filter((x) => !x.includes(`:${action}d`));
  // a proxy that cannot be paused only means its clients see an error instead of a wait; one that cannot be resumed must be reported
  if (failed.length && action === "resume") throw new Error(`could not resume PgBouncer on ${failed.join(", ")}: run \`systemctl kill -s SIGUSR2 pgbouncer.service\` there`);
  return rs.join(" ");
}

/**
 * Record the role in a stack's own config, keeping the form the user wrote it in. A YAML object in
 * Pulumi.<stack>.yaml gets its two leaves set by path (a two-line diff for the merge request). A section
 * set as one JSON string (`pulumi config set hastack:site '{…}'`) would be replaced whole by a path set,
 * losing name and peers (the sites e2e found this): it is written back whole, as a JSON string again.
 */
export async function recordRoleInStack(s: SiteHandle, primarySite: string, epoch: number): Promise<void> {
  const before = JSON.parse((await s.stack.getConfig("hastack:site")).value) as Record<string, unknown>;
  await s.stack.setConfig("hastack:site.primarySite", { value: primarySite }, true);
  await s.stack.setConfig("hastack:site.epoch", { value: String(epoch) }, true);
  const after = JSON.parse((await s.stack.getConfig("hastack:site")).value) as Record<string, unknown>;
  if (Object.keys(before).some((k) => !(k in after))) {
    await s.stack.setConfig("hastack:site", { value: JSON.stringify({ ...before, primarySite, epoch }) }, false);
  }
}

/** Config (primarySite, epoch) on every stack, then `pulumi up` on the old primary site first, as the manual path does. */
async function recordAndConverge(c: Clock, sites: SiteView[], to: string, epoch: number, o: SiteOpsOptions, order: SiteView[]): Promise<void> {
  const setRole = o.setRole ?? recordRoleInStack;
  await c.phase("config: primarySite and epoch on every stack", async () => { for (const v of sites) await setRole(v.handle, to, epoch); }, () => `primarySite=${to} epoch=${epoch}`);
  if (o.converge === false) return;
  for (const v of order) {
    await c.phase(`pulumi up ${v.handle.name}`, async () => {
      const r = await v.handle.stack.up({ onOutput: () => undefined });
      if (r.summary.result !== "succeeded") throw new Error(`pulumi up of ${v.handle.name}: ${r.summary.result}`);
      return changes(r.summary.resourceChanges);
    }, (ch) => `changes ${JSON.stringify(ch)}`);
  }
}

/** The new leader's slot for the old site is in use: the old site streams again. */
async function waitStreaming(target: SiteView, old: SiteView, timeoutS: number): Promise<string> {
  const q = `select active from pg_replication_slots where slot_name = '${standbySlotName(old.handle.name)}'`;
  const script = `cd / && runuser -u postgres -- psql -X -qAt -h /var/run/postgresql -d postgres -c ${shq(q)}`;
  const end = Date.now() + timeoutS * 1000;
  for (;;) {
    for (const h of target.members) {
      const r = await onHost(target, h, script);
      if (r.ok && r.out.trim() === "t") return `slot ${standbySlotName(old.handle.name)} active on ${h.name}`;
    }
    if (Date.now() > end) throw new Error(`${old.handle.name} does not stream from ${target.handle.name} after ${timeoutS} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

function pick(sites: SiteView[], to: string): SiteView {
  const t = sites.find((v) => v.handle.name === to);
  if (!t) throw new Error(`--to ${to}: not one of the stacks given (${sites.map((v) => v.handle.name).join(", ")})`);
  return t;
}

/** A switchover read and checked, ready to run (see prepareSwitchover). */
export interface SwitchoverPlan {
  readonly c: Clock;
  readonly sites: SiteView[];
  readonly target: SiteView;
  readonly old: SiteView;
  readonly epoch: number;
  readonly newEpoch: number;
  /** Set when there is nothing to do (a second run). */
  readonly done?: SwitchReport;
  readonly o: SiteOpsOptions;
}

/** Read the stacks, open SSH to every host, ask every member: refuses an unreachable site or two primaries. */
export async function prepareSwitchover(handles: SiteHandle[], to: string, o: SiteOpsOptions = {}): Promise<SwitchoverPlan> {
  const c = new Clock(o.log ?? console.log);
  const sites = await c.phase("read the stacks", () => Promise.all(handles.map(view)));
  const target = pick(sites, to);
  await c.phase("open SSH to every host", () => openMasters(sites), (x) => x);
  try {
    const live = await c.phase("ask every member", () => Promise.all(sites.map(statuses)));
    sites.forEach((v, i) => {
      if (!answered(live[i])) {
        throw new Error(`site ${v.handle.name} does not answer (${live[i].map((x) => `${x.host.name}: ${x.err}`).join("; ")}): ` +
          `a planned switchover needs every site; if ${v.handle.name} is lost, use \`npm run failover -- --to ${to} --force\``);
      }
    });
    const leading = sites.filter((_, i) => leads(live[i]));
    if (leading.length > 1) throw new Error(`more than one site accepts writes (${leading.map((v) => v.handle.name).join(", ")}): refusing; demote all but one first`);
    // no site leads: an earlier run stopped between the demotion and the promotion; go on from there
    const interrupted = leading.length === 0 ? sites.find((v) => v !== target && v.handle.name === target.primarySite) : undefined;
    if (leading.length === 0 && !interrupted) throw new Error(`no site accepts writes and ${to}'s config names no other primary site: refusing (see each site's Patroni)`);
    const old = leading[0] ?? interrupted!;
    if (interrupted) c.say(`no site accepts writes: continuing an interrupted switchover from ${old.handle.name}`);
    const epoch = Math.max(...sites.map((v) => v.epoch));
    // an earlier run that promoted but stopped before recording keeps the epoch it recorded on the target, if any
    const newEpoch = old === target && target.primarySite === to ? target.epoch : epoch + 1;
    const recorded = sites.every((v) => v.primarySite === to && v.epoch === epoch);
    const done = old === target && recorded ? { from: to, to, epoch, nothingToDo: true, phases: c.phases, lines: c.lines } : undefined;
    if (done) c.say(`${to} already leads at epoch ${epoch}: nothing to do`);
    return { c, sites, target, old, epoch, newEpoch, done, o };
  } catch (e) {
    await closeMasters(sites);
    throw e;
  }
}

/**
 * Run a prepared switchover: pause PgBouncer everywhere, demote the leading site cleanly, let the target replay
 * up to the old leader's shutdown checkpoint and promote it, resume; then record the roles and converge.
 */
export async function runSwitchover(p: SwitchoverPlan): Promise<SwitchReport> {
  const { c, sites, target, old, newEpoch, o } = p;
  const to = target.handle.name;
  try {
    if (p.done) return p.done;
    let writePauseSeconds: number | undefined, streamsAgainSeconds: number | undefined;
    if (old !== target) {
      c.say(`switchover ${old.handle.name} → ${to} (epoch ${p.epoch} → ${newEpoch})`);
      const slots = sites.filter((v) => v !== target).map((v) => standbySlotName(v.handle.name));
      const t0 = Date.now();
      await c.phase("pause PgBouncer in every site", () => pgbouncers(sites, "pause"), (x) => x);
      try {
        await c.phase(`demote ${old.handle.name} (pause Patroni, fast shutdown, standby_cluster)`, () =>
          onMembers(old, `${SITE_ROLE_PATH} demote`, demoteBody({ hosts: target.members.map((m) => m.address), port: target.contract.postgres.members[0].pgPort, slotName: standbySlotName(old.handle.name) })), (x) => x);
        await c.phase(`promote ${to} (after replaying ${old.handle.name}'s last position)`, () =>
          onMembers(target, [SITE_ROLE_PATH, "promote", ...memberRestUrls(old.contract.postgres.members).map(shq)].join(" "), promoteBody(slots)), (x) => x);
      } finally {
        await c.phase("resume PgBouncer in every site", () => pgbouncers(sites, "resume"), (x) => x);
        writePauseSeconds = (Date.now() - t0) / 1000;
      }
      c.say(`  writes paused for ${writePauseSeconds.toFixed(1)} s`);
      const t1 = Date.now();
      await c.phase(`${old.handle.name} streams from ${to}`, () => waitStreaming(target, old, 180), (x) => x);
      streamsAgainSeconds = (Date.now() - t1) / 1000;
    } else {
      c.say(`${to} already accepts writes; recording the roles (an earlier run stopped before it)`);
    }
    await closeMasters(sites);
    await recordAndConverge(c, sites, to, newEpoch, o, [...sites.filter((v) => v !== target), target]);
    return { from: old.handle.name, to, epoch: newEpoch, phases: c.phases, writePauseSeconds, streamsAgainSeconds, lines: c.lines };
  } finally {
    await closeMasters(sites);
  }
}

/**
 * Planned switchover to `to`: no acknowledged write lost, writes paused for seconds. A second run is a
 * no-op; an unreachable site is refused.
 */
export async function switchover(handles: SiteHandle[], to: string, o: SiteOpsOptions = {}): Promise<SwitchReport> {
  return runSwitchover(await prepareSwitchover(handles, to, o));
}

export interface FailoverReport extends SwitchReport {
  /** The standby leader's WAL positions when it was promoted (bytes). */
  readonly promotedAt?: { replayed: number; received: number };
}

/**
 * Unplanned failover to `to` when the leading site is gone: refused without `force`, and refused while any
 * member of another site still accepts writes. Promotes with what `to` has and reports its WAL positions;
 * the old site returns as a standby with its own `pulumi up` (its config is updated here).
 */
export async function failover(handles: SiteHandle[], to: string, force: boolean, o: SiteOpsOptions = {}): Promise<FailoverReport> {
  const c = new Clock(o.log ?? console.log);
  const sites = await c.phase("read the stacks", () => Promise.all(handles.map(view)));
  const target = pick(sites, to);
  await c.phase("open SSH to every host", () => openMasters(sites), (x) => x);
  try {
    return await failoverWith(c, sites, target, to, force, o);
  } finally {
    await closeMasters(sites);
  }
}

async function failoverWith(c: Clock, sites: SiteView[], target: SiteView, to: string, force: boolean, o: SiteOpsOptions): Promise<FailoverReport> {
  const live = await c.phase("ask every member", () => Promise.all(sites.map(statuses)));
  const ti = sites.indexOf(target);
  const epoch = Math.max(...sites.map((v) => v.epoch));
  if (leads(live[ti])) {
    if (sites.every((v) => v.primarySite === to && v.epoch === epoch)) {
      c.say(`${to} already leads at epoch ${epoch}: nothing to do`);
      return { from: to, to, epoch, nothingToDo: true, phases: c.phases, lines: c.lines };
    }
  }
  const alive = sites.filter((v, i) => v !== target && leads(live[i]));
  if (alive.length && !leads(live[ti])) throw new Error(`${alive.map((v) => v.handle.name).join(", ")} still accepts writes: use \`npm run switchover -- --to ${to}\` (it loses nothing)`);
  if (!force && !leads(live[ti])) {
    throw new Error(`failover promotes ${to} with only what it has received; writes the old primary site acknowledged after that are lost. Run again with --force to confirm`);
  }
  const old = sites.find((v) => v.handle.name === target.primarySite && v !== target) ?? sites.find((v) => v !== target)!;
  const sl = live[ti].find((x) => x.status?.role === "standby_leader")?.status;
  let promotedAt: FailoverReport["promotedAt"];
  if (!leads(live[ti])) {
    if (!sl) throw new Error(`${to} has no running standby leader to promote (${live[ti].map((x) => `${x.host.name}: ${x.status ? x.status.role : x.err}`).join("; ")})`);
    promotedAt = { replayed: sl.position ?? 0, received: sl.received ?? 0 };
    c.say(`failover to ${to} (epoch ${epoch} → ${epoch + 1}): its standby leader has received ${promotedAt.received} and replayed ${promotedAt.replayed} bytes of WAL; ` +
      `anything ${old.handle.name} wrote after that is lost (measured when ${old.handle.name} returns)`);
    const slots = sites.filter((v) => v !== target).map((v) => standbySlotName(v.handle.name));
    const others = sites.filter((v) => v !== target).flatMap((v) => memberRestUrls(v.contract.postgres.members));
    await c.phase(`promote ${to} (forced)`, () => onMembers(target, [SITE_ROLE_PATH, "promote", "--force", ...others.map(shq)].join(" "), promoteBody(slots)), (x) => x);
  }
  const newEpoch = target.primarySite === to ? target.epoch : epoch + 1;
  await recordAndConverge(c, sites, to, newEpoch, o, [target]);
  c.say(`${sites.filter((v) => v !== target).map((v) => v.handle.name).join(", ")}: config says primarySite=${to}; when it is back, \`pulumi up\` there makes it a standby of ${to}`);
  return { from: old.handle.name, to, epoch: newEpoch, phases: c.phases, promotedAt, lines: c.lines };
}
