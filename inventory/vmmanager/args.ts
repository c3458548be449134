// `hastack:vmmanager` and the per-host `vm: true|false` flag: typed settings, defaults in one place,
// validation before any resource exists. Pure (no Pulumi), so every rule has a "fails if" test.
import { invalid, isHostName, isIPv4 } from "../../components/common/validate";

/** The stack sections whose hosts can be VMs, in the order the datacenter builds them. */
export const VM_ROLES = ["postgres", "proxy", "workspad", "nginx", "redis"] as const;
export type VmRole = (typeof VM_ROLES)[number];

/** Roles whose VMs hold data that a deploy never wipes: their VMs refuse deletion unless allowed. */
export const PROTECTED_ROLES: readonly VmRole[] = ["postgres", "redis"];

export interface VmSize {
  /** Virtual CPUs. */
  readonly cpu: number;
  /** RAM in MiB. */
  readonly ramMiB: number;
  /** System disk in GiB; grows in place, never shrinks. */
  readonly diskGiB: number;
}

export const DEFAULT_SIZES: Readonly<Record<VmRole, VmSize>> = {
  postgres: { cpu: 4, ramMiB: 8192, diskGiB: 100 },
  proxy: { cpu: 2, ramMiB: 2048, diskGiB: 20 },
  workspad: { cpu: 4, ramMiB: 8192, diskGiB: 40 },
  nginx: { cpu: 2, ramMiB: 2048, diskGiB: 20 },
  redis: { cpu: 2, ramMiB: 4096, diskGiB: 20 },
};

/** `hastack:vmmanager`: where and how the stack's VMs are made. */
export interface VmManagerSettings {
  /** Base URL of VMmanager, http(s)://host[:port], no path. **required** */
  readonly url: string;
  /** Login e-mail of the VMmanager user. **required** */
  readonly user: string;
  /** Its password, set with `pulumi config set --secret --path hastack:vmmanager.password`. **required** */
  readonly password: string;
  /** Cluster id the VMs are created in. **required** */
  readonly cluster: number;
  /** Node id inside the cluster. @default undefined (VMmanager chooses) */
  readonly node?: number;
  /** OS template id to install from; exactly one of osTemplate and image. */
  readonly osTemplate?: number;
  /** Image id to create from; exactly one of osTemplate and image. */
  readonly image?: number;
  /** IPv4 pool the planned addresses are taken from. **required** */
  readonly ipPool: number;
  /** Size per role; a role not given keeps DEFAULT_SIZES. @default DEFAULT_SIZES */
  readonly sizes: Readonly<Record<VmRole, VmSize>>;
  /** Let `pulumi destroy` (or a replacement) delete database and Redis VMs. @default false */
  readonly allowDeletingDataVms: boolean;
  /** Existing VMs to take over instead of creating, by host name: VMmanager host id. @default {} */
  readonly adopt: Readonly<Record<string, number>>;
}

const KEY = "hastack:vmmanager";
const KNOWN = new Set(["url", "user", "password", "cluster", "node", "osTemplate", "image", "ipPool", "sizes", "allowDeletingDataVms", "adopt"]);
const isId = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 1;
const ID = "a VMmanager id (a whole number from 1)";

function knownKeys(field: string, raw: Record<string, unknown>, known: Iterable<string>): void {
  const k = new Set(known);
  for (const key of Object.keys(raw)) {
    // a misspelt password key still holds a password: name the key, not its value
    if (!k.has(key)) invalid(`${field}.${key}`, /pa?s+w|pwd|secret|token/i.test(key) ? "(not shown)" : raw[key], `no such key; known keys are ${[...k].join(", ")}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Resolve `hastack:vmmanager`; undefined when the stack has no such section (every host hand-made). */
export function resolveVmManagerSettings(raw: unknown): VmManagerSettings | undefined {
  if (raw === undefined) return undefined;
  if (!isObject(raw)) invalid(KEY, raw, "an object with url, user, password, cluster, osTemplate or image, and ipPool");
  knownKeys(KEY, raw, KNOWN);
  const { url, user, password, cluster, node, osTemplate, image, ipPool } = raw;
  if (typeof url !== "string" || !/^https?:\/\/[A-Za-z0-9.\-\[\]:]+\/?$/.test(url)) {
    invalid(`${KEY}.url`, url, "the base URL of VMmanager, such as https://vm.example.com (http or https, host and optional port, no path)");
  }
  if (typeof user !== "string" || !/^[^@\s]+@[^@\s]+$/.test(user)) invalid(`${KEY}.user`, user, "the e-mail a VMmanager user logs in with");
  if (typeof password !== "string" || password === "") {
    invalid(`${KEY}.password`, password === undefined ? undefined : "(not shown)", "a non-empty password, set with `pulumi config set --secret --path hastack:vmmanager.password`");
  }
  if (!isId(cluster)) invalid(`${KEY}.cluster`, cluster, ID);
  if (node !== undefined && !isId(node)) invalid(`${KEY}.node`, node, ID);
  if (osTemplate !== undefined && !isId(osTemplate)) invalid(`${KEY}.osTemplate`, osTemplate, ID);
  if (image !== undefined && !isId(image)) invalid(`${KEY}.image`, image, ID);
  if ((osTemplate === undefined) === (image === undefined)) {
    invalid(`${KEY}.osTemplate`, osTemplate, "exactly one of osTemplate (an OS template id) and image (an image id)");
  }
  if (!isId(ipPool)) invalid(`${KEY}.ipPool`, ipPool, ID);
  const allow = raw.allowDeletingDataVms ?? false;
  if (typeof allow !== "boolean") invalid(`${KEY}.allowDeletingDataVms`, allow, "true or false");
  return {
    url: url.replace(/\/+$/, ""), user, password, cluster, node, osTemplate, image, ipPool,
    sizes: resolveSizes(raw.sizes), allowDeletingDataVms: allow, adopt: resolveAdopt(raw.adopt),
  };
}

function resolveSizes(raw: unknown): Record<VmRole, VmSize> {
  const field = `${KEY}.sizes`;
  if (raw === undefined) return { ...DEFAULT_SIZES };
  if (!isObject(raw)) invalid(field, raw, `an object by role (${VM_ROLES.join(", ")}) of {cpu, ramMiB, diskGiB}`);
  knownKeys(field, raw, VM_ROLES);
  const out = { ...DEFAULT_SIZES };
  for (const role of VM_ROLES) {
    const r = raw[role];
    if (r === undefined) continue;
    if (!isObject(r)) invalid(`${field}.${role}`, r, "an object with cpu, ramMiB and diskGiB");
    knownKeys(`${field}.${role}`, r, ["cpu", "ramMiB", "diskGiB"]);
    const d = DEFAULT_SIZES[role];
    const size = { cpu: r.cpu ?? d.cpu, ramMiB: r.ramMiB ?? d.ramMiB, diskGiB: r.diskGiB ?? d.diskGiB };
    if (!isId(size.cpu) || size.cpu > 256) invalid(`${field}.${role}.cpu`, size.cpu, "a number of virtual CPUs, 1–256");
    if (!isId(size.ramMiB) || size.ramMiB < 512) invalid(`${field}.${role}.ramMiB`, size.ramMiB, "RAM in MiB, a whole number from 512");
    if (!isId(size.diskGiB) || size.diskGiB < 5) invalid(`${field}.${role}.diskGiB`, size.diskGiB, "a disk size in GiB, a whole number from 5");
    out[role] = size as VmSize;
  }
  return out;
}

function resolveAdopt(raw: unknown): Record<string, number> {
  const field = `${KEY}.adopt`;
  if (raw === undefined) return {};
  if (!isObject(raw)) invalid(field, raw, "an object from host name to the VMmanager id of an existing VM");
  for (const [name, id] of Object.entries(raw)) {
    if (!isHostName(name)) invalid(`${field}.${name}`, id, "a host name of the stack as key");
    if (!isId(id)) invalid(`${field}.${name}`, id, ID);
  }
  return raw as Record<string, number>;
}

/** One VM the stack asks VMmanager for. */
export interface VmPlan {
  readonly name: string;
  readonly address: string;
  /** The first section naming the host; a host in several sections gets the largest size of each. */
  readonly role: VmRole;
  readonly roles: readonly VmRole[];
  readonly size: VmSize;
  /** Deletion refused (a database or Redis host) unless allowDeletingDataVms. */
  readonly deletionProtected: boolean;
  /** Existing VMmanager host id to take over, from `adopt`. */
  readonly adoptId?: number;
}

/**
 * Hosts marked `vm: true` in the sections, one plan per host name. Fails on a `vm` that is not a
 * boolean, on VMs without a `hastack:vmmanager` section, and on `adopt` naming a host that is not a VM.
 */
export function planVms(sections: Readonly<Partial<Record<VmRole, unknown>>>, settings: VmManagerSettings | undefined): VmPlan[] {
  const byName = new Map<string, { address: string; roles: VmRole[]; where: string }>();
  for (const role of VM_ROLES) {
    const nodes = (sections[role] as { nodes?: unknown } | undefined)?.nodes;
    if (!Array.isArray(nodes)) continue;
    nodes.forEach((n: unknown, i: number) => {
      const where = `hastack:${role}.nodes[${i}]`;
      const { name, address, vm } = (n ?? {}) as { name?: unknown; address?: unknown; vm?: unknown };
      if (vm === undefined || vm === false) return;
      if (vm !== true) invalid(`${where}.vm`, vm, "true (a VM made through hastack:vmmanager) or false (a host made by hand)");
      if (!isHostName(name) || !isIPv4(address)) return; // the section's own resolver names this error
      if (!settings) invalid("hastack:vmmanager", undefined, `a VMmanager section, since ${where} (${name}) has vm: true`);
      const seen = byName.get(name);
      if (seen) seen.roles.push(role);
      else byName.set(name, { address, roles: [role], where });
    });
  }
  if (settings) {
    for (const name of Object.keys(settings.adopt)) {
      if (!byName.has(name)) invalid(`hastack:vmmanager.adopt.${name}`, settings.adopt[name], "the name of a host with vm: true");
    }
  }
  return [...byName.entries()].map(([name, h]) => {
    const sizes = h.roles.map((r) => settings!.sizes[r]);
    const max = (k: keyof VmSize) => Math.max(...sizes.map((s) => s[k]));
    return {
      name, address: h.address, role: h.roles[0], roles: h.roles,
      size: { cpu: max("cpu"), ramMiB: max("ramMiB"), diskGiB: max("diskGiB") },
      deletionProtected: h.roles.some((r) => PROTECTED_ROLES.includes(r)) && !settings!.allowDeletingDataVms,
      ...(settings!.adopt[name] !== undefined ? { adoptId: settings!.adopt[name] } : {}),
    };
  });
}
