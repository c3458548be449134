// The lab datacenter as a stack config: the reference layout of lab/layout.json on nspawn VMs,
// secrets made offline once and kept in lab/.state (0600) so every run sees the same config.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ConfigMap } from "@pulumi/pulumi/automation";
import { offlineCertificates, offlinePasswords, secretLeaves } from "../engine/offline-secrets";

export const LAB = __dirname;
export const STATE = path.join(LAB, ".state");
export const layout = JSON.parse(fs.readFileSync(path.join(LAB, "layout.json"), "utf8")) as {
  bridge: string; subnet: string; hostAddress: string; vips: { proxy: string; nginx: string; redis: string };
  vms: { name: string; address: string; role: string }[];
};

export const byRole = (role: string) => layout.vms.filter((v) => v.role === role).map(({ name, address }) => ({ name, address }));

/** Build (once) the WorksPad test double the lab installs in place of the vendor package. */
export function workspadDouble(): string {
  const out = path.join(STATE, "pkg");
  const deb = path.join(out, "workspad-double_1.0_all.deb");
  execFileSync("bash", [path.join(LAB, "..", "tests", "workspad-double", "build.sh"), out], { stdio: ["ignore", "ignore", "inherit"] });
  return deb;
}

/** The hosts serving TLS, with the names their certificates carry. */
export function labTlsHosts(): { name: string; address: string; dnsNames?: string[] }[] {
  // nginx verifies WorksPad upstreams by the name "workspad" (NginxBalancer upstreamTlsName)
  return [...byRole("workspad").map((h) => ({ ...h, dnsNames: ["workspad"] })), ...byRole("nginx")];
}

export function secretsFile(): { passwords: Record<string, string>; certificates: unknown } {
  const f = path.join(STATE, "secrets.json");
  if (!fs.existsSync(f)) {
    const hosts = labTlsHosts();
    fs.mkdirSync(STATE, { recursive: true });
    fs.writeFileSync(f, JSON.stringify({ passwords: offlinePasswords(), certificates: offlineCertificates(hosts) }), { mode: 0o600 });
  }
  const s = JSON.parse(fs.readFileSync(f, "utf8"));
  // a password name added since the file was made gets a value too (kept from then on)
  const fresh = offlinePasswords() as Record<string, string>;
  const missing = Object.keys(fresh).filter((k) => s.passwords[k] === undefined);
  if (missing.length) {
    for (const k of missing) s.passwords[k] = fresh[k];
    fs.writeFileSync(f, JSON.stringify(s), { mode: 0o600 });
  }
  return s;
}

export interface LabOptions {
  /** Patroni synchronous_mode. @default false */
  readonly synchronousMode?: boolean;
  /** PgBouncer default_pool_size. @default 20 */
  readonly poolSize?: number;
  /** hastack:nginx.balanceMethod. @default "ipHash" (the component's default) */
  readonly balanceMethod?: "ipHash" | "remoteAddress";
  /** Both VIP pairs (PgBouncer, nginx) on VRRPv2 with 1 s adverts, the timing before VRRPv3: for the version-switch drill. @default false */
  readonly vrrpV2?: boolean;
  /** hastack:certificates in place of the lab's own (CA and data-protection rotations). @default the lab's offline certificates */
  readonly certificates?: Record<string, unknown>;
  /** The names of the WorksPad nodes to deploy, in layout order (the app tier's scale drill). @default every workspad VM */
  readonly workspadNodes?: readonly string[];
}

/** The lab stack's config; `opts` are the settings tests vary between runs. */
export function labConfig(opts: LabOptions = {}): ConfigMap {
  // hosts.json is written by up-vms.sh; VMs made through VMmanager (lab/vmmanager.ts) do not exist
  // yet when the config is built, and their keys are recorded at first contact instead
  const hostsFile = path.join(STATE, "hosts.json");
  const hosts = fs.existsSync(hostsFile) ? (JSON.parse(fs.readFileSync(hostsFile, "utf8")) as { vms: { name: string; address: string; hostKey?: string }[] }).vms : [];
  const hostKeys = Object.fromEntries(hosts.filter((h) => h.hostKey).map((h) => [h.address, h.hostKey!]));
  const s = secretsFile();
  const obj = (v: unknown) => ({ value: JSON.stringify(v) });
  const vrrp = opts.vrrpV2 ? { vrrpVersion: 2, advertIntervalSeconds: 1 } : {};
  return {
    "hastack:subnet": { value: layout.subnet },
    "hastack:sshPrivateKey": { value: fs.readFileSync(path.join(STATE, "id_ed25519"), "utf8"), secret: true },
    "hastack:ssh": obj({ user: "root", port: 22, hostKeys }),
    "hastack:postgres": obj({ nodes: byRole("postgres"), failoverProfile: "aggressive", synchronousMode: opts.synchronousMode ?? false }),
    "hastack:proxy": obj({ nodes: byRole("proxy"), vip: layout.vips.proxy, interface: "host0", defaultPoolSize: opts.poolSize ?? 20, ...vrrp }),
    "hastack:workspad": obj({ nodes: byRole("workspad").filter((h) => !opts.workspadNodes || opts.workspadNodes.includes(h.name)), packagePath: workspadDouble() }),
    // two balancers behind a VIP (the reference design has one nginx: a single point of failure)
    "hastack:nginx": obj({ nodes: byRole("nginx"), vip: layout.vips.nginx, interface: "host0", ...vrrp, ...(opts.balanceMethod ? { balanceMethod: opts.balanceMethod } : {}) }),
    "hastack:redis": obj({ enabled: true, nodes: byRole("redis"), vip: layout.vips.redis, interface: "host0", downAfterMs: 2000 }),
    // the tests and drills run on the lab host (the bridge address)
    "hastack:firewall": obj({ adminSources: [`${layout.hostAddress}/32`] }),
    ...secretLeaves("hastack:passwords", s.passwords),
    ...secretLeaves("hastack:certificates", opts.certificates ?? s.certificates),
  };
}
