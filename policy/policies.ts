// hastack's policies: what per-section validation cannot see (README "Policies"). Every policy
// is mandatory: a violation fails `pulumi preview` and `pulumi up`. The checks are pure functions in
// checks.ts; here they become stack policies, which see every resource of the stack at once
// (the facts marker next to the resources it qualifies), with outputs as the engine has them.
import { StackValidationArgs, StackValidationPolicy } from "@pulumi/policy";
import { FACTS_TYPE } from "./facts";
import { checkDataVmProtection, checkEtcdOdd, checkHostKeys, checkSecretOutputs, checkSynchronousMode, factsOf, SeenResource } from "./checks";

type Check = (resources: readonly SeenResource[], facts: ReturnType<typeof factsOf>) => string[];

function stackPolicy(name: string, description: string, check: Check): StackValidationPolicy {
  return {
    name, description, enforcementLevel: "mandatory",
    validateStack: (args: StackValidationArgs, reportViolation) => {
      const resources = args.resources.map((r) => ({ type: r.type, name: r.name, props: r.props }));
      for (const message of check(resources, factsOf(resources))) reportViolation(message);
    },
  };
}

export const POLICIES: StackValidationPolicy[] = [
  stackPolicy("hastack-policy-facts", `the program registers one ${FACTS_TYPE} marker (policy/facts.ts), which the other policies read`,
    (resources) => (resources.some((r) => r.type === FACTS_TYPE) ? [] : [`no ${FACTS_TYPE} resource: this stack was not built by the hastack program, or its program skips the marker`])),
  stackPolicy("etcd-odd-members", "every etcd cluster, this site's and each peer site's, has an odd member count", checkEtcdOdd),
  stackPolicy("secret-outputs-marked", "a stack output carrying a password, private key or connection string with a password is marked secret", checkSecretOutputs),
  stackPolicy("data-vms-deletion-protected", "VMmanager VMs of database and Redis hosts refuse deletion (waiver: unprotectedDataVms)", checkDataVmProtection),
  stackPolicy("production-synchronous-mode", "a production stack runs Patroni with synchronous_mode (waiver: synchronousModeOff)", checkSynchronousMode),
  stackPolicy("ssh-host-keys-pinned", "every host is reached with a host key, pinned in a production stack (waiver: unpinnedHostKeys)", checkHostKeys),
];
