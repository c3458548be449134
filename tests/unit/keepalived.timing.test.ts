import { checkRules } from "../../components/common/validate";
import { formatAdvertInterval, masterDownSeconds, renderVrrpTimingLines, vrrpTimingRules } from "../../components/keepalived/timing";

const check = (version: unknown, advert: unknown) => () => checkRules(vrrpTimingRules("hastack:x", version, advert));

describe("VRRP timing", () => {
  it("writes advert_int without float noise", () => {
    expect(formatAdvertInterval(0.1 + 0.2)).toBe("0.3");
    expect(formatAdvertInterval(40.95)).toBe("40.95");
    expect(formatAdvertInterval(1)).toBe("1");
  });
  it("computes RFC 5798's master-down interval: 3 adverts plus the priority skew", () => {
    expect(masterDownSeconds({ vrrpVersion: 3, advertIntervalSeconds: 0.3 }, 100)).toBeCloseTo(0.9 + (156 / 256) * 0.3, 6);
    expect(masterDownSeconds({ vrrpVersion: 2, advertIntervalSeconds: 1 }, 190)).toBeCloseTo(3 + 66 / 256, 6);
  });
  it("accepts VRRPv3 from 0.1 to 40.95 s in centiseconds, and whole seconds with VRRPv2", () => {
    for (const a of [0.1, 0.25, 0.3, 1, 40.95]) expect(check(3, a)).not.toThrow();
    for (const a of [1, 255]) expect(check(2, a)).not.toThrow();
  });
  it("fails if the interval is below 0.1 s, above 40.95 s, finer than centiseconds, or fractional with VRRPv2", () => {
    expect(check(3, 0.09)).toThrow("Invalid hastack:x.advertIntervalSeconds: got 0.09; expected seconds 0.1..40.95 in steps of 0.01");
    expect(check(3, 40.96)).toThrow("got 40.96");
    expect(check(3, 0.305)).toThrow("got 0.305");
    expect(check(3, Number.NaN)).toThrow("hastack:x.advertIntervalSeconds");
    expect(check(2, 1.5)).toThrow("Invalid hastack:x.advertIntervalSeconds: got 1.5; expected whole seconds 1..255 with vrrpVersion 2");
    expect(check(2, 256)).toThrow("got 256");
  });
  it("fails if the version is neither 2 nor 3, before judging the interval", () => {
    expect(check(4, 1)).toThrow("Invalid hastack:x.vrrpVersion: got 4; expected 2 or 3");
  });
  it("writes authentication only with VRRPv2", () => {
    expect(renderVrrpTimingLines({ vrrpVersion: 3, advertIntervalSeconds: 0.3 }, "secret12", false)).toEqual(["    version 3", "    advert_int 0.3"]);
    expect(renderVrrpTimingLines({ vrrpVersion: 2, advertIntervalSeconds: 1 }, "secret12", true).join("\n")).toContain('auth_pass "secret12"');
    expect(renderVrrpTimingLines({ vrrpVersion: 2, advertIntervalSeconds: 1 }, "secret12", false).join("\n")).toContain("auth_pass secret12\n");
  });
});
