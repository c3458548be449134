// `npm run preview:prod`: a real `pulumi preview` of the prod stack (Pulumi.prod.yaml, the reference
// datacenter 192.168.1.x), offline. The engine is the one scripts/setup-engine.sh provides, the
// backend a throwaway local file backend, the project a temp copy of Pulumi.yaml + Pulumi.prod.yaml
// (the committed files are never written). What prod keeps out of the repo is made up here: a
// throwaway SSH key (a preview does not connect to any host), offline passwords and certificates
// when the random/tls plugins are missing, and the WorksPad test double when vendor/workspad.deb is.
//
//   npm run preview:prod [-- --no-diff] [-- --keep]
//   PULUMI_CONFIG_PASSPHRASE   secrets passphrase (default: a fixed throwaway one, printed)
//   HASTACK_SSH_KEY_FILE       SSH private key to put in config (default: a throwaway ed25519 key)
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { ConfigMap, ConfigValue, EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { changes, engineEnv, openStack, REPO } from "../engine/automation";
import { offlineCertificates, offlinePasswords, secretLeaves } from "../engine/offline-secrets";

export const STACK = "prod";
/** Used only when PULUMI_CONFIG_PASSPHRASE is not set; it protects nothing but this offline preview. */
export const THROWAWAY_PASSPHRASE = "hastack-offline-preview-throwaway";

export interface PreviewProdOptions {
  /** Secrets passphrase. @default $PULUMI_CONFIG_PASSPHRASE, else THROWAWAY_PASSPHRASE */
  readonly passphrase?: string;
  /** File backend directory (with backendUrl: PULUMI_HOME and the passphrase file only). @default a new temp dir */
  readonly backendDir?: string;
  /** Another state backend, e.g. a shared S3 bucket (engine/s3backend.ts), and the variables it needs. @default file://backendDir */
  readonly backendUrl?: string;
  readonly backendEnv?: Record<string, string>;
  /** SSH private key file. @default $HASTACK_SSH_KEY_FILE, else a throwaway ed25519 key */
  readonly sshKeyFile?: string;
  /** Show every property of every planned resource (`pulumi preview --diff`). @default true */
  readonly diff?: boolean;
  /** Preview text as the engine prints it. */
  readonly onOutput?: (out: string) => void;
  /** Notes about what was made up for the preview. @default nothing */
  readonly log?: (line: string) => void;
}

export interface PlannedResource {
  readonly urn: string;
  readonly type: string;
  readonly op: string;
  /** Inputs as the engine reports them (secrets shown as "[secret]"). */
  readonly inputs?: Record<string, unknown>;
}

export interface PreviewProdResult {
  /** The whole preview text. */
  readonly stdout: string;
  /** Changes by operation ("same" left out). */
  readonly changeSummary: Record<string, number>;
  readonly backendDir: string;
  /** The temp project directory (Pulumi.yaml and the prod stack's config file as the engine left it). */
  readonly workDir: string;
  /** Every secret value this run put into config (to check that none leaks). */
  readonly secrets: string[];
  /** One entry per resource step of the plan, from the engine's events. */
  readonly resources: PlannedResource[];
  /** Every engine event, as received. */
  readonly events: EngineEvent[];
  readonly passphraseIsThrowaway: boolean;
  /** Which of random/tls the engine can load; missing ones were replaced by supplied config. */
  readonly plugins: { random: boolean; tls: boolean };
  readonly durationMs: number;
  /** Remove the temp dirs this run made (the backend too, unless it was given). */
  cleanup(): void;
}

interface HostRef { name: string; address: string }

const PROD_CONFIG = path.join(REPO, `Pulumi.${STACK}.yaml`);

/** Pulumi.prod.yaml's `config:` as a ConfigMap: objects JSON-stringified, as the program parses them. */
export function prodConfig(file = PROD_CONFIG): ConfigMap {
  const doc = yaml.load(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null;
  const out: ConfigMap = {};
  for (const [key, v] of Object.entries(doc?.config ?? {})) {
    if (JSON.stringify(v ?? null).includes('"secure":')) {
      throw new Error(`${path.basename(file)}: ${key} is encrypted for another secrets provider; an offline preview cannot read it`);
    }
    out[key] = { value: typeof v === "string" ? v : JSON.stringify(v) };
  }
  return out;
}

function obj(cfg: ConfigMap, key: string): Record<string, any> {
  const v = cfg[key]?.value;
  return v === undefined ? {} : JSON.parse(v);
}

/** A provider plugin installed under a PULUMI_HOME (`plugins/resource-NAME-vX.Y.Z/pulumi-resource-NAME`). */
function pluginUnder(pulumiHome: string, name: string): string | undefined {
  const plugins = path.join(pulumiHome, "plugins");
  if (!fs.existsSync(plugins)) return undefined;
  for (const d of fs.readdirSync(plugins)) {
    const p = path.join(plugins, d, `pulumi-resource-${name}`);
    if (d.startsWith(`resource-${name}-v`) && !fs.existsSync(path.join(plugins, `${d}.partial`)) && fs.existsSync(p)) return p;
  }
  return undefined;
}

/** Where the engine (the PATH and PULUMI_HOME of engineEnv) would load a provider plugin from, if anywhere. */
export function findPlugin(name: string, env: Record<string, string>): string | undefined {
  for (const d of (env.PATH ?? "").split(":").filter(Boolean)) {
    const p = path.join(d, `pulumi-resource-${name}`);
    try { fs.accessSync(p, fs.constants.X_OK); if (fs.statSync(p).isFile()) return p; } catch { /* not here */ }
  }
  return env.PULUMI_HOME ? pluginUnder(env.PULUMI_HOME, name) : undefined;
}

/** A secret config value, remembered so callers can check it never shows in plaintext. */
function secretValue(value: string, secrets: string[]): ConfigValue {
  secrets.push(value);
  return { value, secret: true };
}



function throwawaySshKey(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-preview-key-"));
  try {
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "hastack-offline-preview", "-f", path.join(dir, "id_ed25519")],
      { stdio: ["ignore", "ignore", "pipe"] });
    return fs.readFileSync(path.join(dir, "id_ed25519"), "utf8");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The prod stack as previewProd previews it: created and configured in a temp project copy, not previewed. */
export type ProdStack = Pick<PreviewProdResult, "backendDir" | "workDir" | "secrets" | "passphraseIsThrowaway" | "plugins" | "cleanup"> & { readonly stack: Stack };

export async function openProdStack(opts: PreviewProdOptions = {}): Promise<ProdStack> {
  const log = opts.log ?? (() => undefined);
  const made: string[] = [];
  const tmp = (prefix: string) => { const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix)); made.push(d); return d; };
  const cleanup = () => { for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true }); };
  try {
    const envPassphrase = process.env.PULUMI_CONFIG_PASSPHRASE;
    const passphrase = opts.passphrase ?? envPassphrase ?? THROWAWAY_PASSPHRASE;
    const passphraseIsThrowaway = passphrase === THROWAWAY_PASSPHRASE;
    if (passphraseIsThrowaway) log(`PULUMI_CONFIG_PASSPHRASE not set: using the fixed throwaway passphrase "${THROWAWAY_PASSPHRASE}" (offline preview only; protects nothing)`);
    const backendDir = opts.backendDir ?? tmp("hastack-preview-backend-");
    const workDir = tmp("hastack-preview-project-");
    const e = { backendDir, passphrase, backendUrl: opts.backendUrl, env: opts.backendEnv };
    const env = engineEnv(e);
    log(`backend: file://${backendDir} (PULUMI_HOME ${env.PULUMI_HOME}); project copy: ${workDir}`);

    // the project as committed; openStack writes the stack's config into the copy, never the repo
    fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(workDir, "Pulumi.yaml"));
    fs.copyFileSync(PROD_CONFIG, path.join(workDir, `Pulumi.${STACK}.yaml`));
    const config = prodConfig();
    const secrets: string[] = [];
    /** Secret objects, set leaf by leaf after the rest (see secretLeaves). */
    const leaves: ConfigMap = {};

    const keyFile = opts.sshKeyFile ?? process.env.HASTACK_SSH_KEY_FILE;
    if (keyFile) {
      log(`hastack:sshPrivateKey from ${keyFile} (a preview connects to no host)`);
      config["hastack:sshPrivateKey"] = secretValue(fs.readFileSync(keyFile, "utf8"), secrets);
    } else {
      log("hastack:sshPrivateKey: a throwaway ed25519 key (HASTACK_SSH_KEY_FILE not set; a preview connects to no host, so no real key is needed)");
      config["hastack:sshPrivateKey"] = secretValue(throwawaySshKey(), secrets);
    }

    const random = findPlugin("random", env), tls = findPlugin("tls", env);
    // the engine runs with its own PULUMI_HOME (engineEnv), so the user's plugin cache is not seen
    const userHome = process.env.PULUMI_HOME || path.join(os.homedir(), ".pulumi");
    for (const [name, found] of [["random", random], ["tls", tls]] as const) {
      const cached = found ? undefined : pluginUnder(userHome, name);
      if (cached) log(`${cached} is not used: this preview's engine has its own PULUMI_HOME; put ${path.dirname(cached)} on PATH to plan ${name} resources`);
    }
    const workspad = obj(config, "hastack:workspad"), nginx = obj(config, "hastack:nginx");
    if (random) log(`random plugin found (${random}): RandomPassword resources are planned`);
    else {
      log("no pulumi-resource-random plugin: hastack:passwords supplied as secret config, one secure value each (engine/offline-secrets)");
      const passwords = offlinePasswords();
      Object.assign(leaves, secretLeaves("hastack:passwords", passwords));
      secrets.push(...Object.values(passwords));
    }
    if (tls) log(`tls plugin found (${tls}): tls certificate resources are planned`);
    else {
      log("no pulumi-resource-tls plugin: hastack:certificates supplied as secret config, one secure value each (engine/offline-secrets)");
      // nginx verifies WorksPad upstreams by this name (NginxBalancer upstreamTlsName)
      const upstream: string = nginx.upstreamTlsName ?? "workspad";
      const hosts = [
        ...((workspad.nodes ?? []) as HostRef[]).map((h) => ({ name: h.name, address: h.address, dnsNames: [upstream] })),
        ...((nginx.nodes ?? []) as HostRef[]).map((h) => ({ name: h.name, address: h.address })),
      ];
      const certs = offlineCertificates(hosts);
      Object.assign(leaves, secretLeaves("hastack:certificates", certs));
      for (const s of [...Object.values(certs.servers), certs.dataProtection]) secrets.push(s.keyPem);
    }

    // the vendor package, or the test double in its place
    const vendor = path.resolve(REPO, typeof workspad.packagePath === "string" ? workspad.packagePath : "vendor/workspad.deb");
    if (fs.existsSync(vendor)) {
      workspad.packagePath = vendor;
      log(`hastack:workspad.packagePath: ${vendor}`);
    } else {
      const out = tmp("hastack-preview-pkg-");
      workspad.packagePath = execFileSync("bash", [path.join(REPO, "tests", "workspad-double", "build.sh"), out],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim().split("\n").pop()!;
      log("");
      log("!!! NOTE: " + path.relative(REPO, vendor) + " does not exist: this preview plans the WorksPad TEST DOUBLE");
      log(`!!!       (${workspad.packagePath}), not the vendor package. Put the real .deb there for a faithful plan.`);
      log("");
    }
    config["hastack:workspad"] = { value: JSON.stringify(workspad) };

    // secrets reach the CLI on stdin (applyConfig), never as arguments
    const stack = await openStack({ stackName: STACK, config: { ...config, ...leaves }, workDir }, e);
    return { stack, backendDir, workDir, secrets: [...new Set(secrets)], passphraseIsThrowaway, plugins: { random: !!random, tls: !!tls }, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

export async function previewProd(opts: PreviewProdOptions = {}): Promise<PreviewProdResult> {
  const p = await openProdStack(opts);
  try {
    let stdout = "";
    const events: EngineEvent[] = [];
    const resources: PlannedResource[] = [];
    const started = Date.now();
    const pv = await p.stack.preview({
      diff: opts.diff ?? true,
      color: "never",
      onOutput: (s) => { stdout += s; opts.onOutput?.(s); },
      onEvent: (ev) => {
        events.push(ev);
        const m = ev.resourcePreEvent?.metadata;
        if (m) resources.push({ urn: m.urn, type: m.type, op: m.op, inputs: m.new?.inputs });
      },
    });
    const durationMs = Date.now() - started;
    const { stack: _stack, ...rest } = p;
    return { ...rest, stdout: stdout || pv.stdout, changeSummary: changes(pv.changeSummary), resources, events, durationMs };
  } catch (err) {
    p.cleanup();
    throw err;
  }
}

export function summaryLine(r: Pick<PreviewProdResult, "changeSummary" | "resources" | "durationMs">): string {
  const counts = Object.entries(r.changeSummary).map(([op, n]) => `${n} to ${op}`).join(", ") || "no changes";
  const remote = r.resources.filter((x) => x.type.startsWith("command:remote:")).length;
  return `preview of ${STACK}: ${counts} (${remote} of them command:remote steps); engine preview took ${(r.durationMs / 1000).toFixed(1)}s`;
}

async function main(argv: string[]): Promise<number> {
  const args = new Set(argv);
  if (args.has("--help") || args.has("-h")) {
    console.log("usage: npm run preview:prod [-- --no-diff] [-- --keep]\n  --no-diff  list resources only, not their properties\n  --keep     keep the temp backend and project copy");
    return 0;
  }
  const unknown = [...args].filter((a) => !["--no-diff", "--keep"].includes(a));
  if (unknown.length) { console.error(`preview-prod: unknown argument(s): ${unknown.join(" ")} (see --help)`); return 2; }
  const t0 = Date.now();
  const r = await previewProd({
    diff: !args.has("--no-diff"),
    onOutput: (s) => process.stdout.write(s),
    log: (l) => console.error(`preview-prod: ${l}`),
  });
  try {
    console.log(`\n${summaryLine(r)} (${((Date.now() - t0) / 1000).toFixed(1)}s in all, engine set-up and config included)`);
    if (args.has("--keep")) console.error(`preview-prod: kept ${r.backendDir} and ${r.workDir}`);
  } finally {
    if (!args.has("--keep")) r.cleanup();
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err) => {
    const msg = err instanceof Error ? err.message : String(err);
    // a failed `pulumi` run: its whole output was streamed above already; name the command only
    const cmd = /Command failed with exit code \d+: [^\n]*/.exec(msg);
    console.error(`preview-prod: FAILED: ${cmd ? `${cmd[0]} (its output is above)` : msg}`);
    process.exitCode = 1;
  });
}
