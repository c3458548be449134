import * as pulumi from "@pulumi/pulumi";
import { SshAccess } from "../../components/common/host";
import { planVms, resolveVmManagerSettings, VmRole } from "./args";
import { VmManagerVm, vmsFor } from "./vm";

export interface StackVms {
  /** The VMs by host name; empty when no host has `vm: true`. */
  readonly vms: Readonly<Record<string, VmManagerVm>>;
  /** `ssh` whose connections to a VM host dial the VM's address, so every remote step waits for the VM. */
  readonly ssh: SshAccess;
  /** The VMs as a list, for `dependsOn` of steps that reach hosts without `connectionFor`. */
  readonly ready: pulumi.Resource[];
}

/**
 * The stack's VMmanager VMs from `hastack:vmmanager` and the sections' `vm: true` hosts (validated
 * here, before any VM exists). Sections that are off (Redis disabled, no app tier) are passed as undefined.
 */
export function stackVms(prefix: string, rawSettings: unknown, sections: Readonly<Partial<Record<VmRole, unknown>>>, ssh: SshAccess,
  opts: pulumi.CustomResourceOptions): StackVms {
  const settings = resolveVmManagerSettings(rawSettings);
  const plans = planVms(sections, settings);
  if (!settings || plans.length === 0) return { vms: {}, ssh, ready: [] };
  const vms = vmsFor(prefix, settings, plans, opts);
  const reachable = Object.fromEntries(plans.map((p) => [p.address, vms[p.name].address]));
  return { vms, ssh: { ...ssh, reachable: { ...ssh.reachable, ...reachable } }, ready: Object.values(vms) };
}
