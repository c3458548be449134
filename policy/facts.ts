// The PolicyFacts marker: what the policy pack must know and cannot see in any resource.
//
// A policy pack sees every resource's inputs and outputs (secrets unwrapped, unknowns hidden), never the stack's
// config and never whether a value is marked secret: @pulumi/policy 1.21 unwraps secret markers before any
// validate function runs. So the program records here, on one component resource (no provider, nothing on a
// host; a component's inputs reach the engine and so the pack):
//  - production and waivers: config only (`hastack:policy`, policy/settings.ts);
//  - the peers' etcd member counts: read from their contracts through StackReferences, in no resource;
//  - which stack outputs are marked secret: measured with pulumi.isSecret on the very Outputs the stack exports.
// Everything else the policies check on the resources the program already registers (policy/checks.ts).
import * as pulumi from "@pulumi/pulumi";
import { ResolvedPolicySettings } from "./settings";

export const FACTS_TYPE = "hastack:policy:PolicyFacts";

/** The marker's inputs, as the pack reads them. */
export interface PolicyFactsData {
  readonly production: boolean;
  readonly waivers: ResolvedPolicySettings["waivers"];
  /** Other sites' etcd clusters (each site runs its own; a peer's Patroni members are its etcd members). */
  readonly peerEtcd: readonly { readonly site: string; readonly members: number }[];
  /** Each stack output by name: true when the program exports it marked secret. */
  readonly secretOutputs: Readonly<Record<string, boolean>>;
}

export interface PolicyFactsArgs {
  readonly settings: ResolvedPolicySettings;
  readonly peerEtcd: PolicyFactsData["peerEtcd"];
  /** The stack outputs exactly as the program returns them. */
  readonly outputs: Record<string, unknown>;
}

export class PolicyFacts extends pulumi.ComponentResource {
  constructor(name: string, args: PolicyFactsArgs, opts?: pulumi.ComponentResourceOptions) {
    const secretOutputs = Promise.all(Object.entries(args.outputs).map(async ([k, v]) => [k, await pulumi.isSecret(pulumi.output(v))] as const))
      .then((kv) => Object.fromEntries(kv));
    const facts = { production: args.settings.production, waivers: args.settings.waivers, peerEtcd: args.peerEtcd, secretOutputs };
    super(FACTS_TYPE, name, facts, opts);
    // the same facts as outputs: a stack policy reads resources' outputs
    this.registerOutputs(facts);
  }
}
