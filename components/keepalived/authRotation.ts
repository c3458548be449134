// A VRRPv2 pair's auth_pass changed through `pulumi up` (pure rendering). VRRPv2 adverts carry auth_pass and
// keepalived drops an advert whose password differs from its own, so while one node runs the new password and
// another the old one, each backup hears no master and takes the VIP too: two holders, clients follow the last
// gratuitous ARP. No order of reloads avoids that, so for the few seconds of the change only the VIP holder runs:
//   1. quiesce (every node, before any node's new file): a node whose running file has another auth_pass stops its
//      keepalived unless it holds the VIP (a stopped backup claims nothing; the holder keeps the VIP alone);
//   2. apply (every node, once its new file is written): the holder reloads on the new password;
//   3. resume (every node, once every holder reloaded): the stopped backups start, on the new password, and hear
//      the holder at once (both start as BACKUP with nopreempt, so none takes the VIP over).
// Nothing happens when the password is unchanged (an up without rotation, a first deploy, a new node). VRRPv3
// has no authentication and hastack writes no auth_pass with it: a change there renders the same file.
import { shq } from "../common/shell";

export interface AuthRotationParams {
  /** The keepalived unit of this VIP. */
  readonly unit: string;
  /** The keepalived config file of this VIP (holds auth_pass). */
  readonly confPath: string;
  readonly vip: string;
  /** Where this node keeps what step 1 did; default authRotationMarker(unit). */
  readonly marker?: string;
}

/** Where a node remembers what the quiesce step did (holder or stopped) until resume; /run: a reboot starts keepalived anyway. */
export const authRotationMarker = (unit: string) => `/run/hastack-${unit.replace(/[^A-Za-z0-9_.@-]/g, "_")}.auth-rotation`;

/** Step 1; stdin: the new auth_pass as written in the file (a secret, compared here, never printed). */
export function authQuiesceScript(p: AuthRotationParams): string {
  const marker = shq(p.marker ?? authRotationMarker(p.unit));
  return [
    "new=$(cat)",
    `if [ ! -s ${shq(p.confPath)} ]; then echo 'no keepalived config yet'; exit 0; fi`,
    `cur=$(sed -n 's/^[[:space:]]*auth_pass[[:space:]]*//p' ${shq(p.confPath)} | head -n 1 | tr -d '"')`,
    "[ \"$cur\" != \"$new\" ] || exit 0",
    `if ! systemctl is-active --quiet ${p.unit}; then echo 'keepalived is not running here'; exit 0; fi`,
    `if ip -o -4 addr show | grep -qF ${shq(` ${p.vip}/`)}; then`,
    `  echo holder > ${marker}; echo 'auth_pass changes: this node holds the VIP and reloads first'`,
    "else",
    // the marker first: a stop that fails halfway must still be undone by resume
    `  echo stopped > ${marker}; systemctl stop ${p.unit}; echo 'auth_pass changes: keepalived stopped until the VIP holder runs the new one'`,
    "fi",
  ].join("\n");
}

/** Step 2: the holder reloads on its new file. */
export function authApplyScript(p: AuthRotationParams): string {
  const marker = shq(p.marker ?? authRotationMarker(p.unit));
  return [
    `if [ "$(cat ${marker} 2>/dev/null)" != holder ]; then exit 0; fi`,
    `systemctl reload ${p.unit}`,
    // keepalived reloads on SIGHUP asynchronously: give it a moment before the backups start
    "sleep 1",
    `rm -f ${marker}`,
    "echo 'reloaded with the new auth_pass'",
  ].join("\n");
}

/** Step 3: a backup stopped by step 1 starts again. */
export function authResumeScript(p: AuthRotationParams): string {
  const marker = shq(p.marker ?? authRotationMarker(p.unit));
  return [
    `if [ "$(cat ${marker} 2>/dev/null)" != stopped ]; then rm -f ${marker}; exit 0; fi`,
    `systemctl start ${p.unit}`,
    // the reload step after this one sends SIGHUP: not before keepalived has set up its signal handling
    "sleep 2",
    `rm -f ${marker}`,
    "echo 'started with the new auth_pass'",
  ].join("\n");
}
