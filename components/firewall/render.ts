// Pure renderers for the host firewall: one nftables table per component and host, loaded by a unit of ours.

/** Traffic to `ports` (TCP) is dropped unless it comes from `sources`. */
export interface PortGuard {
  /** What the ports serve; names the address set (lower-case letters, digits, '_'). */
  readonly name: string;
  readonly ports: readonly number[];
  /** IPv4 addresses or network CIDRs allowed to connect; empty means loopback only. */
  readonly sources: readonly string[];
}

/** One component's table on one host. */
export interface FirewallTable {
  /** Short name (lower-case letters, digits, '_'): table `hastack_<name>`, file and unit named after it. */
  readonly name: string;
  readonly guards: readonly PortGuard[];
  /** For VIP owners: VRRP (IP protocol 112) is dropped unless it comes from these addresses. */
  readonly vrrpPeers?: readonly string[];
}

const NAME = /^[a-z][a-z0-9_]{0,30}$/;
const SOURCE = /^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/;

export const tableName = (name: string): string => `hastack_${name}`;
export const nftPath = (name: string): string => `/etc/hastack/nft/${name}.nft`;
export const unitName = (name: string): string => `hastack-firewall-${name}.service`;
export const unitPath = (name: string): string => `/etc/systemd/system/${unitName(name)}`;
/** The IP protocol number of VRRP (keepalived's adverts). */
export const VRRP_PROTOCOL = 112;

function checkName(what: string, n: string): string {
  if (!NAME.test(n)) throw new Error(`render: ${what} ${JSON.stringify(n)} must be lower-case letters, digits and '_'`);
  return n;
}

function elements(sources: readonly string[]): string[] {
  const list = [...new Set(sources)].sort();
  for (const s of list) if (!SOURCE.test(s)) throw new Error(`render: firewall source ${JSON.stringify(s)} is not an IPv4 address or CIDR`);
  // interval + auto-merge: a host address inside an allowed CIDR (or twice) is not an error
  return ["\t\ttype ipv4_addr", "\t\tflags interval", "\t\tauto-merge", ...(list.length ? [`\t\telements = { ${list.join(", ")} }`] : [])];
}

const portList = (ports: readonly number[]): string => `{ ${[...new Set(ports)].sort((a, b) => a - b).join(", ")} }`;

/**
 * The table file. Loaded with one `nft -f`, it is one transaction: the empty `table` line makes the `delete`
 * always valid, so the old table is swapped for the new one atomically and no other table is touched.
 * The chain's policy is accept and it drops only traffic to its own ports, so tables of several components
 * compose on one host (a drop in any table is final) and SSH is never filtered by us.
 */
export function renderNftTable(t: FirewallTable): string {
  const table = tableName(checkName("table", t.name));
  const guards = t.guards.filter((g) => g.ports.length > 0);
  const sets = [
    ...guards.map((g) => ({ set: `${checkName("guard", g.name)}_src`, sources: g.sources })),
    ...(t.vrrpPeers ? [{ set: "vrrp_src", sources: t.vrrpPeers }] : []),
  ];
  const allPorts = guards.flatMap((g) => g.ports);
  return [
    "#!/usr/sbin/nft -f",
    `# Managed by hastack (firewall ${t.name}); changes are overwritten on the next deploy.`,
    `table inet ${table} {}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    ...sets.flatMap(({ set, sources }) => [`\tset ${set} {`, ...elements(sources), "\t}"]),
    "\tchain input {",
    "\t\ttype filter hook input priority filter; policy accept;",
    // local clients (health checks, psql on the host, a VIP held by this host) arrive on lo
    '\t\tiif "lo" accept',
    // replies to this host's own outgoing connections are never cut, whatever their port
    "\t\tct state established,related accept",
    ...guards.map((g) => `\t\ttcp dport ${portList(g.ports)} ip saddr != @${g.name}_src drop`),
    // allowed sources are IPv4 only, so IPv6 (link-local included) never reaches these ports
    ...(allPorts.length ? [`\t\tmeta nfproto ipv6 tcp dport ${portList(allPorts)} drop`] : []),
    ...(t.vrrpPeers ? [`\t\tip protocol ${VRRP_PROTOCOL} ip saddr != @vrrp_src drop`] : []),
    "\t}",
    "}",
    "",
  ].join("\n");
}

/**
 * Shell: every source of `t` added to the sets of the table as loaded now (`nft add element` keeps what is there and
 * never fails on an address already in), one set at a time and only where the set exists; nothing while the table is
 * not loaded (its unit loads the whole file). It only widens: a table that stops admitting an address (an app node
 * the stack removes) may have to keep it until others stop sending it traffic, while a new address (a node the stack
 * adds) must get in before that node's own steps can pass (HostFirewall's `narrowAfter`).
 */
export function renderAdmitScript(t: FirewallTable): string {
  const table = `inet ${tableName(checkName("table", t.name))}`;
  const sets = [
    ...t.guards.filter((g) => g.ports.length > 0).map((g) => ({ set: `${checkName("guard", g.name)}_src`, sources: g.sources })),
    ...(t.vrrpPeers ? [{ set: "vrrp_src", sources: t.vrrpPeers }] : []),
  ];
  return [
    `nft list table ${table} >/dev/null 2>&1 || { echo 'table not loaded: its unit loads the whole file'; exit 0; }`,
    ...sets.filter((x) => x.sources.length > 0).map(({ set, sources }) => {
      const list = [...new Set(sources)].sort();
      for (const s of list) if (!SOURCE.test(s)) throw new Error(`render: firewall source ${JSON.stringify(s)} is not an IPv4 address or CIDR`);
      return `if nft list set ${table} ${set} >/dev/null 2>&1; then nft add element ${table} ${set} '{ ${list.join(", ")} }'; fi`;
    }),
  ].join("\n");
}

/**
 * A oneshot unit that loads the table at boot. It runs after Debian's nftables.service, whose
 * /etc/nftables.conf begins with `flush ruleset` and would otherwise remove the table when enabled.
 */
export function renderFirewallUnit(name: string): string {
  checkName("table", name);
  return [
    "# Managed by hastack (firewall); changes are overwritten on the next deploy.",
    "[Unit]",
    `Description=hastack firewall table ${tableName(name)}`,
    "DefaultDependencies=no",
    "After=nftables.service",
    "Before=network-pre.target shutdown.target",
    "Wants=network-pre.target",
    "Conflicts=shutdown.target",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=/usr/sbin/nft -f ${nftPath(name)}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** Shell: remove the table if it is loaded (destroy); a missing table is not an error. */
export function deleteTableScript(name: string): string {
  const t = `inet ${tableName(checkName("table", name))}`;
  return `if nft list table ${t} >/dev/null 2>&1; then nft delete table ${t}; fi`;
}
