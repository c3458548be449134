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

/** Record which host name a connection (from connectionFor) belongs to. */
export function registerOwner(connection: object, hostName: string): void {
  owners.set(connection, hostName);
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
