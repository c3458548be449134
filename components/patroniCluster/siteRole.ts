// A site's role change on the hosts (pure rendering): the shipped script `site-role.sh`, its env file, and
// the commands `pulumi up` and the switchover/failover tools run with it. See site-role.sh for what it does.
import * as fs from "fs";
import * as path from "path";
import { HostSpec, shq } from "../common";
import { REST_AUTH_PATH, SOCKET_DIR, StandbySource, binDir, restUrl, standbyClusterBlock } from "./render";

/** Where the script and its settings live on every member. */
export const SITE_ROLE_PATH = "/usr/local/lib/hastack/site-role";
export const SITE_ENV_PATH = "/etc/patroni/hastack-site.env";

/** The script itself, as shipped in this folder. */
export function siteRoleScript(): string {
  return fs.readFileSync(path.join(__dirname, "site-role.sh"), "utf8");
}

export interface SiteEnvParams {
  readonly member: HostSpec;
  readonly restApiPort: number;
  readonly dataDir: string;
  readonly pgVersion: number;
  readonly pgPort: number;
  /** For the fence at Patroni's start: Patroni's scope (clusterName), etcd client port, this site's slot name. */
  readonly clusterName: string;
  readonly etcdClientPort: number;
  readonly slotName: string;
  /** The other deployed sites' members. @default [] (no fence) */
  readonly otherSites?: readonly { address: string; pgPort: number; restApiPort: number }[];
}

/** systemd drop-in: the fence runs as root (`+`) before every start of Patroni. */
export const FENCE_DROPIN_PATH = "/etc/systemd/system/patroni.service.d/hastack-site-fence.conf";
export function renderFenceDropIn(): string {
  return `# Managed by hastack (PatroniCluster): a site that another site has replaced as leader starts as its standby.\n[Service]\nExecStartPre=+${SITE_ROLE_PATH} fence\n`;
}

/** The script's settings: plain, validated values (addresses, ports, an absolute path), one per line. */
export function renderSiteEnv(p: SiteEnvParams): string {
  const vars: [string, string][] = [
    ["REST", restUrl(p.member, p.restApiPort)],
    ["DATA", p.dataDir],
    ["BIN", binDir(p.pgVersion)],
    ["PGPORT", String(p.pgPort)],
    ["SOCKET", SOCKET_DIR],
    ["AUTH", REST_AUTH_PATH],
    ["SCOPE", p.clusterName],
    ["NAMESPACE", "/service"],
    ["ETCD", `http://127.0.0.1:${p.etcdClientPort}`],
    ["SLOT", p.slotName],
    ["OTHER_SITES", memberRestUrls(p.otherSites ?? []).join(" ")],
    ["OTHER_PG", (p.otherSites ?? []).map((m) => m.address).join(",")],
    ["OTHER_PGPORT", String(p.otherSites?.[0]?.pgPort ?? p.pgPort)],
  ];
  return ["# Managed by hastack (PatroniCluster): settings of site-role.", ...vars.map(([k, v]) => `${k}=${shq(v)}`), ""].join("\n");
}

/** REST API URLs of another site's members, as the promote command takes them. */
export function memberRestUrls(members: readonly { address: string; restApiPort: number }[]): string[] {
  return members.map((m) => `http://${m.address}:${m.restApiPort}`);
}

/**
 * The command a member runs for its site's role on `pulumi up`: a standby site demotes (a no-op once it
 * is a standby cluster), a primary site promotes after checking the other sites (a no-op once it leads).
 * Stdin: the dynamic configuration JSON.
 */
export function siteRoleCommand(role: "primary" | "standby", otherSites: readonly string[], force = false): string {
  if (role === "standby") return `${SITE_ROLE_PATH} demote`;
  return [SITE_ROLE_PATH, "promote", ...(force ? ["--force"] : []), ...otherSites.map(shq)].join(" ");
}

/** The smallest PATCH that turns a leading cluster into a standby of `source` (the rest follows with `pulumi up`). */
export function demoteBody(source: StandbySource): string {
  return JSON.stringify({ standby_cluster: standbyClusterBlock(source), slots: null }) + "\n";
}

/** The smallest PATCH that makes a standby cluster lead, keeping one permanent slot per other site. */
export function promoteBody(slotNames: readonly string[]): string {
  return JSON.stringify({ standby_cluster: null, slots: slotNames.length ? Object.fromEntries(slotNames.map((n) => [n, { type: "physical" }])) : null }) + "\n";
}

/** One line of `site-role status`. */
export interface MemberStatus {
  readonly role: string;
  readonly state: string;
  readonly timeline: number;
  readonly position?: number;
  readonly received?: number;
  readonly paused: boolean;
  readonly readWrite: boolean;
  readonly standbyCluster: boolean;
}

export function parseStatus(stdout: string): MemberStatus {
  const line = stdout.trim().split("\n").pop() ?? "";
  const v = JSON.parse(line) as MemberStatus;
  if (typeof v.role !== "string" || typeof v.readWrite !== "boolean") throw new Error(`site-role status: unexpected answer ${line}`);
  return v;
}
