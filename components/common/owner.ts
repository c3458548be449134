import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { shq } from "./shell";

/**
 * Host identity on the host itself: `/etc/hastack/owners/<project>.<stack>` holds the name this stack gives the host.
 * Every remote step that has a delete command claims the host in its create (writes its name there) and runs its
 * delete only while the file still names it (or is absent: hosts deployed before the marker). Renaming a host at the
 * same address makes Pulumi create the new-named steps first and delete the old-named ones last; the new steps have
 * claimed the host by then, so the old deletes (stop services, remove files) leave what the new ones set up.
 * A stack of its own file: two stacks sharing a host never skip each other's deletes.
 */
export const OWNER_DIR = "/etc/hastack/owners";

const owners = new WeakMap<object, string>();
const plannedAddresses = new WeakMap<object, string>();

/**
 * Record which host a connection (from connectionFor) belongs to: its name, and its planned address (the config's,
 * known at once, while the address dialled may be a VMmanager VM's output, unknown until the VM exists).
 */
export function registerOwner(connection: object, hostName: string, plannedAddress?: string): void {
  owners.set(connection, hostName);
  if (plannedAddress !== undefined) plannedAddresses.set(connection, plannedAddress);
}

/** The planned (config) address of a connection made by connectionFor, if any. */
export function plannedAddressOf(connection: unknown): string | undefined {
  return typeof connection === "object" && connection !== null ? plannedAddresses.get(connection) : undefined;
}

function markerPath(): string {
  return `${OWNER_DIR}/${pulumi.getProject()}.${pulumi.getStack()}`;
}

/** Shell that records `hostName` as this stack's name for the host (atomic; concurrent claims write the same text). */
export function claimScript(hostName: string): string {
  const m = shq(markerPath());
  return `{ mkdir -p ${shq(OWNER_DIR)} && printf '%s\\n' ${shq(hostName)} > ${m}.$$ && mv ${m}.$$ ${m}; } || exit 1`;
}

/** `action` guarded: skipped (exit 0) when this stack's marker names another host name, i.e. the host was renamed. */
export function ownedScript(hostName: string, action: string): string {
  const m = shq(markerPath());
  return [
    `if [ -e ${m} ] && [ "$(cat ${m})" != ${shq(hostName)} ]; then`,
    `  echo "kept: this host is now $(cat ${m}) in this stack, not ${hostName.replace(/[^A-Za-z0-9_.-]/g, "?")}"; exit 0`,
    "fi",
    action,
  ].join("\n");
}

/** The create and delete of a step on `connection`: claim + create, guarded delete. Unchanged for unknown connections. */
export function withOwner(connection: unknown, create: pulumi.Input<string>, del: pulumi.Input<string> | undefined):
  { create: pulumi.Input<string>; delete: pulumi.Input<string> | undefined } {
  const host = typeof connection === "object" && connection !== null ? owners.get(connection) : undefined;
  if (host === undefined || del === undefined) return { create, delete: del };
  // plain text stays plain text (no Output where the step had none)
  const map = (v: pulumi.Input<string>, f: (x: string) => string) => typeof v === "string" ? f(v) : pulumi.output(v).apply(f);
  return { create: map(create, (c) => `${claimScript(host)}\n${c}`), delete: map(del, (d) => ownedScript(host, d)) };
}

/**
 * Replacement guard. Only `triggers` replace a step, and Pulumi replaces create-before-delete: the new step's create
 * runs first, then the OLD step's delete. A delete that undoes something on a fixed path (remove a trust file, disable
 * a unit) would then undo what the new create just did: a CA rotation left the node with no stack CA at all. So a step
 * with both triggers and a delete records, in its create, which generation (a hash of its triggers) it is, in a file
 * of its own on the host; its delete acts only while that file still names its generation (or is absent: steps
 * deployed before the guard). A replaced step's delete finds the new generation there and leaves the host alone;
 * a destroy finds its own and acts. Limit: `pulumi up --replace` with unchanged triggers is the same generation, so
 * the old delete acts (as before this guard); the triggers change in every replacement this program makes itself.
 */
export const GENERATION_DIR = `${OWNER_DIR}/steps`;

function generationPath(step: string): string {
  // a step name may hold anything; the file name is a hash of the stack and the step
  return `${GENERATION_DIR}/${crypto.createHash("sha256").update(`${pulumi.getProject()}.${pulumi.getStack()}.${step}`).digest("hex").slice(0, 32)}`;
}

/** Shell that records `generation` as the live generation of `step` (atomic). */
export function generationClaimScript(step: string, generation: string): string {
  const g = shq(generationPath(step));
  return `{ mkdir -p ${shq(GENERATION_DIR)} && printf '%s\\n' ${shq(generation)} > ${g}.$$ && mv ${g}.$$ ${g}; } || exit 1`;
}

/** `action` guarded: skipped (exit 0) when a newer generation of `step` has claimed the host; else the record goes too. */
export function generationGuardedScript(step: string, generation: string, action: string): string {
  const g = shq(generationPath(step));
  return [
    `if [ -e ${g} ] && [ "$(cat ${g})" != ${shq(generation)} ]; then`,
    `  echo "kept: replaced by a newer generation of this step"; exit 0`,
    "fi",
    `rm -f ${g}`,
    action,
  ].join("\n");
}

/**
 * The create and delete of a replaceable step (triggers and a delete): claim its generation, guard its delete.
 * `generation` is known at preview whenever the triggers are, so the create text is no more unknown than before.
 */
export function withGeneration(step: string, generation: pulumi.Input<string> | undefined, create: pulumi.Input<string>,
  del: pulumi.Input<string> | undefined): { create: pulumi.Input<string>; delete: pulumi.Input<string> | undefined } {
  if (generation === undefined || del === undefined) return { create, delete: del };
  return {
    create: pulumi.all([generation, create]).apply(([g, c]) => `${generationClaimScript(step, g)}\n${c}`),
    delete: pulumi.all([generation, del]).apply(([g, d]) => generationGuardedScript(step, g, d)),
  };
}
