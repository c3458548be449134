import { invalid } from "../components/common";

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
