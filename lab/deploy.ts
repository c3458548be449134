// `npm run lab` after the VMs are up: `pulumi up` of the lab stack with the real engine,
// then the endpoints and a health summary. Re-running it on a running lab changes nothing.
import * as fs from "fs";
import * as path from "path";
import { ConfigMap, Stack } from "@pulumi/pulumi/automation";
import { changes, openStack, REPO } from "../engine/automation";
import { labConfig, LabOptions, STATE } from "./stack";

export const LAB_ENGINE = { backendDir: path.join(STATE, "pulumi"), passphrase: "hastack-lab" };

/**
 * The lab stack, with its project directory (Pulumi.yaml + Pulumi.lab.yaml) under lab/.state,
 * so `npm run lab:down` removes the stack's config with its state and VMs. `config`: another config
 * than labConfig(o) (lab/vmmanager.ts: the same lab with its hosts made through VMmanager).
 */
export function openLabStack(o: LabOptions = {}, config: ConfigMap = labConfig(o)): Promise<Stack> {
  const workDir = path.join(STATE, "project");
  fs.mkdirSync(workDir, { recursive: true });
  fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(workDir, "Pulumi.yaml"));
  return openStack({ stackName: "lab", config, workDir }, LAB_ENGINE);
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const stack = await openLabStack();
  const up = await stack.up({ onOutput: (s) => process.stdout.write(s) });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`\nlab: pulumi up ${up.summary.result} in ${secs}s; changes: ${JSON.stringify(changes(up.summary.resourceChanges))}`);
  const o = up.outputs;
  console.log(`lab: endpoint ${o.endpoint?.value}  db VIP ${o.dbVip?.value}:${o.dbPort?.value}  members ${(o.postgres?.value?.members ?? []).map((m: { name: string }) => m.name).join(",")} (leader: whichever answers /primary)`);
  if (o.redis) console.log(`lab: redis ${o.redis.value.vip}:${o.redis.value.port} (master name ${o.redis.value.masterName})`);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(`lab: deploy failed: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  });
}
