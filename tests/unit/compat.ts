// Shared by the compat tests (*.compat.test.ts): the whole program under mocks, each resource's inputs reduced to a
// hash by URN, to compare with a fixture written by the code before a change. Inputs are hashed because they hold
// scripts and secrets; a differing resource is then named by its URN.
import * as crypto from "crypto";
import { installMocks, recorded, resetRecorded, settle } from "./mocks";

/** `hastack:<key>` config from plain values (objects as JSON, as `pulumi config set --path` would store them). */
export function hastackConfig(c: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [`hastack:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));
}

const hash = (v: unknown) => crypto.createHash("sha256").update(JSON.stringify(v)).digest("hex").slice(0, 16);

/** The program run on `config` (stack "dc"): URN → hash of its inputs, sorted by URN; `keep` narrows the resources by name. */
export async function programFingerprint(config: Record<string, string>, keep: (name: string) => boolean = () => true): Promise<Record<string, string>> {
  resetRecorded();
  jest.resetModules();
  await installMocks(config, "hastack", "dc");
  const { program } = await import("../../stacks/program");
  await program();
  await settle(200);
  return Object.fromEntries(recorded.filter((r) => keep(r.name)).map((r) => [r.urn, hash(r.inputs)]).sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * The etcd-leader-off steps (patroniCluster/etcdLeaderOff.ts) each PostgreSQL member gained after the compat fixtures
 * were written: new resources, created once on an upgrade (files, daemon-reload, the timer on).
 */
export const leaderOffSteps = (stack: string, hosts: string[]): string[] => hosts.flatMap((h) =>
  ["script", "service", "timer", "reload", "on"].map((s) => `urn:pulumi:${stack}::hastack::command:remote:Command::${stack}-db-${h}-etcd-leader-off-${s}`));

/**
 * The PgBouncer pair's steps whose inputs follow haproxy.cfg: its text changed on purpose after the fixtures were
 * written (timeout connect 1s, downinter 500ms: the leader-crash work), so an upgrade reloads HAProxy on each proxy
 * (a graceful reload) and runs the pair's health steps again.
 */
export const haproxyCfgSteps = (stack: string, proxies: string[]): string[] => proxies.flatMap((h) =>
  ["haproxy-cfg", "haproxy-reload", "healthy", "vip-answers", "vip-held"].map((s) => `urn:pulumi:${stack}::hastack::command:remote:Command::${stack}-proxy-${h}-${s}`));
