import * as pulumi from "@pulumi/pulumi";
import { ClientTiming } from "./client";
import { VmManagerSettings, VmPlan } from "./args";
import { VmInputs, vmProvider } from "./provider";

export interface VmManagerVmArgs {
  /** Where the VM is made: URL, user, password (made a secret here), cluster, node, template or image, pool. */
  readonly settings: Pick<VmManagerSettings, "url" | "user" | "cluster" | "node" | "osTemplate" | "image" | "ipPool"> & {
    readonly password: pulumi.Input<string>;
  };
  /** The host: name, planned address, role, size, deletion protection, VM to adopt. */
  readonly plan: VmPlan;
  /** Name of the VM in VMmanager; unique per stack, e.g. `<stack>-<host>`. */
  readonly vmName: string;
  /** Client timing (tests shorten it). @default DEFAULT_TIMING */
  readonly timing?: ClientTiming;
}

/**
 * One VMmanager VM, driven by the engine through a dynamic provider: create (or adopt), read on
 * refresh, resize in place, delete (refused for protected VMs). Components wait for it through
 * `dependsOn` on their first remote step.
 */
export class VmManagerVm extends pulumi.dynamic.Resource {
  /** VMmanager's host id (also the resource id). */
  declare readonly vmId: pulumi.Output<number>;
  /** The address VMmanager gave, which is always the planned one. */
  declare readonly address: pulumi.Output<string>;
  declare readonly state: pulumi.Output<string>;

  constructor(name: string, args: VmManagerVmArgs, opts?: pulumi.CustomResourceOptions) {
    const { settings: s, plan: p } = args;
    const inputs: { [K in keyof VmInputs]: pulumi.Input<VmInputs[K]> } = {
      url: s.url, user: s.user, password: pulumi.secret(s.password),
      vmName: args.vmName, role: p.role, address: p.address,
      cluster: s.cluster, node: s.node, osTemplate: s.osTemplate, image: s.image, ipPool: s.ipPool,
      cpu: p.size.cpu, ramMiB: p.size.ramMiB, diskGiB: p.size.diskGiB,
      deletionProtected: p.deletionProtected, adoptId: p.adoptId, timing: args.timing,
    };
    super(vmProvider, name, { ...inputs, vmId: undefined, diskId: undefined, state: undefined },
      // the password is an input the provider needs again at delete time, so it stays in state: encrypted
      { ...opts, additionalSecretOutputs: ["password"] }, "hastack", "VmManagerVm");
  }
}

/**
 * One VmManagerVm per planned host, keyed by host name: resource `<prefix>-<host>-vm`, VMmanager
 * name `<stack>-<host>` (stacks of several sites share one VMmanager, so names carry the stack).
 */
export function vmsFor(prefix: string, settings: VmManagerSettings, plans: readonly VmPlan[], opts?: pulumi.CustomResourceOptions,
  timing?: ClientTiming): Record<string, VmManagerVm> {
  return Object.fromEntries(plans.map((p) => [p.name, new VmManagerVm(`${prefix}-${p.name}-vm`, {
    settings, plan: p, vmName: `${pulumi.getStack()}-${p.name}`, timing,
  }, opts)]));
}
