// The policies' checks as pure functions of what the pack sees (policy/index.ts wires them to
// @pulumi/policy): resources with their type, name and properties. Each returns violation messages;
// a message names what to change or waive and never carries a secret value.
import { FACTS_TYPE, PolicyFactsData } from "./facts";

/** What a check reads of one resource. `props` may throw on an unknown (preview) value: see `known`. */
export interface SeenResource {
  readonly type: string;
  readonly name: string;
  readonly props: Record<string, unknown>;
}

export const COMMAND_TYPE = "command:remote:Command";
export const VM_TYPE = "pulumi-nodejs:dynamic/hastack:VmManagerVm";
export const STACK_TYPE = "pulumi:pulumi:Stack";
/** ObservedHostKey (components/common/hostKey.ts) is an untyped dynamic resource, named `<prefix>-<host>-host-key`. */
const DYNAMIC_TYPE = "pulumi-nodejs:dynamic:Resource";

/**
 * A value, or undefined while the preview does not know it yet: @pulumi/policy's proxy throws on an
 * unknown. An unknown is skipped, not judged; `pulumi up` runs the same checks on known values.
 */
export function known<T>(read: () => T): T | undefined {
  try { return read(); } catch (e) {
    if ((e as Error)?.constructor?.name === "UnknownValueError") return undefined;
    throw e;
  }
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** The stack's facts marker (policy/facts.ts); undefined when the program registered none. */
export function factsOf(resources: readonly SeenResource[]): PolicyFactsData | undefined {
  const f = resources.filter((r) => r.type === FACTS_TYPE);
  if (f.length > 1) throw new Error(`${f.length} ${FACTS_TYPE} resources; a stack has one`);
  return f[0] ? (f[0].props as unknown as PolicyFactsData) : undefined;
}

// --- etcd: an odd member count, in this stack and in every peer site -----------------------------

/** Members listed in an etcd EnvironmentFile's ETCD_INITIAL_CLUSTER (name=url,…), when the text holds one. */
export function etcdInitialCluster(text: string): string[] | undefined {
  const m = /^ETCD_INITIAL_CLUSTER=(.*)$/m.exec(text);
  return m ? m[1].split(",").map((x) => x.split("=")[0]).filter(Boolean) : undefined;
}

/**
 * etcd keeps a quorum of floor(n/2)+1: an even n tolerates no more failures than n-1 and splits
 * evenly in a partition. This stack's cluster is read from the etcd config files the program
 * writes (putFile steps' stdin); each site runs its own etcd (Patroni standby clusters), so the
 * peers' counts come from their contracts, recorded in the facts.
 */
export function checkEtcdOdd(resources: readonly SeenResource[], facts?: PolicyFactsData): string[] {
  const out: string[] = [];
  const clusters = new Set<string>();
  for (const r of resources) {
    if (r.type !== COMMAND_TYPE) continue;
    const stdin = known(() => str(r.props.stdin));
    const members = stdin === undefined ? undefined : etcdInitialCluster(stdin);
    if (members) clusters.add(members.slice().sort().join(","));
  }
  for (const c of clusters) {
    const n = c.split(",").length;
    if (n % 2 === 0) out.push(`this stack's etcd cluster has ${n} members (${c}): an even count; hastack:postgres.nodes needs an odd number (3, 5, …)`);
  }
  for (const p of facts?.peerEtcd ?? []) {
    if (p.members % 2 === 0) out.push(`peer site ${p.site} runs an etcd cluster of ${p.members} members (its contract's postgres.members): an even count; fix hastack:postgres.nodes in stack ${p.site}`);
  }
  return out;
}

// --- synchronous_mode in production --------------------------------------------------------------

/** synchronous_mode of a Patroni dynamic configuration (PATCH /config body), when the text is one. */
export function patroniSynchronousMode(text: string): boolean | undefined {
  let v: unknown;
  try { v = JSON.parse(text); } catch { return undefined; }
  if (typeof v !== "object" || v === null || !("loop_wait" in v) || !("synchronous_mode" in v)) return undefined;
  return (v as { synchronous_mode: unknown }).synchronous_mode === true;
}

/** A production stack runs Patroni with synchronous_mode (the dynamic config it PATCHes), or waives it. */
export function checkSynchronousMode(resources: readonly SeenResource[], facts?: PolicyFactsData): string[] {
  if (!facts?.production || facts.waivers.synchronousModeOff) return [];
  const off = resources.filter((r) => r.type === COMMAND_TYPE).filter((r) => {
    const stdin = known(() => str(r.props.stdin));
    return stdin !== undefined && patroniSynchronousMode(stdin) === false;
  });
  // one cluster, one message: a multi-site stack PATCHes the same configuration from several steps
  return off.length === 0 ? [] : [`${off.map((r) => r.name).join(", ")} apply Patroni synchronous_mode: false in a production stack (hastack:policy.production): ` +
    "set hastack:postgres.synchronousMode: true, or waive with hastack:policy.waivers.synchronousModeOff: \"<reason>\""];
}

// --- deletion protection of database and Redis VMs -----------------------------------------------

const DATA_ROLES = ["postgres", "redis"];

/**
 * A VMmanager VM of a database or Redis host refuses deletion unless waived. The VM's `role` input
 * is the first section naming the host (postgres before proxy/workspad/nginx before redis): a host
 * in both proxy and redis is seen as "proxy" here, though planVms protects it (README "Policies").
 */
export function checkDataVmProtection(resources: readonly SeenResource[], facts?: PolicyFactsData): string[] {
  if (facts?.waivers.unprotectedDataVms) return [];
  return resources.filter((r) => r.type === VM_TYPE).flatMap((r) => {
    const role = known(() => str(r.props.role));
    const protectedVm = known(() => r.props.deletionProtected);
    if (role === undefined || !DATA_ROLES.includes(role) || protectedVm !== false) return [];
    return [`VM ${r.name} (${role}) has no deletion protection (hastack:vmmanager.allowDeletingDataVms): ` +
      "a destroy or replace would delete its data; unset allowDeletingDataVms, or waive with hastack:policy.waivers.unprotectedDataVms: \"<reason>\""];
  });
}

// --- SSH host keys -------------------------------------------------------------------------------

/**
 * Every host the program connects to is checked against a host key (a connection without one
 * trusts any host); a key learnt on first use (an ObservedHostKey record) is not pinned, which a
 * production stack refuses unless waived.
 */
export function checkHostKeys(resources: readonly SeenResource[], facts?: PolicyFactsData): string[] {
  const out = new Set<string>();
  for (const r of resources) {
    if (r.type !== COMMAND_TYPE) continue;
    const conn = known(() => r.props.connection) as Record<string, unknown> | undefined;
    const host = conn && known(() => str(conn.host));
    if (!conn || host === undefined) continue;
    const key = known(() => conn.hostKey);
    // an unknown key is a TOFU key not learnt yet: judged below by its record
    if (key === null || key === "" || (key === undefined && !hasUnknown(() => conn.hostKey))) {
      out.add(`host ${host} is reached without a host key (${r.name}): any machine answering on its address is trusted; pin it in hastack:ssh.hostKeys`);
    }
  }
  if (facts?.production && !facts.waivers.unpinnedHostKeys) {
    for (const r of resources) {
      if (r.type !== DYNAMIC_TYPE || !r.name.endsWith("-host-key")) continue;
      const address = known(() => str(r.props.address));
      if (address === undefined) continue;
      out.add(`host ${address} has no pinned SSH host key (its key is trusted on first use, ${r.name}) in a production stack: ` +
        "pin it in hastack:ssh.hostKeys (`ssh-keyscan -t ed25519 ADDRESS` on a trusted path), or waive with hastack:policy.waivers.unpinnedHostKeys: \"<reason>\"");
    }
  }
  return [...out];
}

function hasUnknown(read: () => unknown): boolean {
  try { read(); return false; } catch (e) { return (e as Error)?.constructor?.name === "UnknownValueError"; }
}

// --- secret stack outputs --------------------------------------------------------------------------

/** Output or field names that hold a secret by name. */
const SECRET_NAME = /pass(word|phrase)?$|secret|private.?key|token|keyPem|credential/i;

/**
 * Where a value carries a secret: a field named like one (with a non-empty value), a private key in
 * PEM form, or a connection string with a password. Returns the path of the first hit, never the value.
 */
export function secretPath(value: unknown, at: string): string | undefined {
  if (typeof value === "string") {
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(value)) return `${at} (a private key)`;
    if (/\b(password|pwd)=[^\s;&'"]+/i.test(value) || /^[a-z][a-z0-9+.-]*:\/\/[^/:@\s]+:[^@\s]+@/i.test(value)) return `${at} (a connection string with a password)`;
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  for (const k of Object.keys(value)) {
    const v = known(() => (value as Record<string, unknown>)[k]);
    const p = Array.isArray(value) ? `${at}[${k}]` : `${at}.${k}`;
    if (SECRET_NAME.test(k) && v !== undefined && v !== null && v !== "") return p;
    const inner = secretPath(v, p);
    if (inner) return inner;
  }
  return undefined;
}

/**
 * A stack output that carries a secret is exported marked secret. The pack cannot see the mark
 * (see policy/facts.ts): the program records it per output; the pack judges the content it sees.
 */
export function checkSecretOutputs(resources: readonly SeenResource[], facts?: PolicyFactsData): string[] {
  const stack = resources.find((r) => r.type === STACK_TYPE);
  if (!stack || !facts) return [];
  return Object.keys(stack.props).flatMap((name) => {
    if (facts.secretOutputs[name] !== false) return [];
    const v = known(() => stack.props[name]);
    const hit = SECRET_NAME.test(name) && v !== undefined && v !== null && v !== "" ? name : secretPath(v, name);
    return hit ? [`stack output ${name} carries a secret at ${hit} but is not marked secret: wrap it in pulumi.secret() where the program exports it`] : [];
  });
}
