import { ConfigError } from "../../components/common/validate";
import { NginxBalancerDefaults, checkUpstreams, resolveNginxBalancerSettings } from "../../components/nginxBalancer/args";

const SUBNET = "10.213.7.0/24";
const one = { nodes: [{ name: "lb1", address: "10.213.7.31" }] };
const two = { nodes: [{ name: "lb1", address: "10.213.7.31" }, { name: "lb2", address: "10.213.7.32" }], vip: "10.213.7.60" };

function err(raw: unknown, others: string[] = []): string {
  try {
    resolveNginxBalancerSettings(raw, SUBNET, others);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("resolveNginxBalancerSettings", () => {
  it("defaults to VRRPv3 with 0.3 s adverts and a 0.8 s check every second", () => {
    expect(resolveNginxBalancerSettings(two, SUBNET)).toMatchObject({
      vrrpVersion: 3, advertIntervalSeconds: 0.3, checkIntervalSeconds: 1, checkTimeoutSeconds: 0.8, checkFall: 2, checkRise: 2 });
  });
  it("fails if the advert interval is not in centiseconds (VRRPv3)", () => {
    expect(err({ ...two, advertIntervalSeconds: 0.125 }))
      .toBe("Invalid hastack:nginx.advertIntervalSeconds: got 0.125; expected seconds 0.1..40.95 in steps of 0.01 (VRRPv3 counts centiseconds).");
  });
  it("fails if VRRPv2 is asked for sub-second adverts", () => {
    expect(err({ ...two, vrrpVersion: 2, advertIntervalSeconds: 0.5 }))
      .toBe("Invalid hastack:nginx.advertIntervalSeconds: got 0.5; expected whole seconds 1..255 with vrrpVersion 2 (sub-second adverts need vrrpVersion 3).");
  });
  it("fails if the check interval is not whole seconds (keepalived 2.2 refuses 0.5)", () => {
    expect(err({ ...two, checkIntervalSeconds: 0.5 }))
      .toBe("Invalid hastack:nginx.checkIntervalSeconds: got 0.5; expected whole seconds 1..60 (keepalived runs check scripts on whole seconds).");
  });
  it("fails if one check may last as long as the interval (keepalived would skip every other run)", () => {
    expect(err({ ...two, checkTimeoutSeconds: 1 }))
      .toBe("Invalid hastack:nginx.checkTimeoutSeconds: got 1; expected less than hastack:nginx.checkIntervalSeconds (1): keepalived skips a run while the previous one still runs.");
    expect(resolveNginxBalancerSettings({ ...two, checkIntervalSeconds: 2, checkTimeoutSeconds: 1.5 }, SUBNET).checkTimeoutSeconds).toBe(1.5);
  });
  it("fails if the check timeout is below 0.2 s or not in tenths", () => {
    expect(err({ ...two, checkTimeoutSeconds: 0.1 }))
      .toBe("Invalid hastack:nginx.checkTimeoutSeconds: got 0.1; expected seconds from 0.2 in steps of 0.1 (curl --max-time of one check request).");
    expect(err({ ...two, checkTimeoutSeconds: 0.75 })).toContain("hastack:nginx.checkTimeoutSeconds: got 0.75");
  });
  it("fails if checkFall or checkRise is out of 1..10", () => {
    expect(err({ ...two, checkFall: 0 })).toBe("Invalid hastack:nginx.checkFall: got 0; expected an integer 1..10.");
    expect(err({ ...two, checkRise: 11 })).toBe("Invalid hastack:nginx.checkRise: got 11; expected an integer 1..10.");
  });

  it("applies every default to a single node", () => {
    const r = resolveNginxBalancerSettings(one, SUBNET);
    expect(r).toEqual({ ...NginxBalancerDefaults, nodes: one.nodes, vip: undefined, vipPrefix: 24, tlsProtocols: ["TLSv1.2", "TLSv1.3"] });
  });
  it("accepts two nodes with a vip and keeps given values", () => {
    const r = resolveNginxBalancerSettings({ ...two, listenPort: 8443, serverName: "wp.example.org *.wp.example.org" }, SUBNET, ["10.213.7.11"]);
    expect(r.vip).toBe("10.213.7.60");
    expect(r.listenPort).toBe(8443);
    expect(r.serverName).toBe("wp.example.org *.wp.example.org");
  });

  it("fails if the settings are not an object", () => {
    expect(err("x")).toBe(`Invalid hastack:nginx: got "x"; expected an object with at least nodes.`);
  });
  it("fails if the subnet is not a CIDR", () => {
    expect(() => resolveNginxBalancerSettings(one, "10.0.0.0")).toThrow(`Invalid hastack:subnet: got "10.0.0.0"; expected an IPv4 CIDR such as 10.213.7.0/24.`);
  });
  it("fails if an unknown key is given", () => {
    expect(err({ ...one, listen_port: 1 })).toMatch(/^Invalid hastack:nginx\.listen_port: got 1; expected no such key; known keys are nodes, vip, interface/);
  });
  it("fails if nodes are missing", () => {
    expect(err({})).toBe("Invalid hastack:nginx.nodes: got nothing; expected a list of at least 1 {name, address} entries.");
  });
  it("fails if a node address is not IPv4", () => {
    expect(err({ nodes: [{ name: "lb1", address: "lb1.local" }] }))
      .toBe(`Invalid hastack:nginx.nodes[0].address: got "lb1.local"; expected an IPv4 address such as 192.168.1.130.`);
  });
  it("fails if there are more than 2 nodes", () => {
    const nodes = [31, 32, 33].map((n) => ({ name: `lb${n}`, address: `10.213.7.${n}` }));
    expect(err({ nodes, vip: "10.213.7.60" })).toBe("Invalid hastack:nginx.nodes: got 3; expected 1 node, or 2 nodes with a vip.");
  });
  it("fails if two nodes share a name", () => {
    expect(err({ ...two, nodes: [two.nodes[0], { name: "lb1", address: "10.213.7.32" }] }))
      .toBe(`Invalid hastack:nginx.nodes[1].name: got "lb1"; expected a name no other balancer node has.`);
  });
  it("fails if two nodes share an address", () => {
    expect(err({ ...two, nodes: [two.nodes[0], { name: "lb2", address: "10.213.7.31" }] }))
      .toBe(`Invalid hastack:nginx.nodes[1].address: got "10.213.7.31"; expected an address no other balancer node has.`);
  });
  it("fails if a node is outside the subnet", () => {
    expect(err({ nodes: [{ name: "lb1", address: "10.9.9.9" }] }))
      .toBe(`Invalid hastack:nginx.nodes[0].address: got "10.9.9.9"; expected an address inside the stack subnet 10.213.7.0/24.`);
  });
  it("fails if two nodes have no vip", () => {
    expect(err({ nodes: two.nodes })).toBe("Invalid hastack:nginx.vip: got nothing; expected an IPv4 address for the VIP (2 nodes need one).");
  });
  it("fails if a single node has a vip", () => {
    expect(err({ ...one, vip: "10.213.7.60" })).toBe(`Invalid hastack:nginx.vip: got "10.213.7.60"; expected nothing with a single node (a VIP needs 2 nodes).`);
  });
  it("fails if the vip is not IPv4", () => {
    expect(err({ ...two, vip: "10.213.7.600" })).toBe(`Invalid hastack:nginx.vip: got "10.213.7.600"; expected an IPv4 address such as 10.213.7.60.`);
  });
  it("fails if the vip is outside the subnet", () => {
    expect(err({ ...two, vip: "10.213.8.60" })).toBe(`Invalid hastack:nginx.vip: got "10.213.8.60"; expected an address inside the stack subnet 10.213.7.0/24.`);
  });
  it("fails if the vip is a balancer node's address", () => {
    expect(err({ ...two, vip: "10.213.7.32" })).toBe(`Invalid hastack:nginx.vip: got "10.213.7.32"; expected an address no host of the stack has.`);
  });
  it("fails if the vip is another host's address", () => {
    expect(err(two, ["10.213.7.60"])).toBe(`Invalid hastack:nginx.vip: got "10.213.7.60"; expected an address no host of the stack has.`);
  });
  it("fails if the interface name is not a Linux interface name", () => {
    expect(err({ ...one, interface: "eth0; reboot" }))
      .toBe(`Invalid hastack:nginx.interface: got "eth0; reboot"; expected a network interface name of 1..15 letters, digits and _.@- (not "." or "..").`);
  });
  it("fails if the virtual router id is out of range", () => {
    expect(err({ ...one, virtualRouterId: 256 })).toBe("Invalid hastack:nginx.virtualRouterId: got 256; expected an integer 1..255.");
  });
  it("fails if the listen port is not a port", () => {
    expect(err({ ...one, listenPort: 70000 })).toBe("Invalid hastack:nginx.listenPort: got 70000; expected a TCP port 1..65535.");
  });
  it("fails if httpRedirect is not a boolean", () => {
    expect(err({ ...one, httpRedirect: "yes" })).toBe(`Invalid hastack:nginx.httpRedirect: got "yes"; expected true or false.`);
  });
  it("fails if the listen port is 80 while port 80 redirects", () => {
    expect(err({ ...one, listenPort: 80 }))
      .toBe("Invalid hastack:nginx.listenPort: got 80; expected a port other than 80 while httpRedirect is on (port 80 redirects to HTTPS).");
  });
  it("fails if the server name would break the nginx config", () => {
    expect(err({ ...one, serverName: "a.org; return 200" }))
      .toBe(`Invalid hastack:nginx.serverName: got "a.org; return 200"; expected "_" or space-separated host names (letters, digits, '-', '_', dots), each optionally a wildcard *.example.com, .example.com or www.example.*.`);
  });
  it("fails if maxFails is negative", () => {
    expect(err({ ...one, maxFails: -1 })).toBe("Invalid hastack:nginx.maxFails: got -1; expected an integer 0..100 (0 turns passive checks off).");
  });
  it("fails if failTimeoutSeconds is zero", () => {
    expect(err({ ...one, failTimeoutSeconds: 0 })).toBe("Invalid hastack:nginx.failTimeoutSeconds: got 0; expected an integer 1..3600.");
  });
  it("fails if proxyReadTimeoutSeconds is not an integer", () => {
    expect(err({ ...one, proxyReadTimeoutSeconds: 1.5 })).toBe("Invalid hastack:nginx.proxyReadTimeoutSeconds: got 1.5; expected an integer 1..86400.");
  });
  it("fails if proxyConnectTimeoutSeconds exceeds nginx's 75 s cap", () => {
    expect(err({ ...one, proxyConnectTimeoutSeconds: 90 })).toBe("Invalid hastack:nginx.proxyConnectTimeoutSeconds: got 90; expected an integer 1..75.");
  });
  it("fails if clientMaxBodySize is not an nginx size", () => {
    expect(err({ ...one, clientMaxBodySize: "100 MB" }))
      .toBe(`Invalid hastack:nginx.clientMaxBodySize: got "100 MB"; expected an nginx size such as "100m" (digits, then optional k, m or g).`);
  });
  it("fails if upstreamTlsName is not a host name", () => {
    expect(err({ ...one, upstreamTlsName: "a b" })).toBe(`Invalid hastack:nginx.upstreamTlsName: got "a b"; expected a host name of letters, digits, '.' and '-'.`);
  });
  it("keeps clients by ip_hash unless told otherwise, and accepts the two hash methods", () => {
    expect(resolveNginxBalancerSettings(one, SUBNET).balanceMethod).toBe("ipHash");
    expect(resolveNginxBalancerSettings({ ...one, balanceMethod: "remoteAddress" }, SUBNET).balanceMethod).toBe("remoteAddress");
    const c = resolveNginxBalancerSettings({ ...one, balanceMethod: "cookie", balanceCookie: "wpnode" }, SUBNET);
    expect([c.balanceMethod, c.balanceCookie]).toEqual(["cookie", "wpnode"]);
  });
  it("fails if balanceMethod is not one nginx offers here", () => {
    expect(err({ ...one, balanceMethod: "least_conn" }))
      .toBe(`Invalid hastack:nginx.balanceMethod: got "least_conn"; expected one of "ipHash", "remoteAddress", "cookie".`);
  });
  it("fails if balanceMethod is cookie without a cookie name", () => {
    expect(err({ ...one, balanceMethod: "cookie" }))
      .toBe(`Invalid hastack:nginx.balanceCookie: got nothing; expected a cookie name when balanceMethod is "cookie".`);
  });
  it("fails if a cookie name is given without balanceMethod cookie", () => {
    expect(err({ ...one, balanceCookie: "wpnode" }))
      .toBe(`Invalid hastack:nginx.balanceCookie: got "wpnode"; expected nothing unless balanceMethod is "cookie".`);
  });
  it("fails if the check path could not go into the check script as a plain path", () => {
    expect(err({ ...two, checkPath: "/health?x='1'" }))
      .toBe(`Invalid hastack:nginx.checkPath: got "/health?x='1'"; expected a URL path starting with "/" of letters, digits and . _ ~ / - (no query).`);
  });
  it("fails if the cookie name is not an nginx variable name", () => {
    expect(err({ ...one, balanceMethod: "cookie", balanceCookie: "wp-node; ip_hash" }))
      .toBe(`Invalid hastack:nginx.balanceCookie: got "wp-node; ip_hash"; expected a cookie name of 1..64 letters, digits and '_' (nginx reads it as $cookie_<name>).`);
  });
});

describe("checkUpstreams", () => {
  const ok = { name: "wp1", address: "10.213.7.21", port: 4430 };
  it("accepts WorksPad nodes", () => expect(() => checkUpstreams([ok])).not.toThrow());
  it("fails if there is no upstream", () => {
    expect(() => checkUpstreams([])).toThrow("Invalid upstreams: got 0; expected at least one WorksPad node.");
  });
  it("fails if an upstream name is not a host name", () => {
    expect(() => checkUpstreams([{ ...ok, name: "WP 1" }]))
      .toThrow(`Invalid upstreams[0].name: got "WP 1"; expected a lower-case name of letters, digits and '-', starting with a letter.`);
  });
  it("fails if an upstream address is not IPv4", () => {
    expect(() => checkUpstreams([ok, { ...ok, address: "wp2" }])).toThrow(`Invalid upstreams[1].address: got "wp2"; expected an IPv4 address such as 10.213.7.21.`);
  });
  it("fails if an upstream port is not a port", () => {
    expect(() => checkUpstreams([{ ...ok, port: 0 }])).toThrow("Invalid upstreams[0].port: got 0; expected a TCP port 1..65535.");
  });
});

describe("hastack:nginx values nginx and keepalived would refuse or misread (issue 7 §4)", () => {
  it("fails if the VIP is the subnet's network address", () => {
    expect(err({ ...two, vip: "10.213.7.0" })).toBe(
      `Invalid hastack:nginx.vip: got "10.213.7.0"; expected a host address of 10.213.7.0/24, not its network (10.213.7.0) or broadcast (10.213.7.255) address.`);
  });
  it("fails if the VIP is the subnet's broadcast address", () => {
    expect(err({ ...two, vip: "10.213.7.255" })).toContain("not its network (10.213.7.0) or broadcast (10.213.7.255) address");
  });
  it.each(["*", "a*b.example.org", "a.*.example.org", "ex..org", "-a.org", "~^www\\d+$"])(
    "fails if serverName holds %s, a name or wildcard nginx does not match", (name) => {
      expect(err({ ...one, serverName: `ok.example.org ${name}` })).toContain("Invalid hastack:nginx.serverName");
    });
  it("accepts the wildcards nginx supports", () => {
    expect(() => resolveNginxBalancerSettings({ ...one, serverName: "*.example.org .example.net www.example.* a_b.local" }, SUBNET)).not.toThrow();
  });
  it("fails if the interface holds ':'", () => {
    expect(err({ ...two, interface: "eth0:0" })).toContain(`Invalid hastack:nginx.interface: got "eth0:0"`);
  });
});
