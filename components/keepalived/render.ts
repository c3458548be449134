import { sha256 } from "../common/hash";
import { VrrpTiming, renderVrrpTimingLines } from "./timing";

/**
 * One node's view of a keepalived VRRP instance that floats a VIP between nodes (unicast, so no
 * multicast is needed). The one keepalived renderer for VIP owners that share it (nginx, Redis);
 * PgBouncerVipPair still renders its own (its session-reset notify script), to be moved here; both take
 * their VRRP version and advert interval from timing.ts.
 */
export interface VrrpParams {
  /** keepalived instance name (letters, digits, '_'). */
  readonly instance: string;
  readonly interface: string;
  readonly virtualRouterId: number;
  /** Higher wins; both nodes start as BACKUP with nopreempt, so the VIP moves only on failure. */
  readonly priority: number;
  readonly selfAddress: string;
  readonly peers: readonly string[];
  readonly vip: string;
  readonly vipPrefix: number;
  /** Raw shared secret; see vrrpAuthPass. Written only with VRRPv2 (VRRPv3 has no authentication). */
  readonly authPass: string;
  /** VRRP version and advert interval (see timing.ts). */
  readonly timing: VrrpTiming;
  /** Health check command (argv split by keepalived, no shell); a failure puts the node in FAULT and releases the VIP. */
  readonly checkScript: string;
  /** @default 2 */
  readonly checkIntervalSeconds?: number;
  /** How long one run of the check may take before it counts as failed. @default checkIntervalSeconds + 1 */
  readonly checkTimeoutSeconds?: number;
  /** Consecutive failed checks before the node gives up the VIP. @default 2 */
  readonly checkFall?: number;
  /** Consecutive passed checks before the node may hold the VIP again. @default 2 */
  readonly checkRise?: number;
}

/**
 * keepalived uses only the first 8 characters of auth_pass and has no escaping for quotes, so the
 * shared secret is reduced to 8 hex characters of its sha256: every character of it counts and
 * nothing needs quoting. https://keepalived.readthedocs.io/en/latest/configuration_synopsis.html
 */
export function vrrpAuthPass(secret: string): string {
  return sha256("hastack-vrrp", secret).slice(0, 8);
}

/** keepalived.conf for one node (hand template: no library writes keepalived's format). */
export function renderKeepalivedConf(p: VrrpParams): string {
  const interval = p.checkIntervalSeconds ?? 2;
  if (/["\n\\]/.test(p.checkScript)) throw new Error(`check script must not contain quotes, backslashes or newlines: ${p.checkScript}`);
  return [
    "# Managed by hastack; changes are overwritten.",
    "global_defs {",
    `    router_id ${p.instance}_${p.selfAddress.replace(/\./g, "_")}`,
    // scripts run as root on purpose (they read 0600 secrets); say so instead of relying on the fallback warning
    "    enable_script_security",
    "    script_user root",
    "}",
    "",
    `vrrp_script ${p.instance}_check {`,
    `    script "${p.checkScript}"`,
    `    interval ${interval}`,
    `    timeout ${p.checkTimeoutSeconds ?? interval + 1}`,
    `    fall ${p.checkFall ?? 2}`,
    `    rise ${p.checkRise ?? 2}`,
    "}",
    "",
    `vrrp_instance ${p.instance} {`,
    "    state BACKUP",
    "    nopreempt",
    `    interface ${p.interface}`,
    `    virtual_router_id ${p.virtualRouterId}`,
    `    priority ${p.priority}`,
    ...renderVrrpTimingLines(p.timing, vrrpAuthPass(p.authPass), false),
    `    unicast_src_ip ${p.selfAddress}`,
    "    unicast_peer {",
    ...p.peers.map((a) => `        ${a}`),
    "    }",
    "    virtual_ipaddress {",
    `        ${p.vip}/${p.vipPrefix} dev ${p.interface}`,
    "    }",
    "    track_script {",
    `        ${p.instance}_check`,
    "    }",
    "}",
    "",
  ].join("\n");
}

/**
 * Shell that validates a keepalived config at `$NEW`. keepalived 2.2.7 (Debian 12) `-t` SIGTERMs itself (exit 143)
 * whenever a vrrp_script is configured and then ignores the errors it printed, so a config passes only when
 * `-t` exits 0 or 143 and printed nothing. It also exits 0 after printing errors it found (an interface that
 * does not exist, a virtual_router_id out of range): every pair validates with this, never a bare `keepalived -t`.
 */
export function keepalivedValidateCommand(file = '"$NEW"'): string {
  return [
    `out=$(keepalived -t -f ${file} 2>&1) && rc=0 || rc=$?`,
    `if [ -n "$out" ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 143 ]; }; then printf '%s\\n' "$out" >&2; echo "keepalived -t rejected the config (exit $rc)" >&2; exit 1; fi`,
  ].join("\n");
}
