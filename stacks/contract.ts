// The contract between datacenter stacks: what one site exports and what its peers read through a
// StackReference. One interface for the producer and every consumer; stacks meet only here.
import * as pulumi from "@pulumi/pulumi";
import { inSubnet, invalid, isCidr, isHostName, isIPv4, isPort } from "../components/common";
import { ResolvedSite } from "./site";

export type SiteRole = "primary" | "standby";

/** One PostgreSQL member of a site. */
export interface SiteMember {
  readonly name: string;
  readonly address: string;
  readonly pgPort: number;
  readonly restApiPort: number;
}

/** How consumers find the leader: never a deploy-time address, which is wrong after the next failover. */
export const LEADER_RULE = "GET /primary on each member's Patroni REST API: 200 = the read-write leader (in a standby site: GET /standby-leader)";

/** Stack output `site` (plain, shown in previews): what a datacenter tells its peers. */
export interface SiteContract {
  /** Contract format, raised on incompatible changes. */
  readonly version: 1;
  /** Site name (equal to its stack name). */
  readonly site: string;
  /** "primary" when this site's cluster leads the data, "standby" when it follows another site. */
  readonly role: SiteRole;
  /** The site this stack believes leads, and the role epoch of that belief. */
  readonly primarySite: string;
  readonly epoch: number;
  /** The site's subnet (CIDR). */
  readonly subnet: string;
  readonly postgres: {
    readonly clusterName: string;
    readonly members: SiteMember[];
    readonly leaderRule: string;
    readonly replicationUser: string;
  };
  /** CA that signed the site's server certificates. */
  readonly caCertPem: string;
  readonly vips: {
    readonly db: { readonly address: string; readonly port: number };
    readonly redis?: { readonly address: string; readonly port: number };
  };
}

/**
 * Stack output `siteSecrets` (secret). A standby cluster is a byte copy of the primary's database, so
 * every role password Patroni and PgBouncer use there is the primary's: replication, superuser, rewind, app.
 */
export interface SiteSecrets {
  readonly replicationPassword: string;
  readonly superuserPassword: string;
  readonly rewindPassword: string;
  readonly appPassword: string;
}

/** Producer: the two outputs a datacenter stack exports. */
export function siteOutputs(contract: pulumi.Input<SiteContract>, secrets: pulumi.Input<SiteSecrets>) {
  return { site: pulumi.output(contract), siteSecrets: pulumi.secret(secrets) };
}

const obj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Check a peer's `site` output; errors name the peer stack and the field. */
export function parseContract(ref: string, v: unknown): SiteContract {
  const f = (p: string) => `${ref} output site${p}`;
  if (!obj(v)) invalid(f(""), v, "an object as exported by a hastack datacenter stack (stacks/contract.ts)");
  if (v.version !== 1) invalid(f(".version"), v.version, "1 (this program's contract version)");
  if (!isHostName(v.site)) invalid(f(".site"), v.site, "a site name");
  if (v.role !== "primary" && v.role !== "standby") invalid(f(".role"), v.role, `"primary" or "standby"`);
  if (!isHostName(v.primarySite)) invalid(f(".primarySite"), v.primarySite, "a site name");
  if (typeof v.epoch !== "number" || !Number.isInteger(v.epoch) || v.epoch < 0) invalid(f(".epoch"), v.epoch, "a whole number ≥ 0");
  if (!isCidr(v.subnet)) invalid(f(".subnet"), v.subnet, "a CIDR subnet");
  const pg = v.postgres;
  if (!obj(pg)) invalid(f(".postgres"), pg, "an object {clusterName, members, leaderRule, replicationUser}");
  if (typeof pg.clusterName !== "string" || pg.clusterName === "") invalid(f(".postgres.clusterName"), pg.clusterName, "a cluster name");
  if (typeof pg.replicationUser !== "string" || pg.replicationUser === "") invalid(f(".postgres.replicationUser"), pg.replicationUser, "a role name");
  if (!Array.isArray(pg.members) || pg.members.length === 0) invalid(f(".postgres.members"), pg.members, "a non-empty list of {name, address, pgPort, restApiPort}");
  (pg.members as unknown[]).forEach((m, i) => {
    const mf = (p: string) => f(`.postgres.members[${i}]${p}`);
    if (!obj(m)) invalid(mf(""), m, "an object {name, address, pgPort, restApiPort}");
    if (!isHostName(m.name)) invalid(mf(".name"), m.name, "a member name");
    if (!isIPv4(m.address)) invalid(mf(".address"), m.address, "an IPv4 address");
    if (!isPort(m.pgPort)) invalid(mf(".pgPort"), m.pgPort, "a TCP port");
    if (!isPort(m.restApiPort)) invalid(mf(".restApiPort"), m.restApiPort, "a TCP port");
  });
  if (typeof v.caCertPem !== "string") invalid(f(".caCertPem"), "(not a string)", "a PEM certificate");
  const vips = v.vips;
  if (!obj(vips) || !obj(vips.db) || !isIPv4(vips.db.address) || !isPort(vips.db.port)) invalid(f(".vips.db"), obj(vips) ? vips.db : vips, "{address, port} of the site's database VIP");
  return v as unknown as SiteContract;
}

export function parseSecrets(ref: string, v: unknown): SiteSecrets {
  const keys: (keyof SiteSecrets)[] = ["replicationPassword", "superuserPassword", "rewindPassword", "appPassword"];
  if (!obj(v)) invalid(`${ref} output siteSecrets`, "(not an object)", `an object {${keys.join(", ")}}`);
  for (const k of keys) if (typeof v[k] !== "string" || v[k] === "") invalid(`${ref} output siteSecrets.${k}`, "[secret]", "a non-empty password");
  return v as unknown as SiteSecrets;
}

/** What the peers' contracts decided for this site: for a standby, whom it follows. */
export interface CheckedPeers {
  /** The primary site's contract, when this site is a standby. */
  readonly primary?: SiteContract;
  /** Every deployed peer's contract (a primary checks them before it takes the lead; HAProxy falls back to their members). */
  readonly others?: SiteContract[];
}

/** The database role passwords, named as in `hastack:passwords`, with the contract field that carries each. */
export const SHARED_DB_PASSWORDS = [
  ["postgresSuperuser", "superuserPassword"], ["postgresReplication", "replicationPassword"],
  ["postgresRewind", "rewindPassword"], ["postgresApp", "appPassword"],
] as const;

/**
 * Sites share one database and so its roles: every site's stack sets the same four role passwords (a site
 * that takes the lead keeps using them). Compared with each deployed peer's `siteSecrets`; errors never show a value.
 */
export function checkSharedPasswords(own: Partial<Record<string, string>>, peer: string, theirs: SiteSecrets): void {
  for (const [key, field] of SHARED_DB_PASSWORDS) {
    if (own[key] !== theirs[field]) {
      invalid(`hastack:passwords.${key}`, "[secret]", `the same value as peer ${peer} (its siteSecrets.${field} differs): the sites share one database, so every site's stack sets the same role passwords`);
    }
  }
}

/**
 * Consumer: read every peer's contract (`organization/<project>/<stack>`, as the file backend names
 * stacks) and check it against this site, before any resource of the datacenter exists. Awaited by
 * the program, so a disagreeing or malformed peer ends the preview with its error (an error thrown
 * inside an apply would leave the engine waiting). A peer stack that exists but was never deployed
 * has no outputs: normal for a primary site's first deploy; checkPeers decides when it is an error.
 */
export async function readPeers(self: SelfView, opts?: pulumi.CustomResourceOptions): Promise<CheckedPeers> {
  const read = await Promise.all(self.site.peers.map(async (stack) => {
    const ref = `organization/${pulumi.getProject()}/${stack}`;
    const sr = new pulumi.StackReference(`peer-${stack}`, { name: ref }, opts);
    const d = await sr.getOutputDetails("site");
    const v = d.value ?? d.secretValue;
    return { stack, ref, sr, contract: v === undefined ? undefined : parseContract(ref, v) };
  }));
  const primary = checkPeers(self, read);
  for (const p of read.filter((x) => x.contract)) {
    const d = await p.sr.getOutputDetails("siteSecrets");
    checkSharedPasswords(self.dbPasswords ?? {}, p.stack, parseSecrets(p.ref, d.secretValue ?? d.value));
  }
  return { primary, others: read.flatMap((x) => (x.contract ? [x.contract] : [])) };
}

/** What checkPeers needs to know about this site. */
export interface SelfView {
  readonly site: ResolvedSite;
  readonly members: readonly { name: string; address: string }[];
  /** This stack's `hastack:passwords` (plain values, compared with the peers'; never shown). */
  readonly dbPasswords?: Partial<Record<string, string>>;
}

/**
 * Rules between this site and its peers' contracts (pure; run while the StackReferences resolve, so
 * at preview). Returns the primary site's contract when this site is a standby.
 */
export function checkPeers(self: SelfView, peers: readonly { stack: string; ref: string; contract: SiteContract | undefined }[]): SiteContract | undefined {
  const s = self.site;
  const seenNames = new Map(self.members.map((m) => [m.name, `this site (${s.name})`] as [string, string]));
  const seenAddrs = new Map(self.members.map((m) => [m.address, `this site (${s.name})`] as [string, string]));
  for (const p of peers) {
    const c = p.contract;
    if (!c) {
      if (p.stack === s.primarySite) {
        invalid("hastack:site.primarySite", s.primarySite, `a site whose stack is deployed: ${p.ref} has no "site" output yet (run \`pulumi up\` on ${p.stack} first)`);
      }
      continue; // a standby that was never deployed yet: nothing to agree with
    }
    if (c.site !== p.stack) invalid(`${p.ref} output site.site`, c.site, `"${p.stack}", the stack name hastack:site.peers lists it by`);
    if (c.epoch > s.epoch) {
      invalid("hastack:site.epoch", s.epoch, `at least ${c.epoch}: peer ${p.stack} is at epoch ${c.epoch} with primarySite "${c.primarySite}"` +
        ` (this stack says epoch ${s.epoch}, primarySite "${s.primarySite}")` +
        (c.primarySite === c.site ? `; ${c.site} has taken the primary role, so this site must follow it: set hastack:site.primarySite=${c.site} and epoch=${c.epoch}` : ""));
    }
    if (c.epoch === s.epoch && c.primarySite !== s.primarySite) {
      invalid("hastack:site.primarySite", s.primarySite, `"${c.primarySite}", what peer ${p.stack} says at the same epoch ${c.epoch} (two sites disagree on who leads; raise the epoch on the one that changes)`);
    }
    // a peer at a lower epoch has not applied the latest role change yet: allowed, it is updated next
    if (!s.remoteSubnets.some((r) => inSubnet(c.subnet.split("/")[0], r))) {
      invalid("hastack:site.remoteSubnets", s.remoteSubnets, `a list that includes peer ${p.stack}'s subnet ${c.subnet} (pg_hba must admit it)`);
    }
    c.postgres.members.forEach((m, i) => {
      const n = seenNames.get(m.name);
      if (n) invalid(`${p.ref} output site.postgres.members[${i}].name`, m.name, `a member name not used by ${n} (Patroni member names are application_names and must be unique across sites)`);
      const a = seenAddrs.get(m.address);
      if (a) invalid(`${p.ref} output site.postgres.members[${i}].address`, m.address, `an address not used by ${a}`);
      seenNames.set(m.name, `peer ${p.stack}`);
      seenAddrs.set(m.address, `peer ${p.stack}`);
    });
  }
  if (s.role === "standby") return peers.find((p) => p.stack === s.primarySite)!.contract!;
  return undefined;
}
