// Converge figures: a `pulumi up` of the lab stack onto fresh VMs, its wall time, and the
// critical path through the host steps (each step's own duration from engine events, chained
// along the dependencies recorded in state). Ratio = wall / critical path: 1.0 would mean the
// engine ran every independent step in parallel with no overhead.
import { execFileSync } from "child_process";
import * as path from "path";
import { EngineEvent } from "@pulumi/pulumi/automation";
import { changes } from "../engine/automation";
import { openLabStack } from "../lab/deploy";


export interface Converge { wallSeconds: number; criticalPathSeconds: number; ratio: number; steps: number; longestSteps: string[]; changes: Record<string, number> }

export async function freshConverge(): Promise<Converge> {
  const lab = path.resolve(__dirname, "..", "lab");
  execFileSync("bash", [path.join(lab, "down.sh")], { stdio: "inherit" });
  execFileSync("bash", [path.join(lab, "up-vms.sh")], { stdio: "inherit" });
  const stack = await openLabStack();
  const start = new Map<string, number>();
  const dur = new Map<string, number>();
  const onEvent = (e: EngineEvent) => {
    const t = e.timestamp * 1000;
    const pre = e.resourcePreEvent?.metadata;
    if (pre) start.set(pre.urn, t);
    const out = e.resOutputsEvent?.metadata;
    if (out && start.has(out.urn)) dur.set(out.urn, (t - start.get(out.urn)!) / 1000);
  };
  const t0 = Date.now();
  const up = await stack.up({ onEvent });
  const wallSeconds = (Date.now() - t0) / 1000;
  const state = await stack.exportStack();
  const deps = new Map<string, string[]>();
  for (const r of state.deployment.resources ?? []) deps.set(r.urn, r.dependencies ?? []);
  const finish = new Map<string, number>();
  const memo = (urn: string): number => {
    if (finish.has(urn)) return finish.get(urn)!;
    finish.set(urn, 0); // cycles cannot happen in a Pulumi graph; guards recursion anyway
    const f = Math.max(0, ...(deps.get(urn) ?? []).map(memo)) + (urn.includes("command:remote") ? dur.get(urn) ?? 0 : 0);
    finish.set(urn, f);
    return f;
  };
  const criticalPathSeconds = Math.max(...[...deps.keys()].map(memo));
  const longestSteps = [...dur.entries()].filter(([u]) => u.includes("command:remote")).sort((a, b) => b[1] - a[1]).slice(0, 5)
    .map(([u, s]) => `${u.split("::").pop()} ${s.toFixed(1)}s`);
  return {
    wallSeconds: Math.round(wallSeconds * 10) / 10, criticalPathSeconds: Math.round(criticalPathSeconds * 10) / 10,
    ratio: Math.round((wallSeconds / criticalPathSeconds) * 100) / 100, steps: [...dur.keys()].filter((u) => u.includes("command:remote")).length,
    longestSteps, changes: changes(up.summary.resourceChanges),
  };
}
