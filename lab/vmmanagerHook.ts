// The VMmanager emulator's "create host" on real machines: each host the emulator creates becomes a
// lab VM (lab/vm.sh: systemd-nspawn on an overlay of the host's /) with the address VMmanager gave,
// and the host_create task completes only once that VM answers SSH with the lab key, as a real
// VMmanager task completes once the VM is installed and running. Host delete powers it off and
// removes its disk. A boot that fails fails the task, with the script's last words as the reason.
import { execFile } from "child_process";
import * as path from "path";
import { promisify } from "util";
import type { EmulatedHost, EmulatorHooks } from "../inventory/vmmanager/emulator";

const run = promisify(execFile);
const LAB = __dirname;

export interface LabVmHookOptions {
  /**
   * Environment for lab/*.sh: the HASTACK_LAB_* overrides of lab/lib.sh (state, disks, bridge,
   * subnet, cgroup) that say which lab the VMs belong to. @default process.env (the main lab)
   */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * VMmanager names are `<stack>-<host>`; the nspawn machine is named after the host alone, so that
   * lab/ssh.sh, vm.sh crash and the drills find it as in the directly booted lab. A name without
   * this prefix fails the create (it is not a VM of this lab).
   */
  readonly namePrefix: string;
  /** How long a booted VM may take to answer SSH. @default 180000 */
  readonly sshTimeoutMs?: number;
}

/** The lab VMs the emulator made, by VMmanager host id (the test checks them against `vm.sh status`). */
export class LabVmHook implements EmulatorHooks {
  /** The bridge and the SSH key, made once before the first boot: parallel `vm.sh up`s must not race to make them. */
  private prepared?: Promise<string>;
  readonly created: string[] = [];
  readonly removed: string[] = [];

  constructor(private readonly o: LabVmHookOptions) {}

  /** The nspawn machine name of a VMmanager host. */
  machineOf(vmName: string): string {
    if (!vmName.startsWith(this.o.namePrefix)) {
      throw new Error(`VM name ${vmName} does not start with ${this.o.namePrefix}: not a VM of this lab`);
    }
    return vmName.slice(this.o.namePrefix.length);
  }

  private sh(script: string, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
    return run("bash", [path.join(LAB, script), ...args], { env: this.o.env ?? process.env, timeout: 120000 }).catch((e) => {
      const tail = String(e.stderr ?? "").trim().split("\n").slice(-3).join("; ");
      throw new Error(`lab/${script} ${args.join(" ")} failed: ${tail || e.message}`);
    });
  }

  async createHost(host: Readonly<EmulatedHost>): Promise<void> {
    const machine = this.machineOf(host.name);
    const address = host.ip4[0]?.ip;
    if (!address) throw new Error(`host ${host.id} (${host.name}) has no IPv4 address`);
    // the bridge and the key once; then the VMs boot side by side, as lab/up-vms.sh boots them
    this.prepared ??= this.sh("net.sh", "up").then(() => this.sh("vm.sh", "key")).then((r) => r.stdout.trim());
    const key = await this.prepared.catch((e) => { this.prepared = undefined; throw e; });
    await this.sh("vm.sh", "up", machine, address);
    await this.waitForSsh(machine, address, key);
    this.created.push(machine);
  }

  async deleteHost(host: Readonly<EmulatedHost>): Promise<void> {
    const machine = this.machineOf(host.name);
    await this.sh("vm.sh", "down", machine);
    this.removed.push(machine);
  }

  /** `ssh root@ADDRESS true` with the lab key until it works: the VM booted and accepts the stack's key. */
  private async waitForSsh(machine: string, address: string, key: string): Promise<void> {
    const deadline = Date.now() + (this.o.sshTimeoutMs ?? 180000);
    for (;;) {
      try {
        await run("ssh", ["-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
          "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", `root@${address}`, "true"], { timeout: 10000 });
        return;
      } catch {
        if (Date.now() > deadline) {
          throw new Error(`VM ${machine} (${address}) booted but did not answer SSH within ${Math.round((this.o.sshTimeoutMs ?? 180000) / 1000)} s`);
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }
}
