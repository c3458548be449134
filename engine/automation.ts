// Drives the real Pulumi engine through the Automation API: a local file backend, the CLI found
// on PATH or built by scripts/setup-engine.sh, and stacks of this very project (Pulumi.yaml).
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ConfigMap, LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";

export const REPO = path.resolve(__dirname, "..");
/** hastack's policy pack (policy/, README "Policies"): run with every preview and up of the hastack program. */
export const POLICY_PACK = path.join(REPO, "policy");

let enginePath: string[] | undefined;

/** PATH entries holding `pulumi` and plugins (runs the set-up script once; it reuses its cache). */
export function enginePaths(): string[] {
  if (!enginePath) {
    const out = execFileSync("bash", [path.join(REPO, "scripts", "setup-engine.sh")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    enginePath = out.trim().split("\n").pop()!.split(":").filter(Boolean);
  }
  return enginePath;
}

/** The installation root of the `pulumi` CLI the tests use (its `bin/pulumi`). */
export function pulumiRoot(): string {
  const dir = enginePaths().find((d) => fs.existsSync(path.join(d, "pulumi")))
    ?? path.dirname(execFileSync("bash", ["-c", "command -v pulumi"], { encoding: "utf8" }).trim());
  return path.dirname(dir);
}

export interface EngineEnv {
  /** file:// backend directory; separate per test suite so suites do not share stacks. */
  readonly backendDir: string;
  readonly passphrase: string;
  /** Another state backend (e.g. s3://…, engine/s3backend.ts); backendDir then holds only PULUMI_HOME and the passphrase file. @default file://backendDir */
  readonly backendUrl?: string;
  /** More variables for the CLI (e.g. AWS_SHARED_CREDENTIALS_FILE); never secret values themselves. @default none */
  readonly env?: Record<string, string>;
}

export function engineEnv(e: EngineEnv): Record<string, string> {
  fs.mkdirSync(e.backendDir, { recursive: true });
  // the passphrase reaches the CLI as a 0600 file, not as a value in its environment
  const passphraseFile = path.join(e.backendDir, ".passphrase");
  fs.writeFileSync(passphraseFile, e.passphrase, { mode: 0o600 });
  fs.chmodSync(passphraseFile, 0o600);
  return {
    PATH: [...enginePaths(), process.env.PATH].join(":"),
    PULUMI_BACKEND_URL: e.backendUrl ?? `file://${e.backendDir}`,
    PULUMI_HOME: path.join(e.backendDir, ".pulumi-home"),
    PULUMI_CONFIG_PASSPHRASE_FILE: passphraseFile,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    // the random/tls plugins cannot be built offline; never try to download anything
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    ...e.env,
  };
}

export interface StackSpec {
  readonly stackName: string;
  readonly config: ConfigMap;
  /** Inline program; by default the hastack program itself (stacks/program.ts). */
  readonly program?: () => Promise<Record<string, unknown> | void>;
  /** Project directory (Pulumi.yaml); by default this repo. A probe program passes its own temp dir. */
  readonly workDir?: string;
  readonly projectName?: string;
}

/**
 * Create (or select) a stack and replace its whole config with `config`. Programs run inline
 * (the CLI connects back to this process), because no Node.js language host can be built here.
 */
export async function openStack(spec: StackSpec, e: EngineEnv): Promise<Stack> {
  const envVars = engineEnv(e);
  const pulumiCommand = await PulumiCommand.get({ root: pulumiRoot() });
  const program = spec.program ?? (async () => (await import("../stacks/program")).program());
  const stack = await LocalWorkspace.createOrSelectStack(
    { stackName: spec.stackName, projectName: spec.projectName ?? "hastack", program },
    { workDir: spec.workDir ?? REPO, pulumiCommand, envVars },
  );
  await applyConfig(stack, spec.config, spec.workDir ?? REPO, envVars);
  return spec.program ? stack : withPolicyPack(stack);
}

/**
 * The stack's preview and up run the policy pack unless the caller names its own `policyPacks`, so
 * every project command (lab, sites, ops, CI, tests) is checked as a user's `--policy-pack policy` is.
 * Probe programs (spec.program) are not hastack stacks and are left unchecked.
 */
export function withPolicyPack(stack: Stack): Stack {
  const preview = stack.preview.bind(stack), up = stack.up.bind(stack);
  stack.preview = (o = {}) => preview({ ...o, policyPacks: o.policyPacks ?? [POLICY_PACK] });
  stack.up = (o = {}) => up({ ...o, policyPacks: o.policyPacks ?? [POLICY_PACK] });
  return stack;
}

/**
 * Replace a stack's whole config with `config`. Keys like "hastack:passwords.postgresApp" are
 * config paths (one secure value per secret leaf). Secret values go to `pulumi config set` on
 * its stdin, never as arguments (the Automation API's setConfig puts them in argv, readable by
 * every user in the process list); values already set are not set again.
 */
export async function applyConfig(stack: Stack, config: ConfigMap, workDir: string, env: Record<string, string>): Promise<void> {
  const top = (k: string) => k.split(".")[0];
  const wanted = new Set(Object.keys(config).map(top));
  const existing = await stack.getAllConfig();
  const stale = Object.keys(existing).filter((k) => !wanted.has(k));
  if (stale.length) await stack.removeAllConfig(stale);
  const current = existingLeaves(existing);
  // an object set leaf by leaf that has leaves no longer wanted (or was set whole): set it again from nothing
  for (const t of new Set(Object.keys(config).filter((k) => k.includes(".")).map(top))) {
    const have = [...current.keys()].filter((k) => k.startsWith(`${t}.`));
    if (existing[t] !== undefined && (have.length === 0 || have.some((k) => !(k in config)))) {
      await stack.removeConfig(t);
      for (const k of [...current.keys()]) if (k === t || k.startsWith(`${t}.`)) current.delete(k);
    }
  }
  for (const [key, v] of Object.entries(config)) {
    if (current.get(key) === v.value) continue;
    const isPath = key.includes(".");
    if (v.secret) await configSetFromStdin(stack.name, key, v.value, isPath, workDir, env);
    else await stack.setConfig(key, { value: v.value }, isPath);
  }
}

/** Every leaf value of the current config under its path key ("a:b.c") and every top-level value under its key. */
function existingLeaves(existing: ConfigMap): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(existing)) {
    out.set(k, v.value);
    let parsed: unknown;
    try { parsed = JSON.parse(v.value); } catch { continue; }
    const walk = (prefix: string, x: unknown) => {
      if (x !== null && typeof x === "object" && !Array.isArray(x)) for (const [kk, vv] of Object.entries(x)) walk(`${prefix}.${kk}`, vv);
      else if (typeof x === "string") out.set(prefix, x);
    };
    walk(k, parsed);
  }
  return out;
}

/** `pulumi config set --secret KEY` with the value on stdin: the CLI reads it when no value argument is given. */
function configSetFromStdin(stackName: string, key: string, value: string, isPath: boolean, cwd: string, env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = ["config", "set", "--stack", stackName, "--secret", ...(isPath ? ["--path"] : []), key, "--non-interactive"];
    const p = spawn("pulumi", args, { cwd, env: { ...process.env, ...env }, stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (d) => { err += d; });
    p.on("error", reject);
    p.on("close", (code) => code === 0 ? resolve() : reject(new Error(`pulumi config set --secret ${key} (value on stdin) failed: ${err.trim()}`)));
    // the CLI drops one trailing newline from stdin; add one so the value is stored exactly
    p.stdin.end(`${value}\n`);
  });
}

/** Every stack state file of a file backend, concatenated, exactly as stored on disk. */
export function readStateFiles(backendDir: string): string {
  const root = path.join(backendDir, ".pulumi", "stacks");
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".json")) out.push(fs.readFileSync(p, "utf8"));
    }
  };
  if (fs.existsSync(root)) walk(root);
  if (!out.length) throw new Error(`no state files under ${root}`);
  return out.join("\n");
}

/** Counts of changes by operation, as the engine reports them; "same" is not a change. */
export function changes(summary: Record<string, number> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [op, n] of Object.entries(summary ?? {})) if (op !== "same" && n > 0) out[op] = n;
  return out;
}

export function totalChanges(summary: Record<string, number> | undefined): number {
  return Object.values(changes(summary)).reduce((a, b) => a + b, 0);
}

