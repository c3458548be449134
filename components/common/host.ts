import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { registerOwner } from "./owner";

/** One managed VM, as the stack config names it. */
export interface HostSpec {
  /** Short unique name, used in resource names and as the member name of clustered daemons. */
  readonly name: string;
  /** IPv4 address the other hosts and the SSH client reach it at. */
  readonly address: string;
}

/** How every host of a stack is reached over SSH. */
export interface SshAccess {
  /** Private key (PEM/OpenSSH). Always a Pulumi secret. */
  readonly privateKey: pulumi.Input<string>;
  /** @default "root" */
  readonly user: string;
  /** @default 22 */
  readonly port: number;
  /** Host keys by address (`ssh-ed25519 AAAA…`): pinned in config, or recorded on first use. */
  readonly hostKeys?: Readonly<Record<string, pulumi.Input<string>>>;
  /** Record an unpinned host's key at first contact and enforce it afterwards. @default false */
  readonly trustOnFirstUse?: boolean;
  /** Address to dial by planned address: a VMmanager VM's address output, so every step on it waits for the VM. */
  readonly reachable?: Readonly<Record<string, pulumi.Input<string>>>;
}

export function connectionFor(host: HostSpec, ssh: SshAccess): command.types.input.remote.ConnectionArgs {
  const connection = {
    host: ssh.reachable?.[host.address] ?? host.address,
    user: ssh.user,
    port: ssh.port,
    privateKey: pulumi.secret(ssh.privateKey),
    hostKey: ssh.hostKeys?.[host.address],
    dialErrorLimit: 30,
    perDialTimeout: 10,
  };
  // steps on this connection claim the host under this name and delete only while it still has it (owner.ts)
  registerOwner(connection, host.name, host.address);
  return connection;
}
