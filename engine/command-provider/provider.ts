// A resource-provider plugin for the `command:remote:Command` and `command:remote:CopyToRemote`
// types of @pulumi/command 1.2.1, for machines where the official Go plugin cannot be had
// (its module is not served by the Go proxy here). It speaks the same gRPC protocol through the
// SDK's provider server, keeps the same inputs and outputs, and follows the documented semantics:
// only `triggers` force a replacement, any other input change runs `update` (or `create`) again,
// `delete` runs with the old state's command, `logging: none` keeps output out of state.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as provider from "@pulumi/pulumi/provider";
import { Connection, run, RunResult } from "./ssh";

const SIG = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17";
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** Plain value of a property: secret wrappers removed (the raw inputs keep them for the state). */
function plain(v: any): any {
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") {
    if (v[SIG] === SECRET_SIG) return plain(v.value);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

function hasUnknown(v: any): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some(hasUnknown);
  if (v && typeof v === "object") return Object.values(v).some(hasUnknown);
  return false;
}

function same(a: any, b: any): boolean {
  return JSON.stringify(plain(a) ?? null) === JSON.stringify(plain(b) ?? null);
}

/** The resource's own type: the URN's type part is the parent chain joined by `$`. */
function typeOf(urn: string): string {
  return (urn.split("::")[2] ?? "").split("$").pop() ?? "";
}

function nameOf(urn: string): string {
  return urn.split("::").pop() ?? urn;
}

function fail(what: string, urn: string, conn: Connection, r: RunResult, quiet: boolean): never {
  const detail = quiet ? " (output hidden: logging is none)"
    : `\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-2000)}`;
  throw new Error(`${what} of ${nameOf(urn)} failed on ${conn.host}: exit status ${r.code}${detail}`);
}

function envPrefix(env: Record<string, string> | undefined): string {
  if (!env) return "";
  return Object.entries(env).map(([k, v]) => `export ${k}='${String(v).replace(/'/g, `'\\''`)}'\n`).join("");
}

/**
 * What the state keeps of `stdin`: its sha256, not the text (still wrapped as a secret when it was
 * one). The outputs travel back to the program, whose SDK writes whole RPC responses into its debug
 * log, so a secret stdin kept as text would reach engine events in clear at debug verbosity.
 */
function stdinDigest(v: any): any {
  if (v === undefined || v === null) return v;
  const text = String(plain(v));
  const digest = text.startsWith("sha256:") ? text : `sha256:${crypto.createHash("sha256").update(text).digest("hex")}`;
  return v && typeof v === "object" && v[SIG] === SECRET_SIG ? { ...v, value: digest } : digest;
}

// Drift (README "Drift"). Upstream's read does nothing, so a hand edit on a host stays invisible to
// `pulumi refresh`; changing that for every Command would re-run arbitrary scripts' effects. Only a
// step that carries a probe in environment.HASTACK_PROBE (components/common/remote.ts: put-file,
// packages, services, restart-on-change) opts in: the probe prints a fingerprint of what the step
// owns on the host (hashes and states, never content), recorded as `hostState` after every apply.
// `read` runs it again and records a differing answer as `hostDrift`; `diff` turns that into an
// update, which re-applies the step. Without a refresh nothing is probed, so a plain re-run stays
// at zero changes. The official plugin ignores the variable: drift is then simply not detected.
const PROBE = "HASTACK_PROBE";
const PROBE_MARK = "--hastack-probe-5f0c2e--";

function probeOf(p: any): string | undefined {
  const v = p?.environment?.[PROBE];
  return typeof v === "string" && v.trim() ? v : undefined;
}

/** A fingerprint of a step whose stdin is secret stays a secret in state (it is a hash of secret content). */
function asStateValue(raw: any, fingerprint: string): any {
  return raw.stdin && typeof raw.stdin === "object" && raw.stdin[SIG] === SECRET_SIG
    ? { [SIG]: SECRET_SIG, value: fingerprint } : fingerprint;
}

async function probeHost(urn: string, p: any): Promise<string> {
  const r = await run(p.connection, envPrefix(p.environment) + probeOf(p)!, undefined);
  if (r.code !== 0) fail("drift probe", urn, p.connection, r, false);
  return r.stdout.trim();
}

async function runCommand(urn: string, raw: any, which: "create" | "update"): Promise<any> {
  const p = plain(raw);
  const script: string | undefined = which === "update" ? (p.update ?? p.create) : p.create;
  const logging: string = p.logging ?? "stdoutAndStderr";
  const probe = probeOf(p);
  let stdout = "", stderr = "";
  let hostState: string | undefined;
  if (script) {
    // the probe runs in the same SSH session, after the script and only if it succeeded; the script
    // runs in a subshell so its own `exit 0` (put-file's "unchanged") still reaches the probe
    const body = probe === undefined ? script
      : `(\n${script}\n)\n__hastack_rc=$?\n[ "$__hastack_rc" -eq 0 ] || exit "$__hastack_rc"\n`
        + `printf '\\n%s\\n' '${PROBE_MARK}'\n( ${probe}\n) </dev/null 2>/dev/null`;
    const r = await run(p.connection, envPrefix(p.environment) + body, p.stdin);
    let out = r.stdout;
    if (probe !== undefined && r.code === 0) {
      const at = out.lastIndexOf(`\n${PROBE_MARK}\n`);
      if (at < 0) fail(`${which} (no drift probe answer)`, urn, p.connection, r, logging === "none");
      hostState = out.slice(at + PROBE_MARK.length + 2).trim();
      out = out.slice(0, at);
    }
    if (r.code !== 0) fail(which, urn, p.connection, { ...r, stdout: out }, logging === "none");
    stdout = /stdout/i.test(logging) ? out.replace(/\n$/, "") : "";
    stderr = /stderr/i.test(logging) ? r.stderr.replace(/\n$/, "") : "";
  }
  return {
    ...raw, ...(raw.stdin !== undefined ? { stdin: stdinDigest(raw.stdin) } : {}), stdout, stderr,
    ...(hostState !== undefined ? { hostState: asStateValue(raw, hostState) } : {}),
  };
}

function fileHash(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

async function copy(urn: string, raw: any): Promise<any> {
  const p = plain(raw);
  const src = p.source;
  if (!src || src[SIG] !== ASSET_SIG || typeof src.path !== "string") {
    throw new Error(`${nameOf(urn)}: only a FileAsset source is supported by this provider`);
  }
  const remote: string = p.remotePath;
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = `set -eu\nmkdir -p ${q(path.posix.dirname(remote))}\ncat > ${q(remote)}.part\nmv -f ${q(remote)}.part ${q(remote)}`;
  const r = await run(p.connection, script, () => fs.createReadStream(src.path));
  if (r.code !== 0) fail("copy", urn, p.connection, r, false);
  return { ...raw, sourceHash: fileHash(src.path) };
}

const COMMAND = "command:remote:Command";
const COMMAND_KEYS = ["connection", "create", "update", "delete", "environment", "stdin", "logging", "triggers", "addPreviousOutputInEnv"];

// stdin is compared by digest: the state keeps only its sha256 (see stdinDigest)
function comparable(k: string, v: any): any {
  return k === "stdin" && !hasUnknown(v) ? plain(stdinDigest(v)) : v;
}

function withoutProbe(k: string, v: any): any {
  if (k !== "environment" || !v || typeof v !== "object") return v;
  const { [PROBE]: _probe, ...rest } = plain(v);
  return Object.keys(rest).length ? rest : undefined;
}
const COPY = "command:remote:CopyToRemote";

const impl: provider.Provider = {
  version: "1.2.1",

  async check(urn, _olds, news) {
    const t = typeOf(urn);
    if (t !== COMMAND && t !== COPY) return { inputs: news, failures: [{ property: "", reason: `unsupported type ${t}` }] };
    if (!news.connection) return { inputs: news, failures: [{ property: "connection", reason: "connection is required" }] };
    return { inputs: news };
  },

  async diff(_id, urn, olds, news) {
    const keys = typeOf(urn) === COPY ? ["connection", "remotePath", "triggers"] : COMMAND_KEYS;
    const changed = keys.filter((k) => hasUnknown(news[k]) || !same(comparable(k, olds[k]), comparable(k, news[k])));
    // drift seen by the last refresh (see PROBE): re-apply the step as it is
    if (olds.hostDrift !== undefined && !same(olds.hostDrift, olds.hostState)) changed.push("hostState");
    if (typeOf(urn) === COPY) {
      const src = plain(news.source);
      // the engine sends the asset's hash (and no path) when it has computed one
      const newHash = typeof src?.hash === "string" ? src.hash
        : typeof src?.path === "string" && fs.existsSync(src.path) ? fileHash(src.path) : undefined;
      if (hasUnknown(src) || newHash === undefined || newHash !== olds.sourceHash) changed.push("source");
    }
    const replaces = changed.filter((k) => k === "triggers");
    return { changes: changed.length > 0, replaces };
  },

  async create(urn, inputs) {
    const outs = typeOf(urn) === COPY ? await copy(urn, inputs) : await runCommand(urn, inputs, "create");
    return { id: crypto.randomUUID(), outs };
  },

  async update(_id, urn, olds, news) {
    if (typeOf(urn) === COPY) return { outs: await copy(urn, news) };
    // only the probe was added or changed (e.g. the first deploy after upgrading): record the host's
    // state, do not re-run the step (a restart step would restart its daemon for nothing)
    const p = plain(news);
    if (probeOf(p) !== undefined && olds.hostDrift === undefined
      && COMMAND_KEYS.every((k) => same(comparable(k, withoutProbe(k, olds[k])), comparable(k, withoutProbe(k, news[k]))))) {
      return { outs: { ...news, ...(news.stdin !== undefined ? { stdin: stdinDigest(news.stdin) } : {}),
        stdout: olds.stdout ?? "", stderr: olds.stderr ?? "", hostState: asStateValue(news, await probeHost(urn, p)) } };
    }
    return { outs: await runCommand(urn, news, "update") };
  },

  async delete(_id, urn, props) {
    if (typeOf(urn) !== COMMAND) return; // CopyToRemote never deletes, as upstream
    const p = plain(props);
    if (!p.delete) return;
    const r = await run(p.connection, envPrefix(p.environment) + p.delete, undefined);
    if (r.code !== 0) fail("delete", urn, p.connection, r, (p.logging ?? "") === "none");
  },

  async read(id, urn, props) {
    // like upstream, refresh never re-runs a step; a step with a probe is only looked at (see PROBE)
    const p = plain(props);
    if (typeOf(urn) !== COMMAND || probeOf(p) === undefined || props.hostState === undefined) return { id, props };
    const now = await probeHost(urn, p);
    const { hostDrift: _previous, ...rest } = props;
    return { id, props: now === plain(props.hostState) ? rest : { ...rest, hostDrift: asStateValue(props, now) } };
  },
};

provider.main(impl, process.argv.slice(2)).catch((e) => {
  console.error(e);
  process.exit(1);
});
