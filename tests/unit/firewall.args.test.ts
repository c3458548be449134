import { FirewallDefaults, isNetworkCidr, resolveFirewallSettings } from "../../components/firewall/args";

const fails = (raw: unknown, message: string) => expect(() => resolveFirewallSettings(raw)).toThrow(message);

describe("hastack:firewall settings", () => {
  it("is on with no operator sources when the section is absent or empty", () => {
    expect(resolveFirewallSettings(undefined)).toEqual({ enabled: FirewallDefaults.enabled, adminSources: [] });
    expect(resolveFirewallSettings({})).toEqual({ enabled: true, adminSources: [] });
  });

  it("keeps addresses and network CIDRs, once each, in config order", () => {
    expect(resolveFirewallSettings({ enabled: false, adminSources: ["10.213.7.1/32", "192.168.5.0/28", "10.0.0.7", "10.213.7.1/32"] }))
      .toEqual({ enabled: false, adminSources: ["10.213.7.1/32", "192.168.5.0/28", "10.0.0.7"] });
  });

  it("fails if the section is not an object", () => {
    fails(["10.0.0.1"], 'Invalid hastack:firewall: got ["10.0.0.1"]; expected an object such as {"adminSources": ["192.168.1.10/32"]}.');
  });

  it("fails if a key is unknown", () => {
    fails({ adminSource: ["10.0.0.1"] }, 'Invalid hastack:firewall.adminSource: got ["10.0.0.1"]; expected no such key; known keys are enabled, adminSources.');
  });

  it("fails if enabled is not a boolean", () => {
    fails({ enabled: "yes" }, 'Invalid hastack:firewall.enabled: got "yes"; expected true or false.');
  });

  it("fails if adminSources is not a list", () => {
    fails({ adminSources: "10.0.0.1" }, 'Invalid hastack:firewall.adminSources: got "10.0.0.1"; expected a list of IPv4 addresses or CIDRs.');
  });

  it("fails if an admin source is neither an IPv4 address nor a CIDR", () => {
    fails({ adminSources: ["10.0.0.1", "ops.example.com"] },
      'Invalid hastack:firewall.adminSources[1]: got "ops.example.com"; expected an IPv4 address such as 192.168.1.10 or a CIDR such as 192.168.1.0/28.');
    fails({ adminSources: ["10.0.0.0/33"] }, "Invalid hastack:firewall.adminSources[0]: got \"10.0.0.0/33\"");
  });

  it("fails if an admin source is a whole network (0.0.0.0/0, or wider than /16)", () => {
    fails({ adminSources: ["0.0.0.0/0"] },
      'Invalid hastack:firewall.adminSources[0]: got "0.0.0.0/0"; expected a prefix of /16 or longer (operator and monitoring machines, not a whole network such as 0.0.0.0/0).');
    fails({ adminSources: ["10.0.0.0/8"] }, 'Invalid hastack:firewall.adminSources[0]: got "10.0.0.0/8"; expected a prefix of /16 or longer');
    expect(resolveFirewallSettings({ adminSources: ["10.1.0.0/16"] }).adminSources).toEqual(["10.1.0.0/16"]);
  });

  it("fails if an admin CIDR has bits set beyond its prefix", () => {
    fails({ adminSources: ["10.213.7.1/24"] },
      'Invalid hastack:firewall.adminSources[0]: got "10.213.7.1/24"; expected a CIDR whose address has no bits set beyond its prefix, such as 192.168.1.0/28.');
  });

  it("tells network CIDRs from host-bit ones", () => {
    expect([isNetworkCidr("10.0.0.0/8"), isNetworkCidr("0.0.0.0/0"), isNetworkCidr("10.1.2.3/32"), isNetworkCidr("10.1.2.4/30"), isNetworkCidr("10.1.2.5/30")])
      .toEqual([true, true, true, true, false]);
  });
});
