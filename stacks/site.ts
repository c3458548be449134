// `hastack:site`: which datacenter this stack is, which other stacks it is joined to, and which
// site leads the PostgreSQL data. Absent = the single-datacenter stack (no peers, always primary).
import { checkRules, invalid, isCidr, isHostName } from "../components/common";

/** Stack config `hastack:site` (optional). */
export interface SiteSettings {
  /** This site's name; peers list it by the name of its stack, so use the stack name (e.g. "dc1"). */
  readonly name: string;
  /** Stack names of the other sites (read through `organization/<project>/<peer>` StackReferences). @default [] */
  readonly peers?: string[];
  /** The site whose cluster leads the PostgreSQL data (this site or one of `peers`); every other site runs a standby cluster. */
  readonly primarySite: string;
  /** Role epoch: raised by one with every change of `primarySite`; all sites must agree on it. */
  readonly epoch: number;
  /**
   * Subnets of the other sites (CIDR). pg_hba admits replication and logins from them. Needed from
   * the start: a primary site must admit a standby site before that site's first deploy, when its
   * contract does not exist yet. Each peer's exported subnet must lie inside one of them. @default []
   */
  readonly remoteSubnets?: string[];
}

export interface ResolvedSite {
  readonly name: string;
  readonly peers: string[];
  readonly primarySite: string;
  readonly epoch: number;
  readonly remoteSubnets: string[];
  readonly role: "primary" | "standby";
}

const K = "hastack:site";
const KNOWN = new Set(["name", "peers", "primarySite", "epoch", "remoteSubnets"]);

/** Validate `hastack:site`; undefined when the section is absent (one datacenter, as before). */
export function resolveSiteSettings(raw: unknown): ResolvedSite | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) invalid(K, raw, "an object {name, peers, primarySite, epoch, remoteSubnets}");
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!KNOWN.has(k)) invalid(`${K}.${k}`, r[k], `no such key; known keys are ${[...KNOWN].join(", ")}`);
  const peers = r.peers ?? [];
  const remoteSubnets = r.remoteSubnets ?? [];
  checkRules([
    { field: `${K}.name`, given: r.name, ok: isHostName(r.name), accepted: "a lower-case name of letters, digits and '-', starting with a letter (the stack name)" },
    { field: `${K}.peers`, given: peers, ok: Array.isArray(peers) && peers.every(isHostName), accepted: "a list of stack names (lower-case letters, digits, '-')" },
    { field: `${K}.epoch`, given: r.epoch, ok: typeof r.epoch === "number" && Number.isInteger(r.epoch) && r.epoch >= 1, accepted: "a whole number ≥ 1, raised with every change of primarySite" },
    { field: `${K}.remoteSubnets`, given: remoteSubnets, ok: Array.isArray(remoteSubnets) && remoteSubnets.every(isCidr), accepted: "a list of IPv4 subnets in CIDR form" },
  ]);
  const p = peers as string[];
  checkRules([
    { field: `${K}.peers`, given: p, ok: !p.includes(r.name as string), accepted: `stack names other than this site's own name "${r.name}" (a site cannot be its own peer)` },
    { field: `${K}.peers`, given: p, ok: new Set(p).size === p.length, accepted: "each peer listed once" },
    { field: `${K}.primarySite`, given: r.primarySite, ok: r.primarySite === r.name || p.includes(r.primarySite as string),
      accepted: `this site's name or one of its peers (${[r.name, ...p].map((x) => JSON.stringify(x)).join(", ")})` },
  ]);
  const name = r.name as string, primarySite = r.primarySite as string;
  return { name, peers: p, primarySite, epoch: r.epoch as number, remoteSubnets: remoteSubnets as string[], role: primarySite === name ? "primary" : "standby" };
}

/** Permanent physical slot a primary keeps for one standby site (slot names allow [a-z0-9_]). */
export function standbySlotName(site: string): string {
  return `standby_${site.replace(/-/g, "_")}`;
}
