import * as pulumi from "@pulumi/pulumi";
import { HostSpec, invalid, ObservedHostKey, SshAccess } from "../components/common";

/**
 * Every managed host is checked against a host key: pinned in `hastack:ssh.hostKeys`, or, when the
 * stack opts into `hastack:ssh.trustOnFirstUse`, recorded in state at first contact. A host with
 * neither is an error at preview, so a partial map can never leave one host unchecked.
 */
export function hostKeysFor(prefix: string, ssh: SshAccess, hosts: readonly HostSpec[], opts: pulumi.CustomResourceOptions): SshAccess {
  const pinned = ssh.hostKeys ?? {};
  const byAddress = new Map<string, HostSpec>();
  for (const h of hosts) if (!byAddress.has(h.address)) byAddress.set(h.address, h);
  const unpinned = [...byAddress.values()].filter((h) => pinned[h.address] === undefined);
  if (unpinned.length && !ssh.trustOnFirstUse) {
    invalid("hastack:ssh.hostKeys", `no key for ${unpinned.map((h) => `${h.name} (${h.address})`).join(", ")}`,
      "a pinned key ('ssh-ed25519 AAAA…', e.g. from `ssh-keyscan -t ed25519 ADDRESS`) for every host of the stack, " +
      "or hastack:ssh.trustOnFirstUse: true to record each key at first contact and enforce it afterwards");
  }
  const observed = Object.fromEntries(unpinned.map((h) => [h.address,
    new ObservedHostKey(`${prefix}-${h.name}-host-key`, { address: h.address, port: ssh.port }, opts).key]));
  return { ...ssh, hostKeys: { ...pinned, ...observed } };
}
