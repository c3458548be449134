import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { sha256 } from "./hash";
import { shq } from "./shell";
import { plannedAddressOf, withGeneration, withOwner } from "./owner";

type Conn = command.types.input.remote.ConnectionArgs;

/**
 * Drift probes (README "Drift"): a step that owns something on a host carries, in this variable,
 * a read-only script printing a fingerprint of it (hashes and states, never content). The
 * project's command provider records it after each apply, runs it again on `pulumi refresh`, and
 * turns a different answer into an update that re-applies the step. A probe must exit 0.
 */
const PROBE = "HASTACK_PROBE";

type PutFileEntry = { host: pulumi.Input<string>; planned?: string; path: string; content: pulumi.Input<string> };

/**
 * Files written by putFile in this program run, so a restart step can find the files its trigger hashes cover.
 * Kept per run (one Stack resource each): an Automation API process runs the program again and again, and an
 * Output of an earlier run would hand this run's steps dependencies on resources it has not registered yet.
 */
const putFilesByRun = new WeakMap<object, PutFileEntry[]>();
function putFilesOfThisRun(): PutFileEntry[] {
  const run: object = pulumi.runtime.getStackResource() ?? putFilesByRun;
  let files = putFilesByRun.get(run);
  if (!files) putFilesByRun.set(run, (files = []));
  return files;
}

/** Fingerprint of files as the host has them: content hash, mode and owner, or "missing". */
function fileProbe(paths: readonly string[], contentToo = true): string {
  return paths.map((path) => {
    const p = shq(path);
    const present = contentToo ? `printf '%s %s\\n' "$(sha256sum < ${p} | cut -d' ' -f1)" "$(stat -c '%a %U:%G' ${p})"` : "echo present";
    return `if [ -e ${p} ]; then ${present}; else echo missing; fi`;
  }).join("\n");
}

export interface PutFileArgs {
  readonly connection: Conn;
  /** Absolute path on the host. */
  readonly path: string;
  /** File content; travels over SSH stdin, never in command text. */
  readonly content: pulumi.Input<string>;
  /** @default "0644" (secret files: "0600") */
  readonly mode?: string;
  /** @default "root:root" */
  readonly owner?: string;
  /** Shell run with $NEW set to the staged file; a non-zero exit keeps the old file in place. */
  readonly validate?: string;
  /** Content holds a secret: mode 0600 unless given, nothing logged. */
  readonly secret?: boolean;
  /** Write only when the file does not exist yet (for files a daemon rewrites itself). */
  readonly onlyIfMissing?: boolean;
  /** Remove the file on destroy. @default true */
  readonly removeOnDelete?: boolean;
}

/**
 * Copy → validate → swap, atomically, in the target's own directory.
 * A content change runs the same script again (update), which is idempotent.
 */
export function putFile(name: string, args: PutFileArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
  const mode = args.mode ?? (args.secret ? "0600" : "0644");
  const owner = args.owner ?? "root:root";
  const p = shq(args.path);
  const dir = shq(args.path.replace(/\/[^/]+$/, "") || "/");
  const script = [
    "set -eu",
    ...(args.onlyIfMissing ? [`if [ -e ${p} ]; then cat >/dev/null; echo kept; exit 0; fi`] : []),
    `mkdir -p ${dir}`,
    `NEW=$(mktemp ${dir}/.hastack.XXXXXX)`,
    `trap 'rm -f "$NEW"' EXIT`,
    `cat > "$NEW"`,
    `chmod ${mode} "$NEW"`,
    `chown ${owner} "$NEW"`,
    ...(args.validate ? [`export NEW; ( ${args.validate} ) >&2`] : []),
    `if [ -e ${p} ] && cmp -s "$NEW" ${p}; then echo unchanged; exit 0; fi`,
    `mv -f "$NEW" ${p}`,
    `echo written`,
  ].join("\n");
  const removeOnDelete = args.removeOnDelete ?? true;
  putFilesOfThisRun().push({ host: args.connection.host, planned: plannedAddressOf(args.connection), path: args.path, content: args.content });
  return new command.remote.Command(name, {
    connection: args.connection,
    ...withOwner(args.connection, script, removeOnDelete ? `rm -f ${p}` : undefined),
    stdin: args.secret ? pulumi.secret(args.content) : args.content,
    logging: args.secret ? "none" : "stdoutAndStderr",
    // a file its daemon rewrites (onlyIfMissing) is drift only when it is gone
    environment: { [PROBE]: fileProbe([args.path], !args.onlyIfMissing) },
  }, opts);
}

export interface ScriptArgs {
  readonly connection: Conn;
  readonly create: pulumi.Input<string>;
  readonly update?: pulumi.Input<string>;
  readonly delete?: pulumi.Input<string>;
  /** Replace (and so re-run create) when any of these change: content hashes, not contents. */
  readonly triggers?: pulumi.Input<any>[];
  /** Secret stdin for the script (read with `cat`), never in command text. */
  readonly stdin?: pulumi.Input<string>;
  /** Output may contain a secret: log nothing. */
  readonly quiet?: boolean;
  /** Drift probe (see PROBE): prints what the step owns on the host; unset for steps that own nothing. */
  readonly probe?: pulumi.Input<string>;
}

/** A remote shell step; scripts must be idempotent (an input change re-runs them on the host as it is). */
export function runScript(name: string, args: ScriptArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
  // a step that undoes something on delete claims the host in its create (owner.ts); a replaceable one (triggers) also
  // claims its generation, so the delete of the step it replaces, which Pulumi runs after this create, leaves it be
  const generation = args.triggers === undefined || args.delete === undefined ? undefined
    // a hash of the triggers (themselves hashes): nothing secret, so the command text is not marked secret for it
    : pulumi.unsecret(pulumi.all(args.triggers).apply((t) => sha256(JSON.stringify(t))));
  const replaceable = withGeneration(name, generation, args.create, args.delete);
  const owned = withOwner(args.connection, replaceable.create, replaceable.delete);
  return new command.remote.Command(name, {
    connection: args.connection,
    create: pulumi.output(owned.create).apply((c) => `set -eu\n${c}`),
    update: args.update === undefined ? undefined : pulumi.output(args.update).apply((c) => `set -eu\n${c}`),
    delete: owned.delete,
    triggers: args.triggers,
    stdin: args.stdin === undefined ? undefined : pulumi.secret(args.stdin),
    logging: args.quiet ? "none" : "stdoutAndStderr",
    // no probe, no environment: the inputs stay exactly those of a step without one
    environment: args.probe === undefined ? undefined
      : pulumi.output(args.probe).apply((probe) => (probe ? { [PROBE]: probe } : undefined) as Record<string, string>),
  }, opts);
}

/** Debian packages, installed non-interactively; removal on destroy is opt-in because other things may use them. */
export function installPackages(name: string, connection: Conn, packages: readonly string[], opts: pulumi.CustomResourceOptions,
  removeOnDestroy = false): command.remote.Command {
  const list = [...packages].sort().map(shq).join(" ");
  return runScript(name, {
    connection,
    create: [
      "export DEBIAN_FRONTEND=noninteractive",
      // apt-get update only when something is missing, so a re-run stays fast and offline-safe
      `missing=$(for p in ${list}; do dpkg-query -W -f='\${Status}\\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"; done)`,
      `if [ -n "$missing" ]; then apt-get update -qq && apt-get install -y -qq -o Dpkg::Options::=--force-confold $missing; fi`,
    ].join("\n"),
    delete: removeOnDestroy ? `DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq ${list} || true` : undefined,
    // the status only, not the version: an unattended security upgrade is not drift
    probe: `for p in ${list}; do printf '%s %s\\n' "$p" "$(dpkg-query -W -f='\${Status}' "$p" 2>/dev/null || echo absent)"; done`,
  }, opts);
}

/** A systemd unit enabled and started; stopped and disabled on destroy (or by `stop`, which must end that way too). */
export function serviceEnabled(name: string, connection: Conn, unit: string, opts: pulumi.CustomResourceOptions, stop?: string): command.remote.Command {
  const u = shq(unit);
  return runScript(name, {
    connection,
    create: `systemctl enable ${u} >/dev/null 2>&1; systemctl is-active --quiet ${u} || systemctl start ${u}`,
    delete: stop ?? `systemctl disable --now ${u} >/dev/null 2>&1 || true`,
    // "activating"/"reloading" are a running unit caught mid-change, not drift
    probe: `printf '%s %s\\n' "$(systemctl is-enabled ${u} 2>/dev/null || true)" `
      + `"$(systemctl is-active ${u} 2>/dev/null | sed -e 's/^reloading$/active/' -e 's/^activating$/active/' || true)"`,
  }, opts);
}

/**
 * Restart (or reload) a unit when the hashes of its inputs change. The first create only
 * records the hashes: serviceEnabled started the unit with these very inputs.
 */
export function restartOnChange(name: string, connection: Conn, action: pulumi.Input<string>, triggers: pulumi.Input<string>[],
  opts: pulumi.CustomResourceOptions, update?: pulumi.Input<string>): command.remote.Command {
  return runScript(name, { connection, create: action, update, triggers, probe: coveredFilesProbe(connection, triggers) }, opts);
}

/**
 * The probe of a restart step: a hash of the files its triggers are content hashes of (found by
 * value among this host's putFile contents: one file, or two in either order, as contentHash joins
 * them). A file put back after a hand edit changes it, so `up --refresh` restarts the daemon after
 * the repair and the daemon runs on the repaired file. Only paths reach the probe, never content.
 */
function coveredFilesProbe(connection: Conn, triggers: pulumi.Input<string>[]): pulumi.Output<string> {
  // only this host's files: an unknown content on another host in a preview must not make this step's probe unknown
  // (the diff would show a change), and waiting on every host's files can wait on this very step: with VMmanager VMs
  // the dialled address is an output, and a Redis restart waited for WorksPad files that wait for Redis (the preview
  // hung). So plain addresses compare as they are, a VM's by its planned address from the config.
  const me = plannedAddressOf(connection);
  const files = putFilesOfThisRun().filter((f) => {
    if (typeof f.host === "string" && typeof connection.host === "string") return f.host === connection.host;
    if (me !== undefined && f.planned !== undefined) return f.planned === me;
    return true;
  });
  const paths = pulumi.all([connection.host, pulumi.all(triggers), pulumi.all(files.map((f) => pulumi.all([f.host, f.content])))])
    .apply(([host, hashes, resolved]) => {
      const mine = files.map((f, i) => ({ path: f.path, host: resolved[i][0], content: resolved[i][1] })).filter((f) => f.host === host);
      const wanted = new Set(hashes.map(String));
      const covered = new Set<string>();
      for (const a of mine) {
        if (wanted.has(sha256(a.content))) covered.add(a.path);
        for (const b of mine) if (a !== b && wanted.has(sha256(a.content, b.content))) { covered.add(a.path); covered.add(b.path); }
      }
      return [...covered].sort();
    });
  // paths are not secret, though the contents they were matched by may be
  return pulumi.unsecret(paths).apply((ps) => ps.length
    ? `{\n${fileProbe(ps)}\n} | sha256sum | cut -d' ' -f1` : "");
}

/** Wait until `probe` succeeds (polled every second) or fail after `timeoutSeconds`. */
export function waitFor(name: string, connection: Conn, probe: pulumi.Input<string>, timeoutSeconds: number,
  opts: pulumi.CustomResourceOptions, triggers?: pulumi.Input<any>[]): command.remote.Command {
  const script = pulumi.output(probe).apply((p) => [
    `deadline=$(( $(date +%s) + ${timeoutSeconds} ))`,
    `until ( ${p} ) >/dev/null 2>&1; do`,
    // the probe may hold user text: quoted as one word, never expanded by the shell that reports it
    `  if [ "$(date +%s)" -ge "$deadline" ]; then echo ${shq(`timed out after ${timeoutSeconds}s waiting for: ${p}`)} >&2; exit 1; fi`,
    "  sleep 1",
    "done",
  ].join("\n"));
  return runScript(name, { connection, create: script, triggers }, opts);
}
