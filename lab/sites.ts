// The two-site lab (lab/sites-layout.json, booted by lab/sites.sh) as two stacks, dc1 and dc2, in one file
// backend, so dc2 reads dc1 as `organization/hastack/dc1`. Each site has its own offline secrets;
// the standby site takes the database role passwords from the primary's contract.
// `npm run lab:sites` = boot the sites + `pulumi up` dc1 then dc2.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ConfigMap, Stack } from "@pulumi/pulumi/automation";
import { changes, openStack, REPO } from "../engine/automation";
import { offlineCertificates, offlinePasswords, secretLeaves } from "../engine/offline-secrets";

export const LAB = __dirname;
export const SITES_STATE = path.join(LAB, ".sites-state");
export const SITES_ENGINE = { backendDir: path.join(SITES_STATE, "pulumi"), passphrase: "hastack-sites-lab" };

export interface LabSite {
  name: string; bridge: string; subnet: string; hostAddress: string; routerAddress: string;
  vips: { proxy: string };
  vms: { name: string; address: string; role: string }[];
}
export const sites = (JSON.parse(fs.readFileSync(path.join(LAB, "sites-layout.json"), "utf8")) as { sites: LabSite[] }).sites;
export const siteOf = (name: string): LabSite => sites.find((s) => s.name === name)!;
export const hostsOf = (site: string, role: string) => siteOf(site).vms.filter((v) => v.role === role).map(({ name, address }) => ({ name, address }));

/** Env for lab/*.sh so they address the sites lab, not the single-site one. */
export const SITES_ENV = {
  ...process.env,
  HASTACK_LAB_STATE: SITES_STATE, HASTACK_LAB_ROOT: "/var/lib/hastack-sites", HASTACK_LAB_CGROUP: "hastack-sites",
  HASTACK_LAB_SUBNET_BASES: sites.map((s) => s.subnet.replace(/0\/24$/, "")).join(" "),
};

export function sitesUp(): void { execFileSync("bash", [path.join(LAB, "sites.sh"), "up"], { stdio: "inherit" }); }
export function sitesDown(): void { execFileSync("bash", [path.join(LAB, "sites.sh"), "down"], { stdio: "inherit" }); }

/** The database role passwords, the same in every site (the sites share one database). */
const SHARED = ["postgresSuperuser", "postgresReplication", "postgresRewind", "postgresApp"];

function secretsOf(site: string): { passwords: Record<string, string>; certificates: Record<string, string> } {
  const shared = path.join(SITES_STATE, "secrets-shared.json");
  if (!fs.existsSync(shared)) {
    const all = offlinePasswords() as Record<string, string>;
    fs.writeFileSync(shared, JSON.stringify(Object.fromEntries(SHARED.map((k) => [k, all[k]]))), { mode: 0o600 });
  }
  const f = path.join(SITES_STATE, `secrets-${site}.json`);
  if (!fs.existsSync(f)) {
    // no app tier in the sites lab: the CA only (the stack PKI signs nothing else)
    const c = offlineCertificates([]) as Record<string, unknown>;
    fs.writeFileSync(f, JSON.stringify({ passwords: offlinePasswords(), certificates: { caCertPem: c.caCertPem, caKeyPem: c.caKeyPem } }), { mode: 0o600 });
  }
  const own = JSON.parse(fs.readFileSync(f, "utf8"));
  return { ...own, passwords: { ...own.passwords, ...JSON.parse(fs.readFileSync(shared, "utf8")) } };
}

export interface SiteOptions {
  /** @default "dc1" */
  readonly primarySite?: string;
  /** @default 1 */
  readonly epoch?: number;
}

/** PgBouncer's pool mode for the lab's sites, when HASTACK_SITES_POOL_MODE names one (else the component's default). */
export function poolMode(): string | undefined {
  return process.env.HASTACK_SITES_POOL_MODE || undefined;
}

/** Stack config of one lab site: PostgreSQL ×3 and a proxy pair + VIP, routed to the other site. */
export function siteConfig(name: string, o: SiteOptions = {}): ConfigMap {
  const s = siteOf(name);
  const others = sites.filter((x) => x.name !== name);
  const hosts = (JSON.parse(fs.readFileSync(path.join(SITES_STATE, "hosts.json"), "utf8")) as { vms: { name: string; address: string; hostKey: string }[] }).vms;
  const mine = new Set(s.vms.map((v) => v.address));
  const hostKeys = Object.fromEntries(hosts.filter((h) => mine.has(h.address)).map((h) => [h.address, h.hostKey]));
  const sec = secretsOf(name);
  const obj = (v: unknown) => ({ value: JSON.stringify(v) });
  return {
    "hastack:subnet": { value: s.subnet },
    "hastack:sshPrivateKey": { value: fs.readFileSync(path.join(SITES_STATE, "id_ed25519"), "utf8"), secret: true },
    "hastack:ssh": obj({ user: "root", port: 22, hostKeys }),
    "hastack:site": obj({ name, peers: others.map((x) => x.name), primarySite: o.primarySite ?? "dc1", epoch: o.epoch ?? 1, remoteSubnets: others.map((x) => x.subnet) }),
    "hastack:postgres": obj({ nodes: hostsOf(name, "postgres"), failoverProfile: "aggressive" }),
    // HASTACK_SITES_POOL_MODE: the bench compares session pooling (the default) with transaction pooling
    "hastack:proxy": obj({ nodes: hostsOf(name, "proxy"), vip: s.vips.proxy, interface: "host0", ...(poolMode() ? { poolMode: poolMode() } : {}) }),
    "hastack:redis": obj({ enabled: false }),
    // the tests run on the lab host, which has an address on each site's bridge
    "hastack:firewall": obj({ adminSources: [`${s.hostAddress}/32`] }),
    ...secretLeaves("hastack:passwords", sec.passwords),
    ...secretLeaves("hastack:certificates", sec.certificates),
  };
}

/** The roles the lab's stacks were last given (a switchover records them here, as a user commits config). */
export function recordedRole(): SiteOptions {
  const f = path.join(SITES_STATE, "role.json");
  return fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, "utf8")) : {};
}
export function recordRole(o: SiteOptions): void {
  fs.writeFileSync(path.join(SITES_STATE, "role.json"), JSON.stringify(o));
}

/**
 * Both stacks live in one backend and one project directory (Pulumi.yaml) under lab/.sites-state. The
 * role is `o`, else the recorded one, else dc1 leading at epoch 1.
 */
export function openSiteStack(name: string, o: SiteOptions = {}): Promise<Stack> {
  const workDir = path.join(SITES_STATE, "project");
  fs.mkdirSync(workDir, { recursive: true });
  fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(workDir, "Pulumi.yaml"));
  return openStack({ stackName: name, config: siteConfig(name, { ...recordedRole(), ...o }), workDir }, SITES_ENGINE);
}

async function main(): Promise<void> {
  sitesUp();
  // every peer stack must exist before any site references it (a never-deployed peer has no outputs)
  const stacks = [];
  for (const s of sites) stacks.push(await openSiteStack(s.name));
  for (const st of stacks) {
    const t0 = Date.now();
    const up = await st.up({ onOutput: (x) => process.stdout.write(x) });
    console.log(`\nsites: ${st.name} up ${up.summary.result} in ${((Date.now() - t0) / 1000).toFixed(1)}s; changes ${JSON.stringify(changes(up.summary.resourceChanges))}`);
  }
}

/** `ts-node lab/sites.ts preview SITE PRIMARY EPOCH`: a preview with another role config (in its own process). */
async function previewWith(site: string, primarySite: string, epoch: number): Promise<void> {
  const st = await openSiteStack(site, { primarySite, epoch });
  const pv = await st.preview();
  console.log(`sites: preview of ${site} with primarySite=${primarySite} epoch=${epoch}: ${JSON.stringify(changes(pv.changeSummary))}`);
}

if (require.main === module) {
  const [cmd, ...a] = process.argv.slice(2);
  (cmd === "preview" ? previewWith(a[0], a[1], Number(a[2])) : main())
    .catch((e) => { console.error(`sites: ${e instanceof Error ? e.message : e}`); process.exit(1); });
}
