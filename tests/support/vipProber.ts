// A client of the nginx VIP for the length of some pulumi ups, in a process of its own (bench/http_prober.py),
// and what the lab's balancers and app nodes logged meanwhile: so a failed request can be put next to the
// deploy step, the VIP move or the upstream error that caused it.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { monitorEventLoopDelay } from "perf_hooks";
import { EngineEvent } from "@pulumi/pulumi/automation";
import * as d from "../../bench/drills";
import { byRole } from "../../lab/stack";

const REPO = path.resolve(__dirname, "..", "..");

/** One request as bench/http_prober.py reports it. */
export interface Probe {
  start: number; seconds: number; status: number | null; node: string | null; error: string | null;
  phase: string; tcp: number | null; tls: number | null; port: number | null;
}

/** A resource step of an up as this process saw it (Date.now() on receipt; the engine's own stamp is whole seconds). */
export interface StepEvent { at: number; up: string; step: string; op: string; what: "start" | "done" | "failed" }

export interface ProbeRun {
  /** Each up's change events: record with `events(label)` as the up's onEvent. */
  events: (up: string) => (e: EngineEvent) => void;
  /** Stop probing and gather the record. */
  stop: () => Promise<ProbeRecord>;
}

export interface ProbeRecord {
  startedAt: string; seconds: number;
  requests: number; failed: number; failures: (Probe & { stepsNear: string[] })[];
  latencySeconds: { median: number; p99: number; max: number };
  nodesAnswering: string[];
  /** How late the test process's own timers ran (the inline Pulumi program shares its event loop); the prober does not. */
  testProcessEventLoopDelayMaxMs: number;
  steps: StepEvent[];
  nginxErrorLog: Record<string, string[]>;
  keepalived: Record<string, string[]>;
  /** The app nodes' journals (request lines with status 200 left out): starts, stops, tracebacks. */
  workspad: Record<string, string[]>;
  probes: Probe[];
}

const lines = (s: string) => s.split("\n").filter(Boolean);

/**
 * Start a GET of `url` every 100 ms, each on a new connection with `timeoutSeconds` for the whole request.
 * `caPems`: the CA certificates the client trusts (its chain check; the name is not checked).
 */
export async function startVipProber(url: string, caPems: string[], timeoutSeconds = 5): Promise<ProbeRun> {
  const t0 = Date.now();
  const since = Math.floor(t0 / 1000) - 1;
  const balancers = byRole("nginx").map((b) => b.name);
  const apps = byRole("workspad").map((w) => w.name);
  // the error log's length now: what is added during the run is the run's
  const errorLines = Object.fromEntries(await Promise.all(balancers.map(async (b) =>
    [b, Number(await d.ssh(b, "wc -l < /var/log/nginx/error.log 2>/dev/null || echo 0"))] as const)));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-prober-"));
  const cafile = path.join(dir, "ca.pem");
  fs.writeFileSync(cafile, caPems.join("\n"));
  const child = spawn("/usr/bin/python3", [path.join(REPO, "bench", "http_prober.py"), "--url", url, "--interval", "0.1",
    "--timeout", String(timeoutSeconds), "--cafile", cafile], { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (b) => { out += b; });
  const exited = new Promise((r) => child.on("exit", r));
  const lag = monitorEventLoopDelay({ resolution: 20 });
  lag.enable();
  const steps: StepEvent[] = [];

  const events = (up: string) => (e: EngineEvent) => {
    const pre = e.resourcePreEvent?.metadata;
    const done = e.resOutputsEvent?.metadata;
    const failed = e.resOpFailedEvent;
    const m = pre ?? done;
    if (m && m.op !== "same" && m.op !== "read" && m.type !== "pulumi:pulumi:Stack") {
      steps.push({ at: Date.now(), up, step: m.urn.split("::").pop()!, op: m.op, what: pre ? "start" : "done" });
    }
    if (failed) steps.push({ at: Date.now(), up, step: "(an operation failed)", op: String(failed.steps), what: "failed" });
  };

  const stop = async (): Promise<ProbeRecord> => {
    child.stdin.end();
    await exited;
    lag.disable();
    fs.rmSync(dir, { recursive: true, force: true });
    const probes = lines(out).map((l) => JSON.parse(l) as Probe);
    const bad = probes.filter((p) => p.status !== 200 || p.error);
    const secs = probes.map((p) => p.seconds).sort((a, b) => a - b);
    const nginxErrorLog = Object.fromEntries(await Promise.all(balancers.map(async (b) =>
      [b, lines(await d.ssh(b, `tail -n +${errorLines[b] + 1} /var/log/nginx/error.log | tail -n 200`))] as const)));
    const keepalived = Object.fromEntries(await Promise.all(balancers.map(async (b) =>
      [b, lines(await d.ssh(b, `journalctl -u keepalived --since @${since} --no-pager -o short-iso-precise | tail -n 100`))] as const)));
    const workspad = Object.fromEntries(await Promise.all(apps.map(async (n) =>
      [n, lines(await d.ssh(n, `journalctl -u workspad --since @${since} --no-pager -o short-iso-precise | grep -v '" 200 -' | tail -n 60`))] as const)));
    // each failure with the deploy steps that started or ended from 10 s before it to its end
    const near = (p: Probe) => steps.filter((s) => s.at >= p.start * 1000 - 10000 && s.at <= (p.start + p.seconds) * 1000 + 1000)
      .map((s) => `${new Date(s.at).toISOString()} ${s.up}: ${s.step} ${s.op} ${s.what}`);
    return {
      startedAt: new Date(t0).toISOString(), seconds: Math.round((Date.now() - t0) / 100) / 10,
      requests: probes.length, failed: bad.length, failures: bad.map((p) => ({ ...p, stepsNear: near(p) })),
      latencySeconds: { median: secs[Math.floor(secs.length / 2)] ?? NaN, p99: secs[Math.floor(secs.length * 0.99)] ?? NaN, max: secs[secs.length - 1] ?? NaN },
      nodesAnswering: [...new Set(probes.map((p) => p.node).filter((n): n is string => !!n))].sort(),
      testProcessEventLoopDelayMaxMs: Math.round(lag.max / 1e6),
      steps, nginxErrorLog, keepalived, workspad, probes,
    };
  };
  return { events, stop };
}

/** Keep the whole record (every request) under bench/.work and say in one line what it holds. */
export function saveProbeRecord(name: string, record: ProbeRecord & Record<string, unknown>): string {
  const f = path.join(REPO, "bench", ".work", `${name}.json`);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, JSON.stringify(record, null, 2) + "\n");
  return `${record.requests} requests, ${record.failed} failed, latency median ${record.latencySeconds.median} s / p99 ${record.latencySeconds.p99} s / max ${record.latencySeconds.max} s, `
    + `test event loop max ${record.testProcessEventLoopDelayMaxMs} ms, nodes ${record.nodesAnswering.join(",")} (record: ${path.relative(REPO, f)})`;
}
