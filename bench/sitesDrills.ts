// Drills of the two-site lab (lab/sites.ts): a planned switchover and an unplanned loss of the leading site,
// each with a writer on the lab host that keeps one connection through a site's VIP (as an application's pool
// does, 30 s client timeout). Used by tests/e2e/sites.test.ts and by `npm run bench:sites`.
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { Stack } from "@pulumi/pulumi/automation";
import { engineEnv } from "../engine/automation";
import { hostsOf, openSiteStack, recordRole, siteOf, SITES_ENGINE, SITES_ENV, SITES_STATE, sites } from "../lab/sites";
import { failover, FailoverReport, prepareSwitchover, runSwitchover, SiteHandle, SwitchReport } from "../ops/sites";
import { python, WriterResult } from "./drills";

const run = promisify(execFile);
const BENCH = __dirname;
const LAB = path.resolve(BENCH, "..", "lab");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The app password (the same in every site) in a 0600 file for the writer. */
function passwordFile(): string {
  const pw = JSON.parse(fs.readFileSync(path.join(SITES_STATE, "secrets-shared.json"), "utf8")).postgresApp as string;
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hastack-sites-")), "pw");
  fs.writeFileSync(f, pw, { mode: 0o600 });
  return f;
}

/** A writer through `site`'s VIP, a write every 0.1 s: one kept connection, or with `fresh` a new connection per write. */
export function siteWriter(site: string, label: string, seconds: number, fresh = false) {
  const pwf = passwordFile();
  const base = [path.join(BENCH, "writer.py"), "--host", siteOf(site).vips.proxy, "--port", "6432", "--dbname", "workspad", "--user", "workspad", "--password-file", pwf];
  const startedAt = Date.now();
  const result = python<WriterResult>([...base, "--seconds", String(seconds), "--run", label, ...(fresh ? [] : ["--persistent", "--timeout", "30"])]);
  return {
    result,
    /** Seconds into the writer's run at wall-clock time `ms` (the writer starts within a few ms of the spawn). */
    at: (ms: number) => (ms - startedAt) / 1000,
    /** Acknowledged writes missing afterwards (read through `via`'s VIP). */
    missing: async (w: WriterResult, via = site) =>
      python<number[]>([path.join(BENCH, "writer.py"), "--host", siteOf(via).vips.proxy, "--port", "6432", "--dbname", "workspad", "--user", "workspad",
        "--password-file", pwf, "--verify", "--run", w.run], JSON.stringify(w.acked.map(([s]) => s))),
  };
}

/** Longest stretch between acknowledged writes from `from` s into the run (a kept connection: no errors expected). */
export function longestGap(w: WriterResult, from = 0): number {
  const t = w.acked.map(([, at]) => at).filter((x) => x >= from);
  let worst = 0;
  for (let i = 1; i < t.length; i++) worst = Math.max(worst, t[i] - t[i - 1]);
  return Math.round(worst * 10) / 10;
}

/** The lab's stacks as handles; the role they are given is recorded for the next open (as a user commits it). */
export async function labHandles(): Promise<{ handles: SiteHandle[]; setRole: (h: SiteHandle, p: string, e: number) => Promise<void> }> {
  const handles = await Promise.all(sites.map(async (s) => ({ name: s.name, stack: await openSiteStack(s.name) as Stack })));
  return { handles, setRole: async (h, primarySite, epoch) => { recordRole({ primarySite, epoch }); await openSiteStack(h.name, { primarySite, epoch }); } };
}

export interface SwitchDrill {
  readonly report: SwitchReport;
  /** Longest gap between acknowledged writes of the client, seconds. */
  readonly clientGapSeconds: number;
  readonly acked: number;
  readonly lost: number;
  readonly errors: number;
  /** The client's failed writes: [seq, seconds into the run, message]. */
  readonly errorSamples: [number, number, string][];
}

/** Planned switchover to `to` with a client writing through `clientSite`'s VIP the whole time. */
export async function switchoverDrill(to: string, clientSite: string, log: (l: string) => void = () => undefined): Promise<SwitchDrill> {
  const { handles, setRole } = await labHandles();
  // the data path only: the stacks converge afterwards, outside the writer's window
  const plan = await prepareSwitchover(handles, to, { setRole, converge: false, log });
  const w = siteWriter(clientSite, `switch-${to}-${Date.now()}`, 45);
  await sleep(3000);
  const report = await runSwitchover(plan);
  const res = await w.result;
  const missing = await w.missing(res);
  return { report, clientGapSeconds: longestGap(res), acked: res.acked.length, lost: missing.length, errors: res.errors.length, errorSamples: res.errors.slice(0, 3) };
}

/**
 * The same planned switchover, driven the way a user drives it: `npm run switchover -- --to <to> --dir <project>`
 * as a child process on the stacks' own Pulumi.<stack>.yaml files (the lab's project directory, its backend and
 * passphrase file in the environment as a user's shell would have them), not through lab/sites.ts. The CLI also
 * records the role in each stack file and runs both `pulumi up`s; afterwards the lab's recorded role is synced
 * from what the CLI wrote, so the lab's later opens agree with it.
 */
export async function switchoverViaCli(to: string, clientSite: string, log: (l: string) => void = () => undefined): Promise<SwitchDrill> {
  const env = { ...process.env, ...engineEnv(SITES_ENGINE) };
  // the writer outlives the CLI's start (ts-node), the pause and its two ups; it stops by itself
  const w = siteWriter(clientSite, `switch-cli-${to}-${Date.now()}`, 150);
  await sleep(3000);
  const cli = run("npx", ["ts-node", "--transpile-only", path.join(BENCH, "..", "ops", "cli.ts"), "switchover", "--to", to, "--dir", path.join(SITES_STATE, "project")],
    { cwd: path.join(BENCH, ".."), env, timeout: 20 * 60 * 1000, maxBuffer: 64 * 1024 * 1024 });
  const { stdout } = await cli.catch((e: { stdout?: string; stderr?: string; message: string }) => {
    throw new Error(`npm run switchover -- --to ${to} failed: ${e.message}\n${(e.stdout ?? "").slice(-4000)}\n${(e.stderr ?? "").slice(-4000)}`);
  });
  const lines = stdout.trim().split("\n");
  lines.slice(0, -1).filter((l) => !l.startsWith(" ")).forEach((l) => log(`cli: ${l}`));
  const report = JSON.parse(lines[lines.length - 1]) as SwitchReport;
  recordRole({ primarySite: report.to, epoch: report.epoch });
  const res = await w.result;
  const missing = await w.missing(res);
  return { report, clientGapSeconds: longestGap(res), acked: res.acked.length, lost: missing.length, errors: res.errors.length, errorSamples: res.errors.slice(0, 3) };
}

export interface FailoverDrill {
  readonly report: FailoverReport;
  /** From the start of `npm run failover` until the client's first acknowledged write after it. */
  readonly decisionToWritesSeconds: number;
  readonly acked: number;
  /** Writes the lost site acknowledged that the new primary does not have (async replication). */
  readonly lost: number;
}

/**
 * Crash every VM of `lost` while a client of `to` writes (a new connection per write, as a client retrying
 * after errors does), then a forced failover to `to`: how long from the decision to the first accepted write,
 * and how many writes `lost` acknowledged that `to` does not have.
 */
export async function failoverDrill(lost: string, to: string, log: (l: string) => void = () => undefined): Promise<FailoverDrill> {
  const { handles, setRole } = await labHandles();
  const w = siteWriter(to, `failover-${to}-${Date.now()}`, 45, true);
  await sleep(5000);
  await Promise.all(siteOf(lost).vms.map((v) => run("bash", [path.join(LAB, "vm.sh"), "crash", v.name], { env: SITES_ENV })));
  await sleep(3000);
  const decision = w.at(Date.now());
  const report = await failover(handles, to, true, { setRole, converge: false, log });
  const res = await w.result;
  const missing = await w.missing(res);
  const after = res.acked.map(([, t]) => t).find((t) => t >= decision);
  return { report, decisionToWritesSeconds: after === undefined ? Infinity : Math.round((after - decision) * 10) / 10, acked: res.acked.length, lost: missing.length };
}

/** Boot every VM of `site` again (same disks). */
export async function bootSite(site: string): Promise<void> {
  await Promise.all(siteOf(site).vms.map((v) => run("bash", [path.join(LAB, "vm.sh"), "start", v.name], { env: SITES_ENV, timeout: 180000 })));
}

export { hostsOf };
