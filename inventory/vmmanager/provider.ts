// The dynamic provider behind VmManagerVm: the engine serialises this object into the state of
// each VM and runs it in its own process (pulumi-resource-pulumi-nodejs), so it depends only on
// ./client and Node's crypto, and every call builds its client from the resource's own inputs.
import * as crypto from "crypto";
import type * as pulumi from "@pulumi/pulumi";
import { ClientTiming, Host, HostCreateError, VmManagerClient } from "./client";

/** What a VM resource is asked for (all plain values by the time the provider sees them). */
export interface VmInputs {
  readonly url: string;
  readonly user: string;
  /** A Pulumi secret in the program and in state. */
  readonly password: string;
  /** Name of the VM in VMmanager (unique per stack). */
  readonly vmName: string;
  /** Stack section of the host, e.g. "postgres"; shown in errors. */
  readonly role: string;
  /** The planned IPv4 address; VMmanager must hand out exactly this one. */
  readonly address: string;
  readonly cluster: number;
  readonly node?: number;
  readonly osTemplate?: number;
  readonly image?: number;
  readonly ipPool: number;
  readonly cpu: number;
  readonly ramMiB: number;
  readonly diskGiB: number;
  /** Refuse deletion (database and Redis VMs) unless the stack allows it. */
  readonly deletionProtected: boolean;
  /** Take over this existing VMmanager host instead of creating one (read once, at create). */
  readonly adoptId?: number;
  readonly timing?: ClientTiming;
}

export interface VmOutputs extends VmInputs {
  readonly vmId: number;
  readonly diskId: number;
  /** VMmanager's state of the host: "active" once ready. */
  readonly state: string;
}

/** Inputs that replace the VM when they change; everything else is updated in place. */
const REPLACE_ON = ["vmName", "address", "cluster", "node", "osTemplate", "image", "ipPool"] as const;
const UPDATE_ON = ["cpu", "ramMiB", "diskGiB", "deletionProtected", "url", "user", "password", "role", "timing"] as const;

function clientFor(i: VmInputs): VmManagerClient {
  return new VmManagerClient({ url: i.url, email: i.user, password: i.password }, i.timing ?? {});
}

function outputsOf(i: VmInputs, h: Host): VmOutputs {
  return {
    ...i,
    address: h.ip4.some((x) => x.ip === i.address) ? i.address : (h.ip4[0]?.ip ?? ""),
    cpu: h.cpu_number, ramMiB: h.ram_mib, diskGiB: Math.round(h.disk.disk_mib / 1024),
    vmId: h.id, diskId: h.disk.id, state: h.state,
  };
}

/** Bring CPU, RAM and disk of `h` to what `want` asks; a smaller disk is refused, never attempted. */
async function resize(c: VmManagerClient, h: Host, want: VmInputs): Promise<void> {
  const wantDisk = want.diskGiB * 1024;
  if (h.disk.disk_mib > wantDisk) {
    throw new Error(`VM ${want.vmName} (VMmanager id ${h.id}) has a ${Math.round(h.disk.disk_mib / 1024)} GiB disk; ${want.diskGiB} GiB would shrink it, which VMmanager does not do. Set its size to at least ${Math.round(h.disk.disk_mib / 1024)} GiB.`);
  }
  if (h.cpu_number !== want.cpu || h.ram_mib !== want.ramMiB) await c.changeResources(h.id, want.cpu, want.ramMiB);
  if (h.disk.disk_mib < wantDisk) await c.resizeDisk(h.disk.id, wantDisk);
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/**
 * A create that went wrong after VMmanager made a VM: delete that VM so no orphan is left, or,
 * when even that fails, hand its id to the engine (an init error), which records it in state.
 */
async function cleanUp(c: VmManagerClient, i: VmInputs, hostId: number, why: string): Promise<never> {
  try {
    await c.deleteHost(hostId);
  } catch (e) {
    const host = await c.findHost(hostId).catch(() => undefined);
    throw Object.assign(new Error(`${why}; deleting the VM it left (VMmanager id ${hostId}) failed too (${(e as Error).message}), so the stack state keeps it: the next pulumi up replaces it, pulumi destroy deletes it`), {
      id: String(hostId),
      properties: host ? outputsOf(i, host) : { ...i, vmId: hostId, diskId: 0, state: "creation_failed" },
    });
  }
  throw new Error(`${why}; the VM it left (VMmanager id ${hostId}) was deleted`);
}

export const vmProvider: pulumi.dynamic.ResourceProvider = {
  async check(olds: VmInputs, news: VmInputs) {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    if ((news.osTemplate === undefined) === (news.image === undefined)) failures.push({ property: "osTemplate", reason: "exactly one of osTemplate and image is required" });
    if (olds?.diskGiB !== undefined && news.diskGiB < olds.diskGiB) {
      failures.push({ property: "diskGiB", reason: `the disk of VM ${news.vmName} is ${olds.diskGiB} GiB; VMmanager grows disks but never shrinks them, so ${news.diskGiB} GiB cannot be applied` });
    }
    return { inputs: news, failures };
  },

  async diff(_id: string, olds: VmOutputs, news: VmInputs) {
    const replaces: string[] = REPLACE_ON.filter((k) => !sameValue(olds[k], news[k]));
    // a VM whose creation failed (kept in state because its deletion failed too) is made again
    if (olds.state !== undefined && olds.state !== "active") replaces.push("state");
    const updates = UPDATE_ON.filter((k) => !sameValue(olds[k], news[k]));
    // the planned address is unique, so the old VM must release it before the new one can have it
    return { changes: replaces.length + updates.length > 0, replaces, deleteBeforeReplace: true };
  },

  async create(i: VmInputs) {
    const c = clientFor(i);
    if (i.adoptId !== undefined) {
      const h = await c.findHost(i.adoptId);
      if (!h) throw new Error(`cannot adopt VMmanager host ${i.adoptId} for ${i.vmName}: VMmanager has no host with that id`);
      if (!h.ip4.some((x) => x.ip === i.address)) {
        throw new Error(`cannot adopt VMmanager host ${i.adoptId} (${h.name}) for ${i.vmName}: it has ${h.ip4.map((x) => x.ip).join(", ") || "no address"}, not the planned ${i.address}`);
      }
      await resize(c, h, i);
      return { id: String(h.id), outs: outputsOf(i, (await c.findHost(h.id))!) };
    }
    const clash = await c.findHostsByName(i.vmName);
    if (clash.length > 0) {
      throw new Error(`VMmanager already has a VM named ${i.vmName} (id ${clash.map((h) => h.id).join(", ")}) that this stack does not know; adopt it (hastack:vmmanager.adopt) or delete it, then run pulumi up again`);
    }
    const why = `VMmanager could not create VM ${i.vmName} (${i.role}) with the planned address ${i.address} from IP pool ${i.ipPool}`;
    let h: Host;
    try {
      h = await c.createHost({
        name: i.vmName, cluster: i.cluster, node: i.node, os: i.osTemplate, image: i.image,
        cpu: i.cpu, ramMib: i.ramMiB, diskMib: i.diskGiB * 1024, ipPool: i.ipPool, address: i.address,
        // nobody logs in with it (access is by SSH key), so it is made here and kept nowhere
        rootPassword: crypto.randomBytes(18).toString("base64url"),
        comment: `hastack ${i.role}`,
      });
    } catch (e) {
      if (e instanceof HostCreateError) return cleanUp(c, i, e.hostId, `${why}: ${e.message}`);
      throw new Error(`${why}: ${(e as Error).message}`);
    }
    if (!h.ip4.some((x) => x.ip === i.address)) {
      return cleanUp(c, i, h.id, `${why}: it was given ${h.ip4.map((x) => x.ip).join(", ") || "no address"} instead`);
    }
    return { id: String(h.id), outs: outputsOf(i, h) };
  },

  async read(id: string, props: VmOutputs) {
    const h = await clientFor(props).findHost(Number(id));
    // an empty id tells the engine the VM is gone (deleted behind Pulumi's back)
    if (!h) return { id: "", props: {} };
    const outs = outputsOf(props, h);
    const { vmId: _v, diskId: _d, state: _s, ...inputs } = outs;
    return { id, props: outs, inputs };
  },

  async update(id: string, _olds: VmOutputs, news: VmInputs) {
    const c = clientFor(news);
    const h = await c.findHost(Number(id));
    if (!h) throw new Error(`VM ${news.vmName} (VMmanager id ${id}) no longer exists; run pulumi refresh, and pulumi up creates it again`);
    await resize(c, h, news);
    return { outs: outputsOf(news, (await c.findHost(h.id))!) };
  },

  async delete(id: string, props: VmOutputs) {
    // a VM that never became active holds no data, so protection does not keep it
    if (props.deletionProtected && props.state === "active") {
      throw new Error(`VM ${props.vmName} (VMmanager id ${id}, ${props.role}) is protected from deletion because it holds ${props.role} data. To delete it, set hastack:vmmanager.allowDeletingDataVms to true, run pulumi up, then run this again.`);
    }
    await clientFor(props).deleteHost(Number(id));
  },
};
