// `npm run restore -- --stack STACK --to <ISO time|latest> --host DBHOST [--data-dir DIR] [--port N]`: point-in-time
// recovery from the stack's pgBackRest repository (hastack:backup) into a new PostgreSQL of its own on a database
// host of the stack, beside the running cluster (own data directory, own port, socket only, archiving off). Never over
// the cluster's data directory: a data directory that is not empty is refused before pgBackRest runs. The stack is
// read like `pulumi up` reads it (Pulumi.yaml in --dir, default the repo root; backend and passphrase from the
// environment); SSH goes with the stack's key and pinned host keys. No secret reaches argv or the output.
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { Connection, run as sshRun } from "../engine/command-provider/ssh";
import { REPO } from "../engine/automation";
import { HostSpec, invalid, isPort, normalizePath, pathsOverlap } from "../components/common";
import { SOCKET_DIR } from "../components/patroniCluster/render";
import { RestoreTarget, checkScript, isRestoreTime, restorePreflightScript, restoreScript, restoredUnitName, startRestoredScript } from "../components/pgBackRest/render";

export const USAGE = "--stack STACK --to <ISO time with zone|latest> --host DBHOST [--data-dir DIR] [--port N] [--timeout SECONDS] [--dir PROJECT_DIR]";

/** The defaults of the optional arguments. */
export const RestoreDefaults = {
  /** A directory of its own next to the cluster's (Debian's layout: /var/lib/postgresql/<major>/<cluster>). */
  dataDir: "/var/lib/postgresql/15/restore",
  port: 5433,
  timeoutSeconds: 3600,
} as const;

export interface RestoreArgs {
  readonly stack: string;
  readonly to: RestoreTarget;
  readonly host: string;
  readonly dataDir: string;
  readonly port: number;
  readonly timeoutSeconds: number;
  readonly dir: string;
}

/** "2026-11-29T09:40:12.5Z" → "2026-11-29 09:40:12.5+00" (what recovery_target_time reads); undefined if not a real time with a zone. */
export function normalizeRestoreTime(s: string): string | undefined {
  if (!isRestoreTime(s)) return undefined;
  const [, y, mo, d, h, mi, sec] = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/.exec(s)!.map(Number);
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d || h > 23 || mi > 59 || sec > 59) return undefined;
  return s.replace("T", " ").replace(/Z$/, "+00");
}

/** Epoch ms of a normalized restore time. */
function timeOf(s: string): number {
  const iso = s.replace(" ", "T").replace(/([+-]\d{2})$/, "$1:00").replace(/([+-]\d{2})(\d{2})$/, "$1:$2").replace(/(\.\d{3})\d+/, "$1");
  return Date.parse(iso);
}

const DIR = /^\/[A-Za-z0-9._/-]+$/;

/** Parse and check the command line; throws ConfigError naming the argument, what was given and what is accepted. */
export function parseRestoreArgs(argv: readonly string[], now: Date = new Date()): RestoreArgs {
  const o: Record<string, string | undefined> = {};
  const KNOWN = ["--stack", "--to", "--host", "--data-dir", "--port", "--timeout", "--dir"];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!KNOWN.includes(a)) invalid("argument", a, `one of ${KNOWN.join(", ")}; usage: restore ${USAGE}`);
    if (o[a] !== undefined) invalid(a, argv[i + 1], "the argument once");
    const v = argv[++i];
    if (v === undefined || v.startsWith("--")) invalid(a, v, `a value after ${a}`);
    o[a] = v;
  }
  const stack = o["--stack"];
  if (stack === undefined || !/^[A-Za-z0-9_.-]+$/.test(stack)) invalid("--stack", stack, "the name of the stack whose repository to restore from");
  const rawTo = o["--to"];
  if (rawTo === undefined) invalid("--to", rawTo, "a time with its zone such as 2026-11-29T09:40:12Z or \"2026-11-29 09:40:12+00\", or latest");
  let to: RestoreTarget;
  if (rawTo === "latest") to = "latest";
  else {
    const t = normalizeRestoreTime(rawTo);
    if (t === undefined) invalid("--to", rawTo, "a time with its zone such as 2026-11-29T09:40:12Z or \"2026-11-29 09:40:12+00\" (YYYY-MM-DD HH:MM:SS[.ffffff] and Z or ±HH[:MM]), or latest");
    if (timeOf(t) > now.getTime()) invalid("--to", rawTo, `a time that has passed (it is ${now.toISOString()} here); for everything archived so far say latest`);
    to = { time: t };
  }
  const host = o["--host"];
  if (host === undefined || !/^[a-z][a-z0-9-]*$/.test(host)) invalid("--host", host, "the name of a database host of the stack (hastack:postgres.nodes[].name) to restore on");
  const dataDir = o["--data-dir"] === undefined ? RestoreDefaults.dataDir : normalizePath(o["--data-dir"]);
  if (!DIR.test(dataDir) || dataDir === "/" || dataDir.split("/").some((seg) => seg === "." || seg === "..")) invalid("--data-dir", o["--data-dir"], "an absolute directory path of letters, digits and ._-/ without . or .. segments (a new, empty directory)");
  const port = o["--port"] === undefined ? RestoreDefaults.port : Number(o["--port"]);
  if (!isPort(port) || port < 1024) invalid("--port", o["--port"], "a TCP port from 1024 to 65535 for the restored PostgreSQL");
  const timeoutSeconds = o["--timeout"] === undefined ? RestoreDefaults.timeoutSeconds : Number(o["--timeout"]);
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 10 || timeoutSeconds > 7 * 86400) invalid("--timeout", o["--timeout"], "whole seconds from 10 to 604800 to wait for recovery");
  const dir = path.resolve(o["--dir"] ?? REPO);
  return { stack, to, host, dataDir, port, timeoutSeconds, dir };
}

/** What the stack says about the restore host: the database hosts, the cluster's data directory and ports, the stanza. */
export interface RestorePlanInput {
  readonly nodes: readonly HostSpec[];
  readonly clusterDataDir: string;
  /** Ports the cluster uses on its hosts, by setting. */
  readonly ports: readonly { name: string; port: number }[];
  /** undefined when the stack has no hastack:backup. */
  readonly backup?: { readonly stanza: string; readonly repoHost: HostSpec };
}

/** Cross-check the arguments with the stack; returns the restore host. Throws before anything runs on a host. */
export function checkRestorePlan(a: RestoreArgs, p: RestorePlanInput): { host: HostSpec; stanza: string; repoHost: HostSpec } {
  if (!p.backup) invalid("hastack:backup", undefined, `a repository configured in stack ${a.stack}: there is nothing to restore from`);
  const host = p.nodes.find((n) => n.name === a.host);
  if (!host) invalid("--host", a.host, `a database host of stack ${a.stack} (${p.nodes.map((n) => n.name).join(", ")}): they reach the repository`);
  if (pathsOverlap(a.dataDir, p.clusterDataDir)) {
    invalid("--data-dir", a.dataDir, `a directory apart from the cluster's data directory ${p.clusterDataDir} (neither it, inside it nor above it): a restore never goes over the running cluster`);
  }
  const taken = p.ports.find((x) => x.port === a.port);
  if (taken) invalid("--port", a.port, `a port the cluster does not use (${taken.name} is ${taken.port})`);
  return { host, stanza: p.backup.stanza, repoHost: p.backup.repoHost };
}

async function main(): Promise<void> {
  const a = parseRestoreArgs(process.argv.slice(2));
  if (!fs.existsSync(path.join(a.dir, "Pulumi.yaml"))) invalid("--dir", a.dir, "a project directory holding Pulumi.yaml");
  const log = (l: string) => process.stderr.write(`restore: ${l}\n`);
  const ws = await LocalWorkspace.create({ workDir: a.dir });
  const cfgMap = await ws.getAllConfig(a.stack);
  // keys the stack does not set take Pulumi.yaml's defaults, as in a deploy
  const project = yaml.load(fs.readFileSync(path.join(a.dir, "Pulumi.yaml"), "utf8")) as { config?: Record<string, { default?: unknown }> };
  const get = (k: string): unknown => {
    const v = cfgMap[`hastack:${k}`]?.value;
    if (v === undefined) return project.config?.[k]?.default;
    try { return JSON.parse(v); } catch { return v; }
  };
  // the stack's own reading and checks (stacks/): the same nodes, data directory, ports and stanza the deploy used
  const { readStackConfig } = await import("../stacks/config");
  const { resolveDatacenter } = await import("../stacks/datacenter");
  const r = resolveDatacenter(readStackConfig(get));
  const pg = r.postgres;
  const plan = checkRestorePlan(a, {
    nodes: pg.nodes, clusterDataDir: pg.dataDir, backup: r.backup && { stanza: r.backup.stanza, repoHost: r.backup.repoHost },
    ports: [{ name: "hastack:postgres.pgPort", port: pg.pgPort }, { name: "hastack:postgres.restApiPort", port: pg.restApiPort },
      { name: "hastack:postgres.etcdClientPort", port: pg.etcdClientPort }, { name: "hastack:postgres.etcdPeerPort", port: pg.etcdPeerPort },
      ...(r.backup ? [{ name: "hastack:backup.tlsPort", port: r.backup.tlsPort }] : [])],
  });
  const ssh = (get("ssh") ?? {}) as { user?: string; port?: number; hostKeys?: Record<string, string>; trustOnFirstUse?: boolean };
  const key = get("sshPrivateKey") as string;
  const conn = (h: HostSpec): Connection => {
    const hostKey = ssh.hostKeys?.[h.address];
    // a key recorded on first use lives in the stack's state, not its config: without a pin, say so rather than trust blindly
    if (!hostKey) invalid(`hastack:ssh.hostKeys["${h.address}"]`, undefined, `the pinned SSH host key of ${h.name}: the restore command connects only to pinned hosts`);
    return { host: h.address, port: ssh.port ?? 22, user: ssh.user ?? "root", privateKey: key, hostKey, dialErrorLimit: 3, perDialTimeout: 10 };
  };
  const step = async (what: string, h: HostSpec, script: string): Promise<{ seconds: number; out: string }> => {
    const t0 = Date.now();
    const res = await sshRun(conn(h), `set -eu\n${script}`);
    const seconds = Math.round((Date.now() - t0) / 100) / 10;
    if (res.code !== 0) throw new Error(`${what} on ${h.name} failed (exit ${res.code}): ${res.stderr.trim() || res.stdout.trim()}`);
    log(`${what} on ${h.name}: ${seconds} s`);
    return { seconds, out: res.stdout.trim() };
  };
  const target = a.to === "latest" ? "latest" : a.to.time;
  log(`stack ${a.stack}, stanza ${plan.stanza}: restoring to ${target} on ${plan.host.name} into ${a.dataDir}, port ${a.port}`);
  await step("pre-flight", plan.host, restorePreflightScript(a.port));
  // every commit so far into the archive (check switches WAL on the leader and waits for it); a cluster that is down
  // cannot, and the restore then ends at what was archived
  let archived = true;
  try { await step("archive the current WAL (pgbackrest check)", plan.repoHost, checkScript(plan.stanza)); } catch (e) {
    archived = false;
    log(`warning: ${e instanceof Error ? e.message : e}; restoring from what the repository holds`);
  }
  const t0 = Date.now();
  const restore = await step("pgbackrest restore", plan.host, restoreScript(plan.stanza, a.dataDir, a.to));
  const start = await step("recovery to the target and promotion", plan.host, startRestoredScript({ dataDir: a.dataDir, port: a.port, socketDir: SOCKET_DIR, timeoutSeconds: a.timeoutSeconds }));
  const rtoSeconds = Math.round((Date.now() - t0) / 100) / 10;
  console.log(JSON.stringify({
    stack: a.stack, stanza: plan.stanza, to: target, host: plan.host.name, dataDir: a.dataDir, port: a.port, unit: restoredUnitName(a.port),
    socketDir: SOCKET_DIR, archivedBefore: archived, restoreSeconds: restore.seconds, recoverySeconds: start.seconds, rtoSeconds,
    connect: `runuser -u postgres -- psql -h ${SOCKET_DIR} -p ${a.port}`, stop: `systemctl stop ${restoredUnitName(a.port)}`,
  }));
}

if (require.main === module) {
  main().catch((e) => { console.error(`restore: ${e instanceof Error ? e.message : e}`); process.exit(1); });
}
