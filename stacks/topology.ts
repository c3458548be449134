import { invalid } from "../components/common";
import { CHECK_USER } from "../components/pgBouncerVipPair/render";
import { checkSuppliedCertificates, checkSuppliedPasswords } from "./secretRules";

/** What one section of the stack config puts on its hosts. */
export interface SectionUse {
  /** Config key, e.g. "hastack:proxy". */
  readonly section: string;
  readonly nodes: readonly { name: string; address: string }[];
  /** TCP ports the section listens on, by setting name. */
  readonly ports: readonly { setting: string; port: number }[];
  /** Config files the section owns outright on each of its hosts (two owners would overwrite each other). */
  readonly files: readonly string[];
}

/**
 * Checks across sections, before any resource exists: one address per host name and one name per
 * address, no two sections listening on the same port of one host, no two sections owning one file.
 */
export function checkTopology(uses: readonly SectionUse[]): void {
  const nameOf = new Map<string, { name: string; where: string }>();
  const addrOf = new Map<string, { address: string; where: string }>();
  const portOf = new Map<string, string>();
  const fileOf = new Map<string, string>();
  for (const u of uses) {
    u.nodes.forEach((n, i) => {
      const where = `${u.section}.nodes[${i}]`;
      const a = addrOf.get(n.name);
      if (a && a.address !== n.address) {
        invalid(`${where}.address`, n.address, `${a.address}, the address ${a.where} gives host "${n.name}" (one host, one address)`);
      }
      const m = nameOf.get(n.address);
      if (m && m.name !== n.name) {
        invalid(`${where}.address`, n.address, `an address not already used by host "${m.name}" (${m.where}); duplicate addresses are not allowed`);
      }
      addrOf.set(n.name, { address: n.address, where });
      nameOf.set(n.address, { name: n.name, where });
      for (const p of u.ports) {
        const key = `${n.address}:${p.port}`;
        const other = portOf.get(key);
        if (other && other !== `${u.section}.${p.setting}`) {
          invalid(`${u.section}.${p.setting}`, p.port, `a port not already used on ${n.address} by ${other}`);
        }
        portOf.set(key, `${u.section}.${p.setting}`);
      }
      for (const f of u.files) {
        const key = `${n.address}:${f}`;
        const other = fileOf.get(key);
        if (other && other !== u.section) {
          invalid(`${where}`, n, `a host that ${other} does not also use: both would own ${f}`);
        }
        fileOf.set(key, u.section);
      }
    });
  }
}

/** Addresses found in a raw (unvalidated) section, for VIP checks that run before the section itself. */
export function rawAddresses(raw: unknown): string[] {
  const nodes = (raw as { nodes?: unknown } | undefined)?.nodes;
  return Array.isArray(nodes) ? nodes.map((n) => (n as { address?: unknown })?.address).filter((a): a is string => typeof a === "string") : [];
}

/** One keepalived VRRP instance a section runs (only sections with a VIP). */
export interface VrrpUse {
  /** Config key, e.g. "hastack:proxy". */
  readonly section: string;
  readonly vip: string;
  readonly virtualRouterId: number;
  readonly interface: string;
}

/**
 * VIPs and VRRP ids across sections. Every VIP lies in the one stack subnet, so every VRRP instance
 * of the stack advertises on the same L2 segment whatever the interface is called on each host: two
 * instances with one virtual_router_id fight over one virtual MAC (00:00:5e:00:01:<id>) and
 * each drops the other's adverts as invalid, so ids must differ across sections, not only per
 * interface. The same VIP in two sections would be held by two nodes at once.
 */
export function checkVrrp(uses: readonly VrrpUse[]): void {
  uses.forEach((u, i) => {
    const earlier = uses.slice(0, i);
    const sameVip = earlier.find((o) => o.vip === u.vip);
    if (sameVip) invalid(`${u.section}.vip`, u.vip, `an address other than ${sameVip.section}.vip (one VIP, one owner)`);
    const sameId = earlier.find((o) => o.virtualRouterId === u.virtualRouterId);
    if (sameId) {
      invalid(`${u.section}.virtualRouterId`, u.virtualRouterId,
        `an id other than ${sameId.section}.virtualRouterId (${sameId.virtualRouterId}): both VIPs share the stack subnet's L2 segment`);
    }
  });
}

/**
 * PostgreSQL keeps superuser_reserved_connections (3 by default) of max_connections for superusers
 * (Patroni's own sessions use them); everything else is for ordinary roles.
 */
export const SUPERUSER_RESERVED_CONNECTIONS = 3;

/**
 * PgBouncer opens up to default_pool_size server connections per (database, user) pair. The stack
 * has one pair (the application database and role; the check user only reaches PgBouncer's admin
 * console), and every proxy node may hold a full pool at once (the old VIP holder keeps its pool
 * until its clients go), so all proxies' pools must fit in PostgreSQL's non-reserved connections;
 * otherwise logins fail with "too many clients" under load, long before max_client_conn.
 */
export function checkPoolSizes(p: { proxyNodes: number; defaultPoolSize: number; maxConnections: number; databaseUserPairs?: number }): void {
  const pairs = p.databaseUserPairs ?? 1;
  const room = p.maxConnections - SUPERUSER_RESERVED_CONNECTIONS;
  const most = Math.floor(room / (p.proxyNodes * pairs));
  if (p.proxyNodes * pairs * p.defaultPoolSize > room) {
    invalid("hastack:proxy.defaultPoolSize", p.defaultPoolSize,
      `at most ${most}: ${p.proxyNodes} proxy node(s) × ${pairs} database/user pair(s) × defaultPoolSize must fit in ` +
      `hastack:postgres.maxConnections (${p.maxConnections}) minus ${SUPERUSER_RESERVED_CONNECTIONS} superuser-reserved connections; ` +
      `or raise hastack:postgres.maxConnections`);
  }
}

/** Names PgBouncerVipPair creates on its own: the application role must not be one of them. */
export function checkAppRole(appUser: string, pgbouncerCheckUser: string): void {
  if (appUser === pgbouncerCheckUser) {
    invalid("hastack:postgres.appUser", appUser, `a role other than "${pgbouncerCheckUser}", the stats-only user PgBouncer's VIP check logs in as`);
  }
}

interface VrrpSection { readonly vip?: string; readonly virtualRouterId: number; readonly interface: string }

/**
 * Every check that needs more than one section, or the secrets, after each section resolved on its
 * own: VIPs and VRRP ids, PgBouncer pools against max_connections, the application role against the
 * roles PgBouncer uses, and the supplied passwords and certificates.
 */
export function checkAcrossSections(r: {
  readonly postgres: { readonly maxConnections: number; readonly appUser: string };
  readonly proxy: VrrpSection & { readonly vip: string; readonly nodes: readonly unknown[]; readonly defaultPoolSize: number };
  readonly nginx?: VrrpSection & { readonly nodes: readonly { name: string }[] };
  readonly redis?: VrrpSection;
  /** The list form's groups, each its own VRRP instance (section `hastack:redis[i]`). */
  readonly redisGroups?: readonly VrrpSection[];
  readonly workspad?: { readonly nodes: readonly { name: string }[] };
  /** pgBackRest's hosts (hastack:backup): each may be given a certificate as servers.<name>-pgbackrest. */
  readonly pgBackRestHosts?: readonly { name: string }[];
}, secrets: { readonly passwords?: unknown; readonly certificates?: unknown }): void {
  const vrrp = ([["hastack:proxy", r.proxy], ["hastack:nginx", r.nginx], ["hastack:redis", r.redis],
    ...(r.redisGroups ?? []).map((g, i) => [`hastack:redis[${i}]`, g] as const)] as const)
    .filter(([, x]) => x?.vip !== undefined)
    .map(([section, x]) => ({ section, vip: x!.vip!, virtualRouterId: x!.virtualRouterId, interface: x!.interface }));
  checkVrrp(vrrp);
  checkPoolSizes({ proxyNodes: r.proxy.nodes.length, defaultPoolSize: r.proxy.defaultPoolSize, maxConnections: r.postgres.maxConnections });
  checkAppRole(r.postgres.appUser, CHECK_USER);
  checkSuppliedPasswords(secrets.passwords);
  checkSuppliedCertificates(secrets.certificates, [...[...(r.workspad?.nodes ?? []), ...(r.nginx?.nodes ?? [])].map((n) => n.name),
    ...(r.pgBackRestHosts ?? []).map((n) => `${n.name}-pgbackrest`)]);
}
