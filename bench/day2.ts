// Day-2 drills on the lab: a setting that needs a PostgreSQL restart (max_connections) changed through
// `pulumi up` while a writer runs through the PgBouncer VIP, and, for comparison, one plain Patroni
// switchover under the same writer. Used by tests/e2e/lab.test.ts (once) and by `main` below (repeated
// runs, medians → bench/results-day2.{md,json}).
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import axios from "axios";
import { Stack } from "@pulumi/pulumi/automation";
import { changes } from "../engine/automation";
import { openLabStack } from "../lab/deploy";
import { byRole, labConfig, layout, STATE } from "../lab/stack";
import { patroni, patroniRestAuth, python, ssh, until, WriterResult } from "./drills";
import { median } from "./stats";

const BENCH = __dirname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function appPasswordFile(): string {
  const f = path.join(STATE, "postgresApp.pw");
  const s = JSON.parse(fs.readFileSync(path.join(STATE, "secrets.json"), "utf8")) as { passwords: Record<string, string> };
  fs.writeFileSync(f, s.passwords.postgresApp, { mode: 0o600 });
  return f;
}

const writerArgs = () => [path.join(BENCH, "writer.py"), "--host", layout.vips.proxy, "--port", "6432", "--dbname", "workspad", "--user", "workspad",
  "--password-file", appPasswordFile()];

/**
 * A writer through the VIP (or the endpoint `args` name) for as long as `during` runs, plus `tailS` seconds.
 * One writer.py for the whole time, stopped by SIGTERM; `during` starts `leadS` seconds after the writer said it
 * writes. Acknowledged times are ms since the drill started, placed by the writer's own clock start.
 * `chunked` (the instrument before 2026-11-29, kept for comparison): writer.py started again every CHUNK_S seconds;
 * between one's last write and the next one's first no writer runs: the next is spawned only when this process's
 * event loop (busy running the inline Pulumi program) gets to it, plus Python's start-up. On the loaded 5-VM lab
 * that gap was 20.0 s of a 20.1 s "pause" whose switchover paused writes 2.7 s (bench/results-leader-crash.md).
 */
const CHUNK_S = 15;
interface Acked { seq: number; at: number; run: string }
export async function writeDuring<T>(label: string, leadS: number, during: () => Promise<T>, tailS: number, args: string[] = writerArgs(),
  opts: { chunked?: boolean } = {}):
  Promise<{ value: T; acked: Acked[]; eventAt: number; endAt: number; errors: string[]; errorsAt: { at: number; error: string }[]; lost: number; startedAt: number;
    /** Each writer process: spawned, its first moment of writing (after Python's start-up), its exit (ms since the start). */
    chunks: { spawnAt: number; startAt: number; endAt: number }[] }> {
  const t0 = Date.now();
  const acked: Acked[] = [];
  const errors: string[] = [];
  const errorsAt: { at: number; error: string }[] = [];
  const chunks: { spawnAt: number; startAt: number; endAt: number }[] = [];
  const runs: WriterResult[] = [];
  const take = (w: WriterResult, spawnAt: number) => {
    runs.push(w);
    // the writer's own clock start when it says it (Python's start-up can take seconds on a loaded host)
    const start = w.t0 !== undefined ? w.t0 * 1000 - t0 : spawnAt;
    chunks.push({ spawnAt, startAt: start, endAt: Date.now() - t0 });
    for (const [seq, at] of w.acked) acked.push({ seq, at: start + at * 1000, run: w.run });
    for (const e of w.errors) { errors.push(e[2]); errorsAt.push({ at: start + e[1] * 1000, error: e[2] }); }
  };
  let stopAt = Infinity;
  let stop: () => void = () => undefined;
  let loop: Promise<void>;
  if (opts.chunked) {
    loop = (async () => {
      for (let i = 0; Date.now() < stopAt; i++) {
        const spawnAt = Date.now() - t0;
        take(await python<WriterResult>([...args, "--seconds", String(CHUNK_S), "--run", `${label}-${t0}-${i}`]), spawnAt);
      }
    })();
  } else {
    const w = spawnWriter([...args, "--seconds", "86400", "--run", `${label}-${t0}`]);
    stop = w.stop;
    loop = w.result.then((x) => take(x, 0));
    // a writer that dies early is reported by `await loop` below, not as an unhandled rejection meanwhile
    loop.catch(() => undefined);
    await w.started;
  }
  await sleep(leadS * 1000);
  const eventAt = Date.now() - t0;
  let value: T;
  try {
    value = await during();
  } catch (e) {
    // stop the writer too, or it would go on
    stopAt = 0;
    stop();
    await loop;
    throw e;
  }
  const endAt = Date.now() - t0;
  if (opts.chunked) {
    stopAt = Date.now() + tailS * 1000;
  } else {
    await sleep(tailS * 1000);
    stop();
  }
  await loop;
  let lost = 0;
  for (const w of runs) {
    lost += (await python<number[]>([...args, "--verify", "--run", w.run], JSON.stringify(w.acked.map(([s]) => s)))).length;
  }
  return { value, acked, eventAt, endAt, errors, errorsAt, lost, startedAt: t0, chunks };
}

/** writer.py until stop() (SIGTERM: it ends its write in progress and prints its result); `started` once it writes. */
function spawnWriter(args: string[]): { started: Promise<void>; result: Promise<WriterResult>; stop: () => void } {
  const p = spawn("/usr/bin/python3", args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  let onStart: () => void = () => undefined;
  const started = new Promise<void>((res) => (onStart = res));
  p.stdout.on("data", (d) => (out += d));
  p.stderr.on("data", (d) => { err += d; if (err.includes("writer: started")) onStart(); });
  const result = new Promise<WriterResult>((resolve, reject) => p.on("close", (code) => {
    onStart();
    if (code === 0) resolve(JSON.parse(out)); else reject(new Error(`writer.py exited ${code}: ${err}`));
  }));
  return { started, result, stop: () => { p.kill("SIGTERM"); } };
}

/** Longest stretch without an acknowledged write that overlaps [from, to] (ms), in seconds. */
export function longestPause(acked: { at: number }[], from: number, to: number): number {
  return longestGap(acked, from, to).seconds;
}

/** The same stretch with its ends (ms, as `acked`'s times): the last acknowledged write before it (or `from`) and the first after it. */
export function longestGap(acked: { at: number }[], from: number, to: number): { seconds: number; start: number; end: number } {
  const times = acked.map((a) => a.at).sort((a, b) => a - b);
  let worst = 0, start = from, end = from;
  for (let i = 1; i < times.length; i++) {
    if (times[i] >= from && times[i - 1] <= to && times[i] - Math.max(times[i - 1], from) > worst) {
      worst = times[i] - Math.max(times[i - 1], from);
      start = Math.max(times[i - 1], from);
      end = times[i];
    }
  }
  return { seconds: Math.round(worst / 100) / 10, start, end };
}

export interface MemberSettings { name: string; role: string; pendingRestart: boolean; maxConnections: number }

/** Every member: Patroni's own pending_restart and the max_connections PostgreSQL runs with. */
export async function memberSettings(): Promise<MemberSettings[]> {
  return Promise.all(byRole("postgres").map(async (m) => {
    const p = (await axios.get(`http://${m.address}:8008/patroni`, { timeout: 3000 })).data;
    const mc = await ssh(m.name, "cd / && runuser -u postgres -- psql -XAtq -h /var/run/postgresql -c 'SHOW max_connections'");
    return { name: m.name, role: p.role, pendingRestart: p.pending_restart === true, maxConnections: Number(mc) };
  }));
}

export interface Day2Result {
  drill: string;
  /** Longest write pause overlapping the change, s. */
  writePauseSeconds: number;
  ackedWrites: number;
  lostWrites: number;
  /** How long the change took (the `pulumi up`, or the switchover request until the cluster is healthy), s. */
  durationSeconds: number;
  notes: string[];
}

/** The stack's config with `hastack:postgres.maxConnections` set (everything else as the lab has it). */
export async function setMaxConnections(stack: Stack, value: number): Promise<void> {
  const pg = JSON.parse(labConfig()["hastack:postgres"].value) as Record<string, unknown>;
  await stack.setConfig("hastack:postgres", { value: JSON.stringify({ ...pg, maxConnections: value }) });
}

/** What the rolling-restart step printed on its last run (kept in the stack's state as the command's stdout). */
export async function restartStepStdout(stack: Stack): Promise<string> {
  const res = (await stack.exportStack()).deployment.resources?.find((x: { urn: string }) => x.urn.endsWith("::dc-db-pg1-rolling-restart"));
  const out = res?.outputs?.stdout;
  return typeof out === "string" ? out : "";
}

/** Change max_connections through `pulumi up` under a writer; the up's output is kept for the notes. */
export async function maxConnectionsChange(stack: Stack, value: number): Promise<Day2Result & { output: string; changed: Record<string, number> }> {
  await setMaxConnections(stack, value);
  let output = "";
  const t = Date.now();
  const r = await writeDuring("day2-max-connections", 5, () => stack.up({ onOutput: (s) => (output += s) }), 5);
  if (r.value.summary.result !== "succeeded") throw new Error(`pulumi up: ${r.value.summary.result}\n${output.slice(-3000)}`);
  // the rolling-restart step's own lines (one JSON object per action, then a summary), from its state
  const summary = (await restartStepStdout(stack)).split("\n").filter((l) => /"action": "(restarted|switchover)"|\{"restarted": /.test(l));
  return {
    drill: `max_connections → ${value} through pulumi up (rolling restart)`, writePauseSeconds: longestPause(r.acked, r.eventAt, r.endAt),
    ackedWrites: r.acked.length, lostWrites: r.lost, durationSeconds: Math.round((Date.now() - t) / 100) / 10,
    notes: [...summary.map((l) => l.trim()).slice(-4), ...(r.errors.length ? [`${r.errors.length} failed write attempts, first: ${r.errors[0]}`] : [])],
    output, changed: changes(r.value.summary.resourceChanges),
  };
}

/** One plain switchover (POST /switchover to a replica) under the same writer: the pause to compare with. */
export async function plainSwitchover(): Promise<Day2Result> {
  const ms = await patroni();
  const leader = ms.find((m) => m.role === "leader")!.name;
  const candidate = ms.find((m) => m.role !== "leader")!.name;
  const addr = byRole("postgres").find((m) => m.name === leader)!.address;
  const t = Date.now();
  const r = await writeDuring("day2-switchover", 5, async () => {
    const res = await axios.post(`http://${addr}:8008/switchover`, { leader, candidate }, { auth: patroniRestAuth(), timeout: 60000, validateStatus: () => true });
    if (res.status !== 200) throw new Error(`switchover refused: ${res.status} ${JSON.stringify(res.data)}`);
    await until("the old leader streaming again", async () => (await patroni()).every((m) => m.role === "leader" ? m.name === candidate && m.state === "running"
      : ["running", "streaming"].includes(m.state) && typeof m.lag === "number"), 120, 500);
  }, 5);
  return {
    drill: `plain switchover ${leader} → ${candidate}`, writePauseSeconds: longestPause(r.acked, r.eventAt, r.endAt), ackedWrites: r.acked.length,
    lostWrites: r.lost, durationSeconds: Math.round((Date.now() - t) / 100) / 10,
    notes: r.errors.length ? [`${r.errors.length} failed write attempts, first: ${r.errors[0]}`] : [],
  };
}


/** `npx ts-node bench/day2.ts [runs]` on a deployed lab: alternating max_connections changes and plain switchovers. */
async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const stack = await openLabStack();
  const rows: Day2Result[] = [];
  for (let i = 0; i < runs; i++) {
    const { output: _o, changed: _c, ...r } = await maxConnectionsChange(stack, 250 + 10 * i);
    rows.push(r);
    rows.push(await plainSwitchover());
    console.log(JSON.stringify(rows.slice(-2)));
  }
  await setMaxConnections(stack, 200);
  await stack.up();
  const cmd = `npx ts-node bench/day2.ts ${runs}`;
  const date = new Date().toISOString();
  fs.writeFileSync(path.join(BENCH, "results-day2.json"), JSON.stringify({ command: cmd, date, rows }, null, 2));
  const kinds = [["rolling restart through pulumi up", rows.filter((r) => r.drill.startsWith("max_connections"))], ["plain switchover", rows.filter((r) => r.drill.startsWith("plain"))]] as const;
  const md = [
    "# Day-2: restart-only setting through pulumi up, vs a plain switchover",
    "", `Made by \`${cmd}\` on ${date} (lab: 3 Patroni members, failoverProfile aggressive, writer through the PgBouncer VIP, one write per 0.1 s).`, "",
    "| change | runs | median write pause (s) | max write pause (s) | acknowledged writes lost | median duration (s) |", "| --- | --- | --- | --- | --- | --- |",
    ...kinds.map(([k, rs]) => `| ${k} | ${rs.length} | ${median(rs.map((r) => r.writePauseSeconds))} | ${Math.max(...rs.map((r) => r.writePauseSeconds))} | ${rs.reduce((a, r) => a + r.lostWrites, 0)} | ${median(rs.map((r) => r.durationSeconds))} |`),
    "",
  ].join("\n");
  fs.writeFileSync(path.join(BENCH, "results-day2.md"), md);
  console.log(md);
}

if (require.main === module) {
  main().catch((e) => { console.error(e); process.exit(1); });
}
