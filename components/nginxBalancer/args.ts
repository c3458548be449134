import { HostSpec } from "../common/host";
import { VRRP_TIMING_DEFAULTS, vrrpTimingRules } from "../keepalived/timing";
import {
  INTERFACE_TEXT, checkHosts, checkRules, checkSection, inSubnet, isIPv4, isInterfaceName, isPort, vipRules,
} from "../common/validate";

/** Stack config under `hastack:nginx`: the HTTPS balancer in front of the WorksPad nodes. */
export interface NginxBalancerSettings {
  /** Balancer hosts: 1, or 2 with a keepalived VIP (the first node is preferred for the VIP). */
  readonly nodes: HostSpec[];
  /** Floating IPv4 address clients connect to; required with 2 nodes (no default), inside the stack subnet, not any host's address. */
  readonly vip?: string;
  /** Network interface that carries the VIP (`host0` in the nspawn lab). @default "eth0" */
  readonly interface?: string;
  /** VRRP virtual router id, unique per L2 segment. @default 52 */
  readonly virtualRouterId?: number;
  /** HTTPS listen port (on all addresses, so the VIP works wherever it lands). @default 443 */
  readonly listenPort?: number;
  /** Also listen on port 80 and redirect every request to HTTPS. @default true */
  readonly httpRedirect?: boolean;
  /** nginx `server_name`: `_` (any) or space-separated host names. @default "_" */
  readonly serverName?: string;
  /** Failed attempts before an upstream is skipped for failTimeoutSeconds (passive health check). @default 3 */
  readonly maxFails?: number;
  /** Window for maxFails and how long a failed upstream is skipped. @default 10 */
  readonly failTimeoutSeconds?: number;
  /** Idle time allowed between two reads from an upstream; long, because websockets stay open. @default 3600 */
  readonly proxyReadTimeoutSeconds?: number;
  /** Time allowed to connect to an upstream before the next one is tried. @default 5 */
  readonly proxyConnectTimeoutSeconds?: number;
  /** Largest request body (nginx size syntax). @default "100m" */
  readonly clientMaxBodySize?: string;
  /** Name the WorksPad certificates carry, checked only when a CA for the upstreams is given. @default "workspad" */
  readonly upstreamTlsName?: string;
  /**
   * How a client is kept on one WorksPad node: `ipHash` (nginx `ip_hash`: the first three octets of the
   * client's IPv4 address, so a whole /24 or everyone behind one NAT shares a node), `remoteAddress`
   * (`hash $remote_addr consistent`: the full address), `cookie` (`hash $cookie_<balanceCookie> consistent`:
   * a cookie the application sets; requests without it all share one node). See README "Sessions".
   * @default "ipHash"
   */
  readonly balanceMethod?: "ipHash" | "remoteAddress" | "cookie";
  /** Cookie whose value picks the node; required with balanceMethod `cookie` (no default), refused otherwise. */
  readonly balanceCookie?: string;
  /**
   * Path the VIP's health check requests through the local nginx (with 2 nodes). Any answer a WorksPad
   * node gives passes, a 404 included; no answer, or nginx's own 502/504 (no node answered), fails. Pick
   * a path the application answers without its database: the check must not fail on both balancers at
   * once when the database is slow or down (a balancer cannot help then, and no VIP means no answer at all).
   * @default "/"
   */
  readonly checkPath?: string;
  /** VRRP protocol version of the VIP pair: 3 (sub-second adverts, no authentication) or 2 (whole seconds, clear-text auth_pass). @default 3 */
  readonly vrrpVersion?: 2 | 3;
  /** Seconds between the VIP holder's adverts; a crashed holder is replaced after 3 × this + skew. 0.1..40.95 in 0.01 steps (VRRPv3), whole 1..255 (VRRPv2). @default 0.3 */
  readonly advertIntervalSeconds?: number;
  /** Seconds between two runs of the VIP's HTTPS check (keepalived runs scripts on whole seconds). @default 1 */
  readonly checkIntervalSeconds?: number;
  /** Seconds one check request may take (curl --max-time) before it counts as failed; below checkIntervalSeconds, or keepalived skips the next run. @default 0.8 */
  readonly checkTimeoutSeconds?: number;
  /** Failed checks in a row before the node gives up the VIP (FAULT). @default 2 */
  readonly checkFall?: number;
  /** Passed checks in a row before the node may hold the VIP again. @default 2 */
  readonly checkRise?: number;
}

export const NginxBalancerDefaults = {
  interface: "eth0",
  virtualRouterId: 52,
  listenPort: 443,
  httpRedirect: true,
  serverName: "_",
  maxFails: 3,
  failTimeoutSeconds: 10,
  proxyReadTimeoutSeconds: 3600,
  proxyConnectTimeoutSeconds: 5,
  clientMaxBodySize: "100m",
  upstreamTlsName: "workspad",
  balanceMethod: "ipHash",
  checkPath: "/",
  vrrpVersion: VRRP_TIMING_DEFAULTS.vrrpVersion,
  advertIntervalSeconds: VRRP_TIMING_DEFAULTS.advertIntervalSeconds,
  // a dead upstream fails the check after 0.8 s; two in a row, one run a second: the VIP leaves 1.8–2.8 s after
  // the cut. A healthy check takes ~10–50 ms here, so 0.8 s leaves a wide margin on a loaded host.
  checkIntervalSeconds: 1,
  checkTimeoutSeconds: 0.8,
  checkFall: 2,
  checkRise: 2,
} as const;

export const BALANCE_METHODS = ["ipHash", "remoteAddress", "cookie"] as const;
export type BalanceMethod = typeof BALANCE_METHODS[number];

/** Fixed, not configurable: older protocols are off. */
export const TLS_PROTOCOLS = ["TLSv1.2", "TLSv1.3"] as const;

export interface ResolvedNginxBalancerSettings {
  readonly nodes: HostSpec[];
  readonly vip?: string;
  /** Prefix length of the stack subnet, used for the VIP address. */
  readonly vipPrefix: number;
  readonly interface: string;
  readonly virtualRouterId: number;
  readonly listenPort: number;
  readonly httpRedirect: boolean;
  readonly serverName: string;
  readonly maxFails: number;
  readonly failTimeoutSeconds: number;
  readonly proxyReadTimeoutSeconds: number;
  readonly proxyConnectTimeoutSeconds: number;
  readonly clientMaxBodySize: string;
  readonly upstreamTlsName: string;
  readonly balanceMethod: BalanceMethod;
  /** Set exactly when balanceMethod is `cookie`. */
  readonly balanceCookie?: string;
  readonly checkPath: string;
  readonly vrrpVersion: 2 | 3;
  readonly advertIntervalSeconds: number;
  readonly checkIntervalSeconds: number;
  readonly checkTimeoutSeconds: number;
  readonly checkFall: number;
  readonly checkRise: number;
  readonly tlsProtocols: readonly string[];
}

const KEY = "hastack:nginx";
const KNOWN = new Set(["nodes", "vip", ...Object.keys(NginxBalancerDefaults), "balanceCookie"]);

const isInt = (n: unknown, min: number, max: number): n is number =>
  typeof n === "number" && Number.isInteger(n) && n >= min && n <= max;
/** One DNS label: letters, digits, '-' and '_' (nginx matches Host literally), 1..63 characters. */
const LABEL = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?";
/**
 * server_name entries nginx matches: a host name, or a wildcard only where nginx supports one
 * (`*.example.com`, `.example.com`, `www.example.*`); a lone `*` is refused by `nginx -t`, and a `*`
 * inside a name never matches. `~` regexes are not offered (they would need quoting).
 * https://nginx.org/en/docs/http/server_names.html
 */
const SERVER_NAME = new RegExp(`^(?:(?:\\*\\.|\\.)?${LABEL}(?:\\.${LABEL})*|${LABEL}(?:\\.${LABEL})*\\.\\*)$`);
const isServerNames = (s: unknown): s is string =>
  typeof s === "string" && (s === "_" || (s.length <= 4096 && s.split(" ").every((n) => n.length <= 253 && SERVER_NAME.test(n))));
const isSize = (s: unknown): s is string => typeof s === "string" && /^[0-9]{1,9}[kKmMgG]?$/.test(s);

/**
 * Apply defaults and validate `hastack:nginx`. Pure; throws ConfigError before any resource exists.
 * `allHostAddresses` are the addresses of every host of the stack (the VIP must be none of them).
 */
export function resolveNginxBalancerSettings(raw: unknown, subnet: string, allHostAddresses: readonly string[] = []): ResolvedNginxBalancerSettings {
  const r = checkSection(KEY, raw, subnet, KNOWN, "an object with at least nodes");
  checkHosts(`${KEY}.nodes`, r.nodes, 1);
  const nodes = (r.nodes as HostSpec[]).map((h) => ({ name: h.name, address: h.address }));
  const s = { ...NginxBalancerDefaults, ...r } as Record<string, any>;

  checkRules([
    { field: `${KEY}.nodes`, given: nodes.length, ok: nodes.length <= 2, accepted: "1 node, or 2 nodes with a vip" },
    ...nodes.map((h, i) => ({ field: `${KEY}.nodes[${i}].name`, given: h.name, ok: nodes.findIndex((o) => o.name === h.name) === i,
      accepted: "a name no other balancer node has" })),
    ...nodes.map((h, i) => ({ field: `${KEY}.nodes[${i}].address`, given: h.address,
      ok: nodes.findIndex((o) => o.address === h.address) === i, accepted: "an address no other balancer node has" })),
    ...nodes.map((h, i) => ({ field: `${KEY}.nodes[${i}].address`, given: h.address, ok: inSubnet(h.address, subnet),
      accepted: `an address inside the stack subnet ${subnet}` })),
    { field: `${KEY}.vip`, given: s.vip, ok: nodes.length === 1 || s.vip !== undefined,
      accepted: "an IPv4 address for the VIP (2 nodes need one)" },
    { field: `${KEY}.vip`, given: s.vip, ok: nodes.length === 2 || s.vip === undefined,
      accepted: "nothing with a single node (a VIP needs 2 nodes)" },
  ]);
  if (s.vip !== undefined) {
    checkRules(vipRules(`${KEY}.vip`, s.vip, subnet, [...allHostAddresses, ...nodes.map((n) => n.address)], "10.213.7.60"));
  }
  checkRules([
    { field: `${KEY}.interface`, given: s.interface, ok: isInterfaceName(s.interface),
      accepted: INTERFACE_TEXT },
    { field: `${KEY}.virtualRouterId`, given: s.virtualRouterId, ok: isInt(s.virtualRouterId, 1, 255), accepted: "an integer 1..255" },
    { field: `${KEY}.listenPort`, given: s.listenPort, ok: isPort(s.listenPort), accepted: "a TCP port 1..65535" },
    { field: `${KEY}.httpRedirect`, given: s.httpRedirect, ok: typeof s.httpRedirect === "boolean", accepted: "true or false" },
  ]);
  checkRules([
    { field: `${KEY}.listenPort`, given: s.listenPort, ok: !(s.httpRedirect && s.listenPort === 80),
      accepted: "a port other than 80 while httpRedirect is on (port 80 redirects to HTTPS)" },
    { field: `${KEY}.serverName`, given: s.serverName, ok: isServerNames(s.serverName),
      accepted: `"_" or space-separated host names (letters, digits, '-', '_', dots), each optionally a wildcard *.example.com, .example.com or www.example.*` },
    { field: `${KEY}.maxFails`, given: s.maxFails, ok: isInt(s.maxFails, 0, 100), accepted: "an integer 0..100 (0 turns passive checks off)" },
    { field: `${KEY}.failTimeoutSeconds`, given: s.failTimeoutSeconds, ok: isInt(s.failTimeoutSeconds, 1, 3600), accepted: "an integer 1..3600" },
    { field: `${KEY}.proxyReadTimeoutSeconds`, given: s.proxyReadTimeoutSeconds, ok: isInt(s.proxyReadTimeoutSeconds, 1, 86400),
      accepted: "an integer 1..86400" },
    // nginx caps the connect timeout at 75 s
    { field: `${KEY}.proxyConnectTimeoutSeconds`, given: s.proxyConnectTimeoutSeconds, ok: isInt(s.proxyConnectTimeoutSeconds, 1, 75),
      accepted: "an integer 1..75" },
    { field: `${KEY}.clientMaxBodySize`, given: s.clientMaxBodySize, ok: isSize(s.clientMaxBodySize),
      accepted: `an nginx size such as "100m" (digits, then optional k, m or g)` },
    { field: `${KEY}.upstreamTlsName`, given: s.upstreamTlsName,
      ok: typeof s.upstreamTlsName === "string" && /^[A-Za-z0-9.-]{1,253}$/.test(s.upstreamTlsName),
      accepted: "a host name of letters, digits, '.' and '-'" },
    { field: `${KEY}.balanceMethod`, given: s.balanceMethod, ok: (BALANCE_METHODS as readonly unknown[]).includes(s.balanceMethod),
      accepted: `one of ${BALANCE_METHODS.map((m) => `"${m}"`).join(", ")}` },
    { field: `${KEY}.checkPath`, given: s.checkPath, ok: typeof s.checkPath === "string" && /^\/[A-Za-z0-9._~\/-]{0,255}$/.test(s.checkPath),
      accepted: `a URL path starting with "/" of letters, digits and . _ ~ / - (no query)` },
  ]);
  checkRules([
    { field: `${KEY}.balanceCookie`, given: s.balanceCookie, ok: s.balanceMethod !== "cookie" || s.balanceCookie !== undefined,
      accepted: `a cookie name when balanceMethod is "cookie"` },
    { field: `${KEY}.balanceCookie`, given: s.balanceCookie, ok: s.balanceMethod === "cookie" || s.balanceCookie === undefined,
      accepted: `nothing unless balanceMethod is "cookie"` },
    // nginx exposes a cookie as $cookie_<name>, and variable names are letters, digits and '_' only
    { field: `${KEY}.balanceCookie`, given: s.balanceCookie,
      ok: s.balanceCookie === undefined || (typeof s.balanceCookie === "string" && /^[A-Za-z0-9_]{1,64}$/.test(s.balanceCookie)),
      accepted: "a cookie name of 1..64 letters, digits and '_' (nginx reads it as $cookie_<name>)" },
  ]);
  checkRules(vrrpTimingRules(KEY, s.vrrpVersion, s.advertIntervalSeconds));
  const t = s.checkTimeoutSeconds;
  checkRules([
    // keepalived 2.2 reads a vrrp_script interval as whole seconds ("invalid number '0.5'")
    { field: `${KEY}.checkIntervalSeconds`, given: s.checkIntervalSeconds, ok: isInt(s.checkIntervalSeconds, 1, 60),
      accepted: "whole seconds 1..60 (keepalived runs check scripts on whole seconds)" },
    { field: `${KEY}.checkTimeoutSeconds`, given: t,
      ok: typeof t === "number" && Number.isFinite(t) && t >= 0.2 && Math.abs(t * 10 - Math.round(t * 10)) < 1e-6,
      accepted: "seconds from 0.2 in steps of 0.1 (curl --max-time of one check request)" },
    // keepalived skips a run while the previous one still runs: a request as long as the interval halves the check rate
    { field: `${KEY}.checkTimeoutSeconds`, given: t, ok: () => t < s.checkIntervalSeconds,
      accepted: () => `less than ${KEY}.checkIntervalSeconds (${s.checkIntervalSeconds}): keepalived skips a run while the previous one still runs` },
    { field: `${KEY}.checkFall`, given: s.checkFall, ok: isInt(s.checkFall, 1, 10), accepted: "an integer 1..10" },
    { field: `${KEY}.checkRise`, given: s.checkRise, ok: isInt(s.checkRise, 1, 10), accepted: "an integer 1..10" },
  ]);

  return {
    nodes,
    vip: s.vip,
    vipPrefix: Number(subnet.split("/")[1]),
    interface: s.interface,
    virtualRouterId: s.virtualRouterId,
    listenPort: s.listenPort,
    httpRedirect: s.httpRedirect,
    serverName: s.serverName,
    maxFails: s.maxFails,
    failTimeoutSeconds: s.failTimeoutSeconds,
    proxyReadTimeoutSeconds: s.proxyReadTimeoutSeconds,
    proxyConnectTimeoutSeconds: s.proxyConnectTimeoutSeconds,
    clientMaxBodySize: s.clientMaxBodySize,
    upstreamTlsName: s.upstreamTlsName,
    balanceMethod: s.balanceMethod,
    ...(s.balanceCookie !== undefined ? { balanceCookie: s.balanceCookie } : {}),
    checkPath: s.checkPath,
    vrrpVersion: s.vrrpVersion,
    advertIntervalSeconds: s.advertIntervalSeconds,
    checkIntervalSeconds: s.checkIntervalSeconds,
    checkTimeoutSeconds: s.checkTimeoutSeconds,
    checkFall: s.checkFall,
    checkRise: s.checkRise,
    tlsProtocols: TLS_PROTOCOLS,
  };
}

/**
 * Check the upstream list once its Outputs resolve (WorksPad node addresses come from another component).
 * Field names are relative to the component's `upstreams` argument.
 */
export function checkUpstreams(list: readonly { name: unknown; address: unknown; port: unknown }[]): void {
  checkRules([{ field: "upstreams", given: list.length, ok: list.length >= 1, accepted: "at least one WorksPad node" }]);
  list.forEach((u, i) => checkRules([
    { field: `upstreams[${i}].name`, given: u.name, ok: typeof u.name === "string" && /^[a-z][a-z0-9-]{0,62}$/.test(u.name),
      accepted: "a lower-case name of letters, digits and '-', starting with a letter" },
    { field: `upstreams[${i}].address`, given: u.address, ok: isIPv4(u.address), accepted: "an IPv4 address such as 10.213.7.21" },
    { field: `upstreams[${i}].port`, given: u.port, ok: isPort(u.port), accepted: "a TCP port 1..65535" },
  ]));
}
