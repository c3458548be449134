// `npm run switchover -- --to SITE` and `npm run failover -- --to SITE --force`: the stacks of this project
// (Pulumi.yaml in the repo root, Pulumi.<stack>.yaml next to it, the backend and passphrase from the
// environment, as for `pulumi up`). `--dir DIR` points at another project directory holding Pulumi.yaml and the
// stack files (a checkout elsewhere; the sites e2e drives the lab's stacks this way). `--stacks a,b` names the
// stacks; by default the target's hastack:site peers and itself. `--lab` drives the two-site lab's stacks
// through lab/sites.ts instead (its own backend and recorded role).
import * as fs from "fs";
import * as path from "path";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { REPO, withPolicyPack } from "../engine/automation";
import { failover, SiteHandle, switchover } from "./sites";

const USAGE = "--to SITE [--stacks a,b] [--dir PROJECT_DIR] [--force] [--lab]";

function args(argv: string[]): { cmd: string; to: string; force: boolean; lab: boolean; stacks?: string[]; dir: string } {
  const [cmd, ...rest] = argv;
  const o = { cmd, to: "", force: false, lab: false, stacks: undefined as string[] | undefined, dir: REPO };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === "--to") o.to = rest[++i] ?? "";
    else if (a === "--force") o.force = true;
    else if (a === "--lab") o.lab = true;
    else if (a === "--stacks") o.stacks = (rest[++i] ?? "").split(",").filter(Boolean);
    else if (a === "--dir") o.dir = path.resolve(rest[++i] ?? "");
    else throw new Error(`unknown argument ${JSON.stringify(a)}; usage: ${cmd} ${USAGE}`);
  }
  if (cmd !== "switchover" && cmd !== "failover") throw new Error(`unknown command ${JSON.stringify(cmd)}: switchover or failover`);
  if (!/^[a-z][a-z0-9-]*$/.test(o.to)) throw new Error(`--to: got ${JSON.stringify(o.to)}; expected the stack name of the site that is to lead`);
  if (!o.lab && !fs.existsSync(path.join(o.dir, "Pulumi.yaml"))) throw new Error(`--dir: got ${JSON.stringify(o.dir)}; expected a project directory holding Pulumi.yaml and the sites' Pulumi.<stack>.yaml`);
  return o;
}

async function userStacks(to: string, dir: string, names?: string[]): Promise<SiteHandle[]> {
  const program = async () => (await import("../stacks/program")).program();
  // every up of a switchover or failover is checked by the policy pack, as any other (README "Policies")
  const open = async (stackName: string) => withPolicyPack(await LocalWorkspace.selectStack({ stackName, projectName: "hastack", program }, { workDir: dir }));
  const target = await open(to);
  const site = JSON.parse((await target.getConfig("hastack:site")).value) as { peers?: string[] };
  const all = names ?? [to, ...(site.peers ?? [])];
  return Promise.all(all.map(async (name) => ({ name, stack: name === to ? target : await open(name) })));
}

async function labStacks(): Promise<{ handles: SiteHandle[]; setRole: (s: SiteHandle, p: string, e: number) => Promise<void> }> {
  const lab = await import("../lab/sites");
  const handles = await Promise.all(lab.sites.map(async (s) => ({ name: s.name, stack: await lab.openSiteStack(s.name, lab.recordedRole()) })));
  return { handles, setRole: async (h, primarySite, epoch) => { lab.recordRole({ primarySite, epoch }); await lab.openSiteStack(h.name, { primarySite, epoch }); } };
}

async function main(): Promise<void> {
  const a = args(process.argv.slice(2));
  const { handles, setRole } = a.lab ? await labStacks() : { handles: await userStacks(a.to, a.dir, a.stacks), setRole: undefined };
  const report = a.cmd === "switchover" ? await switchover(handles, a.to, { setRole }) : await failover(handles, a.to, a.force, { setRole });
  console.log(JSON.stringify({ ...report, lines: undefined }));
}

main().catch((e) => { console.error(`${process.argv[2]}: ${e instanceof Error ? e.message : e}`); process.exit(1); });
