// The three steps of authRotation.ts as Pulumi resources, for any VIP pair or group: every node's quiesce before
// any node's new keepalived file, each node's apply once its file is written and its keepalived enabled, every
// node's resume once every node applied. The caller's reloads and rolling restarts of a node wait for its resume.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { contentHash } from "../common/hash";
import { runScript } from "../common/remote";
import { AuthRotationParams, authApplyScript, authQuiesceScript, authResumeScript } from "./authRotation";

/**
 * The auth_pass a rendered keepalived config holds, read as the quiesce script reads the running file (the first
 * `auth_pass` line, quotes dropped); "" when it has none (VRRPv3), which the quiesce script finds equal to a running
 * file without one. A non-empty value there would stop a backup whose file cannot differ by password.
 */
export function authPassInFile(conf: string): string {
  for (const line of conf.split("\n")) {
    const m = /^[ \t\r\f\v]*auth_pass[ \t\r\f\v]*(.*)$/.exec(line);
    if (m) return m[1].replace(/"/g, "");
  }
  return "";
}

export interface AuthRotationNode {
  /** Name prefix of the node's steps, `${name}-${host.name}`: `<prefix>-keepalived-quiesce`, `-apply`, `-resume`. */
  readonly prefix: string;
  readonly connection: command.types.input.remote.ConnectionArgs;
  /** The keepalived config this node is about to get (secret); its auth_pass goes to the quiesce step's stdin. */
  readonly conf: pulumi.Input<string>;
  /** What this node's quiesce step waits for (the steps before any node's keepalived file). */
  readonly after: readonly pulumi.Resource[];
}

export interface AuthRotationStepsArgs {
  readonly nodes: readonly AuthRotationNode[];
  readonly params: AuthRotationParams;
  /**
   * The steps are replaced (so run again) when these change. @default the hash of the auth_pass the files hold, so a
   * VRRPv3 pair's new secret (no auth_pass written) changes nothing.
   */
  readonly triggers?: pulumi.Input<string>[];
  readonly parent: pulumi.Resource;
}

export interface AuthRotationSteps {
  readonly quiesced: command.remote.Command[];
  /** Per node, what writeConf returned. */
  readonly enabled: pulumi.Resource[];
  readonly applied: command.remote.Command[];
  /** Per node: after this the change is over everywhere; the node's reloads and restarts wait for it. */
  readonly resumed: command.remote.Command[];
}

/**
 * Creates every node's quiesce step, then calls `writeConf(i, quiesced)` for each node: it writes the node's new
 * keepalived file (its dependsOn must hold every step of `quiesced`) and returns the step after which the node's
 * keepalived runs (its serviceEnabled). The node's apply follows that step; every resume follows every apply.
 */
export function authRotationSteps(args: AuthRotationStepsArgs,
  writeConf: (index: number, quiesced: command.remote.Command[]) => pulumi.Resource): AuthRotationSteps {
  const o = (deps: readonly pulumi.Resource[]): pulumi.CustomResourceOptions => ({ parent: args.parent, dependsOn: [...deps] });
  const inFile = args.nodes.map((n) => pulumi.output(n.conf).apply(authPassInFile));
  const quiesced = args.nodes.map((n, i) => runScript(`${n.prefix}-keepalived-quiesce`, {
    connection: n.connection, create: authQuiesceScript(args.params), stdin: inFile[i], triggers: args.triggers ?? [contentHash(inFile[i])],
  }, o(n.after)));
  const enabled = args.nodes.map((_, i) => writeConf(i, quiesced));
  const applied = args.nodes.map((n, i) => runScript(`${n.prefix}-keepalived-apply`, {
    connection: n.connection, create: authApplyScript(args.params), triggers: args.triggers ?? [contentHash(inFile[i])],
  }, o([enabled[i]])));
  const resumed = args.nodes.map((n, i) => runScript(`${n.prefix}-keepalived-resume`, {
    connection: n.connection, create: authResumeScript(args.params), triggers: args.triggers ?? [contentHash(inFile[i])],
  }, o([enabled[i], ...applied])));
  return { quiesced, enabled, applied, resumed };
}
