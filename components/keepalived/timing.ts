import { Rule } from "../common/validate";

/**
 * How fast a VRRP pair notices a dead master: the protocol version and the advertisement interval.
 * The backup declares the master dead after 3 × advert_int plus a skew of (256 − priority)/256 ×
 * advert_int (RFC 5798 §6.1), then takes the VIP and sends gratuitous ARPs.
 */
export interface VrrpTiming {
  /**
   * 3 (RFC 5798) allows sub-second adverts but has no authentication; 2 (RFC 3768) needs whole seconds
   * and carries keepalived's clear-text `auth_pass`. Both members of a pair must run the same version.
   */
  readonly vrrpVersion: 2 | 3;
  /** Seconds between adverts of the master: centisecond steps with VRRPv3, whole seconds with VRRPv2. */
  readonly advertIntervalSeconds: number;
}

/**
 * 0.3 s adverts: the backup takes over about 1 s after the master's VM dies (3 × 0.3 s + skew), which is
 * what the 2 s (PgBouncer) and 3 s (nginx) client gaps need with room for the client's own retry. Shorter
 * intervals gain little more and turn a 0.6 s scheduling stall of keepalived on a loaded host into a
 * false takeover (both nodes MASTER until the next advert).
 */
export const VRRP_TIMING_DEFAULTS: VrrpTiming = { vrrpVersion: 3, advertIntervalSeconds: 0.3 };

/** The timing every pair had before the setting existed (VRRPv2, 1 s adverts: takeover after about 3.2–3.6 s). */
export const VRRP_V2_TIMING: VrrpTiming = { vrrpVersion: 2, advertIntervalSeconds: 1 };

/** What keepalived 2.2 accepts and what we allow. */
export const ADVERT_LIMITS = {
  /** Below 0.1 s a stall of a few hundred ms on a busy host already looks like a dead master. */
  v3Min: 0.1,
  /** VRRPv3 carries the interval in 12 bits of centiseconds: 40.95 s at most. */
  v3Max: 40.95,
  /** VRRPv2 carries whole seconds in 8 bits. */
  v2Min: 1,
  v2Max: 255,
} as const;

const isCentiseconds = (x: number) => Math.abs(x * 100 - Math.round(x * 100)) < 1e-6;

/** Validation rules for `<key>.vrrpVersion` and `<key>.advertIntervalSeconds` (values after defaults). */
export function vrrpTimingRules(key: string, version: unknown, advert: unknown): Rule[] {
  const a = advert as number;
  const num = typeof advert === "number" && Number.isFinite(advert);
  return [
    { field: `${key}.vrrpVersion`, given: version, ok: version === 2 || version === 3, accepted: "2 or 3 (VRRP protocol version)" },
    {
      field: `${key}.advertIntervalSeconds`, given: advert,
      ok: () => version === 3
        ? num && a >= ADVERT_LIMITS.v3Min && a <= ADVERT_LIMITS.v3Max && isCentiseconds(a)
        : num && Number.isInteger(a) && a >= ADVERT_LIMITS.v2Min && a <= ADVERT_LIMITS.v2Max,
      accepted: () => version === 3
        ? `seconds ${ADVERT_LIMITS.v3Min}..${ADVERT_LIMITS.v3Max} in steps of 0.01 (VRRPv3 counts centiseconds)`
        : `whole seconds ${ADVERT_LIMITS.v2Min}..${ADVERT_LIMITS.v2Max} with vrrpVersion 2 (sub-second adverts need vrrpVersion 3)`,
    },
  ];
}

/** advert_int as keepalived reads it: at most two decimals, no float noise (0.3, not 0.30000000000000004). */
export function formatAdvertInterval(seconds: number): string {
  return String(Math.round(seconds * 100) / 100);
}

/** Seconds after the master's last advert until a backup of `priority` takes over (RFC 5798 §6.1). */
export function masterDownSeconds(t: VrrpTiming, priority: number): number {
  return 3 * t.advertIntervalSeconds + ((256 - priority) / 256) * t.advertIntervalSeconds;
}

/**
 * The vrrp_instance lines for the timing and, with VRRPv2 only, the authentication block. VRRPv3 has no
 * authentication field: keepalived refuses an `authentication` block with it, so none is written.
 */
export function renderVrrpTimingLines(t: VrrpTiming, authPass: string, quote: boolean): string[] {
  return [
    `    version ${t.vrrpVersion}`,
    `    advert_int ${formatAdvertInterval(t.advertIntervalSeconds)}`,
    ...(t.vrrpVersion === 2
      ? ["    authentication {", "        auth_type PASS", `        auth_pass ${quote ? `"${authPass}"` : authPass}`, "    }"]
      : []),
  ];
}
