// `hastack:policy`: whether a stack is production, and the explicit waivers of the policy pack
// (policy/index.ts). Read by the program and handed to the pack through the PolicyFacts marker
// (policy/facts.ts), because a policy pack sees resources, never the stack's config.
import { invalid } from "../components/common/validate";

/** The policies a stack may waive, each with the reason shown in every preview. */
export const WAIVABLE = ["synchronousModeOff", "unpinnedHostKeys", "unprotectedDataVms"] as const;
export type Waivable = (typeof WAIVABLE)[number];

/** Stack config `hastack:policy` (optional). */
export interface PolicySettings {
  /** A production stack: `synchronous_mode` off and unpinned SSH host keys are refused unless waived. @default false */
  readonly production?: boolean;
  /**
   * Explicit waivers, each a reason (at least 10 characters, e.g. a ticket and why): synchronousModeOff,
   * unpinnedHostKeys, unprotectedDataVms. @default {}
   */
  readonly waivers?: Partial<Record<Waivable, string>>;
}

export interface ResolvedPolicySettings {
  readonly production: boolean;
  readonly waivers: Partial<Record<Waivable, string>>;
}

const K = "hastack:policy";

/** Validate `hastack:policy`; absent or {} = a non-production stack without waivers. */
export function resolvePolicySettings(raw: unknown): ResolvedPolicySettings {
  if (raw === undefined) return { production: false, waivers: {} };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) invalid(K, raw, "an object {production, waivers}");
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) if (k !== "production" && k !== "waivers") invalid(`${K}.${k}`, r[k], "no such key; known keys are production, waivers");
  const production = r.production ?? false;
  if (typeof production !== "boolean") invalid(`${K}.production`, production, "true or false");
  const waivers = r.waivers ?? {};
  if (typeof waivers !== "object" || waivers === null || Array.isArray(waivers)) invalid(`${K}.waivers`, waivers, `an object whose keys are among ${WAIVABLE.join(", ")}`);
  for (const [k, v] of Object.entries(waivers)) {
    if (!(WAIVABLE as readonly string[]).includes(k)) invalid(`${K}.waivers.${k}`, v, `no such waiver; known waivers are ${WAIVABLE.join(", ")}`);
    // a waiver is read in every preview by the reviewer: an empty or token reason waives nothing anyone can judge
    if (typeof v !== "string" || v.trim().length < 10) invalid(`${K}.waivers.${k}`, v, "a reason of at least 10 characters (why, and until when or which ticket)");
  }
  return { production, waivers: waivers as Partial<Record<Waivable, string>> };
}
