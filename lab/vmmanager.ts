// The lab with its VMs made through VMmanager's API: `npm run lab -- --via-vmmanager`. The VMmanager
// emulator runs in this process with the lab hook (lab/vmmanagerHook.ts), so each host's
// `host_create` boots a real nspawn VM with the requested address; the lab stack marks every host
// `vm: true` and points `hastack:vmmanager` at the emulator, so `pulumi up` creates the VMs through
// the API and then configures them over SSH. The direct boot (`npm run lab`) stays the default.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { ConfigMap } from "@pulumi/pulumi/automation";
import { changes } from "../engine/automation";
import { VM_ROLES } from "../inventory/vmmanager/args";
import { EmulatedHost, startEmulator, VmManagerEmulator } from "../inventory/vmmanager/emulator";
import { openLabStack } from "./deploy";
import { labConfig, layout, STATE } from "./stack";
import { LabVmHook } from "./vmmanagerHook";

/** The emulator's one user (its password is made per lab and is a Pulumi secret in the stack). */
export const VMM_USER = "ops@lab.example";
/**
 * What the lab asks VMmanager for. The nspawn VMs share the host's CPUs and memory, so the sizes are
 * recorded by the emulator and not applied; small ones keep that obvious.
 */
const LAB_SIZE = { cpu: 1, ramMiB: 1024, diskGiB: 10 };

export interface VmManagerAccess {
  readonly url: string;
  readonly password: string;
  readonly allowDeletingDataVms?: boolean;
}

/** `key.a.b` leaves of an object, as `pulumi config set --path` takes them (typed: numbers and booleans stay so). */
function leaves(key: string, v: unknown, secret: (k: string) => boolean, out: ConfigMap = {}): ConfigMap {
  if (v !== null && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) leaves(`${key}.${k}`, x, secret, out);
  } else {
    out[key] = { value: String(v), ...(secret(key) ? { secret: true } : {}) };
  }
  return out;
}

/**
 * A lab stack config whose hosts are hand-made (`labConfig`, or the e2e test's) turned into one whose
 * hosts are all VMmanager VMs: `vm: true` on every node, a `hastack:vmmanager` section with the
 * password as a secret leaf, and host keys recorded at first contact (the VMs, and so their keys, do
 * not exist before the `up`).
 */
export function viaVmManager(config: ConfigMap, vmm: VmManagerAccess): ConfigMap {
  const out: ConfigMap = { ...config };
  for (const role of VM_ROLES) {
    const c = out[`hastack:${role}`];
    if (!c) continue;
    const section = JSON.parse(c.value) as { nodes?: Record<string, unknown>[] };
    if (!section.nodes) continue;
    out[`hastack:${role}`] = { value: JSON.stringify({ ...section, nodes: section.nodes.map((n) => ({ ...n, vm: true })) }) };
  }
  const { hostKeys: _pinned, ...ssh } = JSON.parse(out["hastack:ssh"]?.value ?? "{}");
  out["hastack:ssh"] = { value: JSON.stringify({ ...ssh, trustOnFirstUse: true }) };
  const sizes = Object.fromEntries(VM_ROLES.map((r) => [r, LAB_SIZE]));
  return {
    ...out,
    ...leaves("hastack:vmmanager", {
      url: vmm.url, user: VMM_USER, password: vmm.password, cluster: 1, osTemplate: 1, ipPool: 1,
      sizes, allowDeletingDataVms: vmm.allowDeletingDataVms ?? false,
    }, (k) => k === "hastack:vmmanager.password"),
  };
}

export interface LabVmManager {
  readonly emu: VmManagerEmulator;
  readonly hook: LabVmHook;
  readonly password: string;
}

/**
 * The emulator with the lab hook: one pool (the lab subnet), one cluster, one OS template (id 1).
 * `env`: lab/*.sh overrides for another lab than the main one; `initialHosts`: what a previous run left.
 */
export async function startLabVmManager(o: { subnet: string; namePrefix: string; password: string; env?: NodeJS.ProcessEnv;
  initialHosts?: EmulatedHost[]; port?: number }): Promise<LabVmManager> {
  const hook = new LabVmHook({ env: o.env, namePrefix: o.namePrefix });
  const emu = await startEmulator({
    users: { [VMM_USER]: o.password }, pools: [{ id: 1, cidr: o.subnet }], hooks: hook, initialHosts: o.initialHosts, port: o.port,
    // a real host_create takes minutes; here the boot itself is the task's duration
    taskMs: 200,
  });
  return { emu, hook, password: o.password };
}

/** The emulator's password and hosts, kept (0600) between runs of the main lab: its VMs outlive this process. */
const KEEP = path.join(STATE, "vmmanager.json");
/** A fixed port: the URL is an input of every VM, and a new one each run would update them all. */
const LAB_PORT = 18613;

async function main(): Promise<void> {
  const t0 = Date.now();
  // the stack's SSH key must exist before the config is built; the VMs are made during the up
  execFileSync("bash", [path.join(__dirname, "vm.sh"), "key"], { stdio: ["ignore", "ignore", "inherit"] });
  const kept = fs.existsSync(KEEP) ? JSON.parse(fs.readFileSync(KEEP, "utf8")) as { password: string; hosts: EmulatedHost[] } : undefined;
  const password = kept?.password ?? crypto.randomBytes(18).toString("base64url");
  const vmm = await startLabVmManager({ subnet: layout.subnet, namePrefix: "lab-", password, initialHosts: kept?.hosts, port: LAB_PORT });
  const save = () => fs.writeFileSync(KEEP, JSON.stringify({ password, hosts: [...vmm.emu.hosts.values()] }), { mode: 0o600 });
  try {
    console.log(`lab: VMmanager emulator at ${vmm.emu.url}, ${vmm.emu.hosts.size} VMs known from the last run`);
    const stack = await openLabStack({}, viaVmManager(labConfig(), { url: vmm.emu.url, password }));
    const up = await stack.up({ onOutput: (s) => process.stdout.write(s) });
    const o = up.outputs;
    console.log(`\nlab: pulumi up (via VMmanager) ${up.summary.result} in ${((Date.now() - t0) / 1000).toFixed(1)}s; changes: ${JSON.stringify(changes(up.summary.resourceChanges))}`);
    console.log(`lab: ${vmm.hook.created.length} VMs booted through host_create this run; endpoint ${o.endpoint?.value}  db VIP ${o.dbVip?.value}:${o.dbPort?.value}`);
  } finally {
    save();
    await vmm.emu.close();
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(`lab: deploy via VMmanager failed: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  });
}
