import { resolveNginxBalancerSettings } from "../../components/nginxBalancer/args";
import {
  NGINX_PATHS, balanceDirective, checkHostName, healthProbe, renderBalancerCheck, renderBalancerKeepalived, renderSite, renderSiteCheck,
} from "../../components/nginxBalancer/render";
import { vrrpAuthPass } from "../../components/keepalived";

const SUBNET = "10.213.7.0/24";
const SPECIAL = `jhYg/=\\F'"$`;
const upstreams = [
  { name: "wp1", address: "10.213.7.21", port: 4430 },
  { name: "wp2", address: "10.213.7.22", port: 4430 },
  { name: "wp3", address: "10.213.7.23", port: 4430 },
];
const single = resolveNginxBalancerSettings({ nodes: [{ name: "lb1", address: "10.213.7.31" }] }, SUBNET);
const pair = resolveNginxBalancerSettings({
  nodes: [{ name: "lb1", address: "10.213.7.31" }, { name: "lb2", address: "10.213.7.32" }],
  vip: "10.213.7.60", listenPort: 8443, httpRedirect: false, serverName: "wp.example.org", maxFails: 5,
}, SUBNET);
const files = { cert: NGINX_PATHS.cert, key: NGINX_PATHS.key };

describe("nginx site", () => {
  it("single node, defaults, upstream certificates not verified", () => {
    const site = renderSite(single, upstreams, files);
    expect(site).toMatchSnapshot();
    expect(site).toContain("ip_hash;");
    expect(site).toContain("server 10.213.7.22:4430 max_fails=3 fail_timeout=10s; # wp2");
    expect(site).toContain("ssl_protocols TLSv1.2 TLSv1.3;");
    expect(site).toContain("proxy_pass https://workspad;");
    expect(site).toContain("proxy_ssl_verify off;");
    expect(site).toContain("return 301 https://$host$request_uri;");
    expect(site).toContain("proxy_read_timeout 3600s;");
    expect(site).toContain("proxy_next_upstream error timeout http_502 http_503;");
    expect(site).toMatch(/map \$http_upgrade \$connection_upgrade/);
  });
  it("pair on 8443 without redirect, upstream certificates verified against the CA", () => {
    const site = renderSite(pair, upstreams, { ...files, upstreamCa: NGINX_PATHS.upstreamCa });
    expect(site).toMatchSnapshot();
    expect(site).toContain(`proxy_ssl_trusted_certificate ${NGINX_PATHS.upstreamCa};`);
    expect(site).toContain("proxy_ssl_verify on;");
    expect(site).not.toContain("listen 80;");
  });
  it("redirect keeps a non-default HTTPS port", () => {
    const s = resolveNginxBalancerSettings({ nodes: single.nodes, listenPort: 8443 }, SUBNET);
    expect(renderSite(s, upstreams, files)).toContain("return 301 https://$host:8443$request_uri;");
  });
  it("loopback override binds only the given address (used by daemon tests)", () => {
    const site = renderSite(single, upstreams, files, { address: "127.0.0.1", httpPort: 18080 });
    expect(site).toContain("listen 127.0.0.1:443 ssl;");
    expect(site).toContain("listen 127.0.0.1:18080;");
  });
  it.each([["ipHash", undefined, "ip_hash;"], ["remoteAddress", undefined, "hash $remote_addr consistent;"],
    ["cookie", "wpnode", "hash $cookie_wpnode consistent;"]] as const)("balanceMethod %s renders %s %s", (method, cookie, line) => {
    expect(balanceDirective(method, cookie)).toBe(line);
    const s = resolveNginxBalancerSettings({ nodes: single.nodes, balanceMethod: method, ...(cookie ? { balanceCookie: cookie } : {}) }, SUBNET);
    expect(renderSite(s, upstreams, files)).toContain(`    ${line}\n`);
  });
  it("refuses a cookie name that is not an nginx variable name even past validation", () => {
    expect(() => balanceDirective("cookie", "a;b")).toThrow("not an nginx variable name");
  });
  it("staged check script", () => {
    expect(renderSiteCheck()).toMatchSnapshot();
  });
  it("health probe is a real HTTPS request", () => {
    expect(healthProbe(443)).toBe("curl -sk -o /dev/null --max-time 3 https://127.0.0.1:443/");
  });
});

describe("keepalived for the balancer pair", () => {
  it.each([0, 1])("node %i with the special password: VRRPv3 by default, so no auth_pass at all", (i) => {
    const conf = renderBalancerKeepalived(pair, i, SPECIAL);
    expect(conf).toMatchSnapshot();
    expect(conf).not.toContain(SPECIAL);
    expect(conf).not.toContain("auth_pass");
    expect(conf).toContain("    version 3\n    advert_int 0.3\n");
    expect(conf).toContain(`script "${NGINX_PATHS.keepalivedCheck}"`);
    // keepalived's own timeout is whole seconds above curl's 0.8 s; it only kills a check hung past curl's limit
    expect(conf).toMatch(/interval 1\n\s+timeout 2\n\s+fall 2\n\s+rise 2/);
    expect(conf).toContain("10.213.7.60/24 dev eth0");
  });
  it("VRRPv2 writes whole-second adverts and the derived auth_pass; the check settings reach vrrp_script", () => {
    const v2 = { ...pair, vrrpVersion: 2 as const, advertIntervalSeconds: 2, checkIntervalSeconds: 3, checkTimeoutSeconds: 2.5, checkFall: 3, checkRise: 4 };
    const conf = renderBalancerKeepalived(v2, 0, SPECIAL);
    expect(conf).toContain(`    version 2\n    advert_int 2\n    authentication {\n        auth_type PASS\n        auth_pass ${vrrpAuthPass(SPECIAL)}\n    }\n`);
    expect(conf).toMatch(/interval 3\n\s+timeout 4\n\s+fall 3\n\s+rise 4/);
  });
  it("auth_pass is 8 safe characters that depend on the whole secret", () => {
    expect(vrrpAuthPass(SPECIAL)).toMatch(/^[0-9a-f]{8}$/);
    expect(vrrpAuthPass("abcdefgh1")).not.toBe(vrrpAuthPass("abcdefgh2"));
  });
  it("the VIP check requests the health path through the local nginx with the site's name, and fails on 000, 502 and 504", () => {
    const check = renderBalancerCheck({ listenPort: 8443, serverName: pair.serverName, path: "/health", timeoutSeconds: 0.8 });
    expect(check).toMatchSnapshot();
    expect(check).toContain("--resolve 'wp.example.org:8443:127.0.0.1' 'https://wp.example.org:8443/health'");
    expect(check).toContain("502|504) exit 1 ;;");
    expect(check).toContain("--max-time 0.8 ");
  });
  it.each([["_", "localhost"], ["wp.example.org", "wp.example.org"], ["*.example.org a.org", "check.example.org"],
    [".example.net", "example.net"], ["www.example.*", "www.example.local"]])("checks server_name %s as %s", (names, host) => {
    expect(checkHostName(names)).toBe(host);
  });
  it("refuses a single node without vip", () => {
    expect(() => renderBalancerKeepalived(single, 0, "x")).toThrow("needs a vip");
  });
});
