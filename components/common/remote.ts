import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { shq } from "./shell";

type Conn = command.types.input.remote.ConnectionArgs;

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
  return new command.remote.Command(name, {
    connection: args.connection,
    create: script,
    delete: removeOnDelete ? `rm -f ${p}` : undefined,
    stdin: args.secret ? pulumi.secret(args.content) : args.content,
    logging: args.secret ? "none" : "stdoutAndStderr",
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
}

/** A remote shell step; scripts must be idempotent (an input change re-runs them on the host as it is). */
export function runScript(name: string, args: ScriptArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
  return new command.remote.Command(name, {
    connection: args.connection,
    create: pulumi.output(args.create).apply((c) => `set -eu\n${c}`),
    update: args.update === undefined ? undefined : pulumi.output(args.update).apply((c) => `set -eu\n${c}`),
    delete: args.delete,
    triggers: args.triggers,
    stdin: args.stdin === undefined ? undefined : pulumi.secret(args.stdin),
    logging: args.quiet ? "none" : "stdoutAndStderr",
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
  }, opts);
}

/** A systemd unit enabled and started; stopped and disabled on destroy. */
export function serviceEnabled(name: string, connection: Conn, unit: string, opts: pulumi.CustomResourceOptions): command.remote.Command {
  const u = shq(unit);
  return runScript(name, {
    connection,
    create: `systemctl enable ${u} >/dev/null 2>&1; systemctl is-active --quiet ${u} || systemctl start ${u}`,
    delete: `systemctl disable --now ${u} >/dev/null 2>&1 || true`,
  }, opts);
}

/**
 * Restart (or reload) a unit when the hashes of its inputs change. The first create only
 * records the hashes: serviceEnabled started the unit with these very inputs.
 */
export function restartOnChange(name: string, connection: Conn, action: pulumi.Input<string>, triggers: pulumi.Input<string>[],
  opts: pulumi.CustomResourceOptions): command.remote.Command {
  return runScript(name, { connection, create: action, triggers }, opts);
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
