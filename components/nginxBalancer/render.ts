import { BalanceMethod, ResolvedNginxBalancerSettings } from "./args";
import { renderKeepalivedConf } from "../keepalived";
import { shq } from "../common/shell";

/** One WorksPad node behind the balancer; WorksPad itself listens HTTPS. */
export interface Upstream {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/** Where the files live on a balancer host. */
export const NGINX_PATHS = {
  site: "/etc/nginx/sites-available/hastack.conf",
  siteLink: "/etc/nginx/sites-enabled/hastack.conf",
  defaultSiteLink: "/etc/nginx/sites-enabled/default",
  dir: "/etc/nginx/hastack",
  cert: "/etc/nginx/hastack/server.crt",
  key: "/etc/nginx/hastack/server.key",
  upstreamCa: "/etc/nginx/hastack/upstream-ca.crt",
  keepalived: "/etc/keepalived/keepalived.conf",
  /** keepalived's enable_script_security wants the script and its directories writable by root only. */
  keepalivedCheck: "/etc/keepalived/hastack-nginx-check.sh",
} as const;

export interface SiteFiles {
  readonly cert: string;
  readonly key: string;
  /** Present when the upstream certificates are verified against a CA. */
  readonly upstreamCa?: string;
}

export interface ListenOverride {
  /** Bind only this address (tests use 127.0.0.1); production listens on all, so the VIP works anywhere. */
  readonly address?: string;
  /** Port of the plain-HTTP redirect server. @default 80 */
  readonly httpPort?: number;
}

/** The upstream directive that keeps a client on one node; `consistent` (ketama) moves only a failed node's clients. */
export function balanceDirective(method: BalanceMethod, cookie?: string): string {
  switch (method) {
    case "ipHash": return "ip_hash;";
    case "remoteAddress": return "hash $remote_addr consistent;";
    case "cookie":
      if (!cookie || !/^[A-Za-z0-9_]+$/.test(cookie)) throw new Error(`balanceDirective: cookie name ${JSON.stringify(cookie)} is not an nginx variable name`);
      return `hash $cookie_${cookie} consistent;`;
  }
}

/** The nginx site: upstream with passive health checks, TLS termination, websocket pass-through. */
export function renderSite(s: ResolvedNginxBalancerSettings, upstreams: readonly Upstream[], files: SiteFiles,
  listen: ListenOverride = {}): string {
  const at = (port: number) => (listen.address ? `${listen.address}:${port}` : `${port}`);
  const httpsPort = s.listenPort === 443 ? "" : `:${s.listenPort}`;
  const lines = [
    "# Managed by hastack (NginxBalancer); changes are overwritten.",
    "",
    "# websocket requests get Connection: upgrade, all others Connection: close",
    "map $http_upgrade $connection_upgrade {",
    "    default upgrade;",
    "    ''      close;",
    "}",
    "",
    "upstream workspad {",
    "    # one client stays on one node (WorksPad keeps per-node session state)",
    `    ${balanceDirective(s.balanceMethod, s.balanceCookie)}`,
    ...upstreams.map((u) => `    server ${u.address}:${u.port} max_fails=${s.maxFails} fail_timeout=${s.failTimeoutSeconds}s; # ${u.name}`),
    "}",
    "",
  ];
  if (s.httpRedirect) {
    lines.push(
      "server {",
      `    listen ${at(listen.httpPort ?? 80)};`,
      `    server_name ${s.serverName};`,
      `    return 301 https://$host${httpsPort}$request_uri;`,
      "}",
      "",
    );
  }
  lines.push(
    "server {",
    `    listen ${at(s.listenPort)} ssl;`,
    `    server_name ${s.serverName};`,
    "",
    `    ssl_certificate ${files.cert};`,
    `    ssl_certificate_key ${files.key};`,
    `    ssl_protocols ${s.tlsProtocols.join(" ")};`,
    "    ssl_prefer_server_ciphers off;",
    "    ssl_session_cache shared:hastack:10m;",
    "    ssl_session_timeout 1d;",
    "",
    `    client_max_body_size ${s.clientMaxBodySize};`,
    "",
    "    location / {",
    "        proxy_pass https://workspad;",
    ...(files.upstreamCa
      ? [
        "        proxy_ssl_verify on;",
        `        proxy_ssl_trusted_certificate ${files.upstreamCa};`,
        "        proxy_ssl_verify_depth 3;",
        `        proxy_ssl_name ${s.upstreamTlsName};`,
        "        proxy_ssl_server_name on;",
      ]
      : ["        # no CA given for the WorksPad certificates: encrypted, but not verified", "        proxy_ssl_verify off;"]),
    "        proxy_ssl_session_reuse on;",
    "",
    "        proxy_http_version 1.1;",
    "        proxy_set_header Upgrade $http_upgrade;",
    "        proxy_set_header Connection $connection_upgrade;",
    "        proxy_set_header Host $host;",
    "        proxy_set_header X-Real-IP $remote_addr;",
    "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "        proxy_set_header X-Forwarded-Proto $scheme;",
    "        proxy_set_header X-Forwarded-Host $host;",
    "",
    `        proxy_connect_timeout ${s.proxyConnectTimeoutSeconds}s;`,
    `        proxy_read_timeout ${s.proxyReadTimeoutSeconds}s;`,
    `        proxy_send_timeout ${s.proxyReadTimeoutSeconds}s;`,
    "        proxy_next_upstream error timeout http_502 http_503;",
    "    }",
    "}",
    "",
  );
  return lines.join("\n");
}

/**
 * Validation run on the host with $NEW = the staged site: nginx -t on a copy of the real main config
 * whose sites-enabled include points at a temp dir holding the staged site and the other enabled sites
 * (minus the default site, which the deploy removes). The live file is untouched until this passes.
 */
export function renderSiteCheck(): string {
  return [
    "T=$(mktemp -d /tmp/hastack-nginx.XXXXXX)",
    "trap 'rm -rf \"$T\"' EXIT",
    "mkdir \"$T/sites\"",
    "for f in /etc/nginx/sites-enabled/*; do",
    "  [ -e \"$f\" ] || continue",
    "  case \"${f##*/}\" in default|hastack.conf) continue;; esac",
    "  cp -L \"$f\" \"$T/sites/\"",
    "done",
    "cp \"$NEW\" \"$T/sites/hastack.conf\"",
    "if ! grep -Eq '^[[:space:]]*include[[:space:]]+/etc/nginx/sites-enabled/\\*;' /etc/nginx/nginx.conf; then",
    "  echo 'nginx.conf does not include /etc/nginx/sites-enabled/*; the site cannot be checked in place' >&2; exit 1",
    "fi",
    "sed \"s#/etc/nginx/sites-enabled/\\*;#$T/sites/*;#\" /etc/nginx/nginx.conf > \"$T/nginx.conf\"",
    "nginx -t -c \"$T/nginx.conf\"",
  ].join("\n");
}

/** Any HTTP answer from the local HTTPS listener counts: nginx is up and terminating TLS. */
export function healthProbe(port: number): string {
  return `curl -sk -o /dev/null --max-time 3 https://127.0.0.1:${port}/`;
}

/**
 * Host name the VIP check sends (SNI and Host): the first server name, made concrete when it is a
 * wildcard; "localhost" for "_" (the site is then the only server on its port and takes any name).
 */
export function checkHostName(serverName: string): string {
  if (serverName === "_") return "localhost";
  const first = serverName.split(" ")[0];
  if (first.startsWith("*.")) return `check${first.slice(1)}`;
  if (first.startsWith(".")) return first.slice(1);
  if (first.endsWith(".*")) return `${first.slice(0, -2)}.local`;
  return first;
}

export interface BalancerCheckParams {
  readonly listenPort: number;
  readonly serverName: string;
  /** hastack:nginx.checkPath, requested through nginx. */
  readonly path: string;
  /** hastack:nginx.checkTimeoutSeconds: curl's limit for the whole request. */
  readonly timeoutSeconds: number;
}

/**
 * The VIP's health check (a file keepalived runs): an HTTPS request through the local nginx to a
 * WorksPad node, so a node whose nginx does not serve, or reaches no WorksPad node, gives up the VIP.
 * Any status a WorksPad node produced passes (404, 503 included): with the database slow or down both
 * balancers would otherwise drop the VIP at once, and clients would get no answer at all.
 */
export function renderBalancerCheck(p: BalancerCheckParams): string {
  const host = checkHostName(p.serverName);
  return [
    "#!/bin/sh",
    "# Managed by hastack: the nginx VIP stays only where the local nginx answers HTTPS and reaches a WorksPad node.",
    `code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time ${p.timeoutSeconds} --resolve ${shq(`${host}:${p.listenPort}:127.0.0.1`)} ${shq(`https://${host}:${p.listenPort}${p.path}`)})`,
    // 000: nginx did not answer; 502/504: nginx answered itself because no WorksPad node did
    "case \"$code\" in",
    "  502|504) exit 1 ;;",
    "  [1-5][0-9][0-9]) exit 0 ;;",
    "  *) exit 1 ;;",
    "esac",
    "",
  ].join("\n");
}

/** keepalived for node `index` of a 2-node balancer; the check is renderBalancerCheck's script. */
export function renderBalancerKeepalived(s: ResolvedNginxBalancerSettings, index: number, authPass: string): string {
  if (!s.vip) throw new Error("renderBalancerKeepalived needs a vip");
  const self = s.nodes[index];
  return renderKeepalivedConf({
    instance: "hastack_nginx",
    interface: s.interface,
    virtualRouterId: s.virtualRouterId,
    priority: 150 - 50 * index,
    selfAddress: self.address,
    peers: s.nodes.filter((_, i) => i !== index).map((n) => n.address),
    vip: s.vip,
    vipPrefix: s.vipPrefix,
    authPass,
    timing: { vrrpVersion: s.vrrpVersion, advertIntervalSeconds: s.advertIntervalSeconds },
    checkScript: NGINX_PATHS.keepalivedCheck,
    // curl enforces checkTimeoutSeconds itself; keepalived's own (whole-second) timeout only kills a check that
    // hangs past it. (An earlier 3 s curl limit with fall 2 took 5.4 s to give up the VIP after an upstream cut;
    // a 2 s limit on a path that queried the database failed both balancers at once on the loaded lab host.)
    checkIntervalSeconds: s.checkIntervalSeconds,
    checkTimeoutSeconds: Math.ceil(s.checkTimeoutSeconds) + 1,
    checkFall: s.checkFall,
    checkRise: s.checkRise,
  });
}

/**
 * What the upstreams serve right now, for renderTrustCheck: each upstream's certificate as nginx would get it (same
 * TLS name). An upstream that does not answer is skipped: it serves nothing nginx could fail on, and it gets its
 * certificate in the same up, after this trust is in place.
 */
export function renderServedUpstreamCerts(targets: readonly { address: string; port: number }[], tlsName: string): string {
  if (targets.length === 0) return ":";
  return [
    "i=0",
    `for t in ${targets.map((t) => shq(`${t.address}:${t.port}`)).join(" ")}; do`,
    "  i=$((i + 1))",
    `  timeout 5 openssl s_client -connect "$t" -servername ${shq(tlsName)} </dev/null 2>/dev/null | openssl x509 > "$tmp/$i.pem" 2>/dev/null || :`,
    `  printf 'upstream %s\\n%s\\n' "$t" "$tmp/$i.pem"`,
    "done",
  ].join("\n");
}

/** Reload nginx for a new trust bundle, only when it runs (a first deploy starts it later with the bundle in place). */
export const TRUST_RELOAD = "if systemctl is-active --quiet nginx; then nginx -t && systemctl reload nginx; fi";
