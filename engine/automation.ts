// Drives the real Pulumi engine through the Automation API: a local file backend, the CLI found
// on PATH or built by scripts/setup-engine.sh, and stacks of this very project (Pulumi.yaml).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ConfigMap, LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";

export const REPO = path.resolve(__dirname, "..");

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
}

export function engineEnv(e: EngineEnv): Record<string, string> {
  fs.mkdirSync(e.backendDir, { recursive: true });
  return {
    PATH: [...enginePaths(), process.env.PATH].join(":"),
    PULUMI_BACKEND_URL: `file://${e.backendDir}`,
    PULUMI_HOME: path.join(e.backendDir, ".pulumi-home"),
    PULUMI_CONFIG_PASSPHRASE: e.passphrase,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    // the random/tls plugins cannot be built offline; never try to download anything
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
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
  // keys like "hastack:passwords.postgresApp" are config paths: one secure value per secret leaf
  const top = (k: string) => k.split(".")[0];
  const wanted = new Set(Object.keys(spec.config).map(top));
  const existing = await stack.getAllConfig();
  const stale = Object.keys(existing).filter((k) => !wanted.has(k));
  if (stale.length) await stack.removeAllConfig(stale);
  const plain = Object.fromEntries(Object.entries(spec.config).filter(([k]) => !k.includes(".")));
  const paths = Object.fromEntries(Object.entries(spec.config).filter(([k]) => k.includes(".")));
  for (const k of new Set(Object.keys(paths).map(top))) if (k in existing) await stack.removeConfig(k);
  if (Object.keys(plain).length) await stack.setAllConfig(plain);
  if (Object.keys(paths).length) await stack.setAllConfig(paths, true);
  return stack;
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

