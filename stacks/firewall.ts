import { HostSpec, invalid } from "../components/common";
import { FirewallTable, ResolvedFirewallSettings } from "../components/firewall";
import { ResolvedPatroniClusterSettings } from "../components/patroniCluster";
import { ResolvedPgBouncerVipPairSettings } from "../components/pgBouncerVipPair";
import { ResolvedWorksPadNodeSettings } from "../components/worksPadNode";
import { ResolvedNginxBalancerSettings } from "../components/nginxBalancer";
import { ResolvedRedisSentinelGroupSettings } from "../components/redisSentinelGroup";
import { ResolvedPgBackRestSettings } from "../components/pgBackRest/args";

/** What the firewall plan reads: the resolved sections of one datacenter. */
export interface FirewallPlanInput {
  readonly postgres: ResolvedPatroniClusterSettings;
  readonly proxy: ResolvedPgBouncerVipPairSettings;
  /** Absent in a site that runs only the database layers (hastack:site without hastack:workspad). */
  readonly workspad?: ResolvedWorksPadNodeSettings;
  readonly nginx?: ResolvedNginxBalancerSettings;
  readonly redis?: ResolvedRedisSentinelGroupSettings;
  /** The named groups of the list form of hastack:redis: a table each, guarding only its own ports. */
  readonly redisGroups?: readonly ResolvedRedisSentinelGroupSettings[];
  readonly firewall: ResolvedFirewallSettings;
  /** The SSH port: never filtered, so no managed port may equal it. */
  readonly sshPort: number;
  /** PostgreSQL members of another site (standby cluster) that stream from, or rewind against, this one. */
  readonly remoteMembers?: readonly string[];
  /** `hastack:backup`: pgBackRest's TLS port, open only between the database hosts and the repository host. */
  readonly backup?: ResolvedPgBackRestSettings;
}

/** One table on one host; `layer` is the component's name part (`db`, `proxy`, …). */
export interface PlannedTable {
  readonly layer: string;
  readonly host: HostSpec;
  readonly table: FirewallTable;
}

const addrs = (hosts: readonly HostSpec[]): string[] => hosts.map((h) => h.address);

/**
 * Who may reach which port, per component: each component's own table, so a host that serves
 * several components gets several tables. Pure; empty when the firewall is disabled.
 */
export function firewallPlan(i: FirewallPlanInput): PlannedTable[] {
  if (!i.firewall.enabled) return [];
  const admin = i.firewall.adminSources;
  const { postgres: pg, proxy, workspad, nginx, redis } = i;
  const members = addrs(pg.nodes), proxies = addrs(proxy.nodes), apps = addrs(workspad?.nodes ?? []), edges = addrs(nginx?.nodes ?? []);
  const layers: { layer: string; section: string; nodes: readonly HostSpec[]; table: FirewallTable }[] = [
    { layer: "db", section: "hastack:postgres", nodes: pg.nodes, table: { name: "db", guards: [
      { name: "postgres", ports: [pg.pgPort, pg.restApiPort], sources: [...members, ...proxies, ...(i.remoteMembers ?? []), ...admin] },
      // the DCS holds the leader key: members only
      { name: "etcd", ports: [pg.etcdClientPort, pg.etcdPeerPort], sources: members },
      // backups are taken from the repository host through each member's pgbackrest server
      ...(i.backup ? [{ name: "pgbackrest", ports: [i.backup.tlsPort], sources: [i.backup.repoHost.address] }] : []),
    ] } },
    // the repository host's server: archive-push/archive-get from the members only
    ...(i.backup ? [{ layer: "backup", section: "hastack:backup", nodes: [i.backup.repoHost], table: { name: "backup", guards: [
      { name: "pgbackrest", ports: [i.backup.tlsPort], sources: members },
    ] } }] : []),
    // the other proxies too: each checks a login through the VIP, wherever it is held
    { layer: "proxy", section: "hastack:proxy", nodes: proxy.nodes, table: { name: "proxy", vrrpPeers: proxies, guards: [
      { name: "pgbouncer", ports: [proxy.port], sources: [...apps, ...proxies, ...admin] },
    ] } },
    ...(workspad ? [{ layer: "app", section: "hastack:workspad", nodes: workspad.nodes, table: { name: "app", guards: [
      { name: "workspad", ports: [workspad.port], sources: [...edges, ...admin] },
    ] } }] : []),
    // the balancer is the public edge: its listen ports stay open; only its VRRP is guarded
    ...(nginx?.vip ? [{ layer: "edge", section: "hastack:nginx", nodes: nginx.nodes, table: { name: "edge", vrrpPeers: edges, guards: [] } }] : []),
    ...(redis ? [{ layer: "cache", section: "hastack:redis", nodes: redis.nodes, table: {
      name: "cache", ...(redis.vip ? { vrrpPeers: addrs(redis.nodes) } : {}), guards: [
        { name: "redis", ports: [redis.port, redis.sentinelPort, redis.haproxyPort], sources: [...addrs(redis.nodes), ...apps, ...admin] },
      ] } }] : []),
    ...redisGroupLayers(i.redisGroups ?? [], [...apps, ...admin]),
  ];
  for (const l of layers) {
    for (const g of l.table.guards) {
      if (g.ports.includes(i.sshPort)) invalid(`${l.section} ports`, g.ports, `ports other than hastack:ssh.port (${i.sshPort}): SSH is never filtered`);
    }
  }
  return layers.flatMap((l) => l.nodes.map((host) => ({ layer: l.layer, host, table: l.table })));
}

/**
 * A table per named Redis group (list form of hastack:redis), guarding only that group's ports: its own nodes and
 * `clients` may reach them. A table drops VRRP from every address outside its set and groups may share hosts, so
 * each group's table admits the VRRP of every group's nodes (virtual_router_ids differ: keepalived ignores the others').
 */
export function redisGroupLayers(groups: readonly ResolvedRedisSentinelGroupSettings[], clients: readonly string[]) {
  const vrrpPeers = [...new Set(groups.filter((g) => g.vip).flatMap((g) => addrs(g.nodes)))];
  return groups.map((g, k) => ({ layer: `cache-${g.group}`, section: `hastack:redis[${k}]`, nodes: g.nodes, table: {
    name: `cache_${g.group!.replace(/-/g, "_")}`, ...(g.vip ? { vrrpPeers } : {}), guards: [
      { name: "redis", ports: [g.port, g.sentinelPort, g.haproxyPort], sources: [...addrs(g.nodes), ...clients] },
    ] } as FirewallTable }));
}
