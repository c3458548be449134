import { resolveRedisSentinelGroupSettings } from "../../components/redisSentinelGroup/args";
import { sentinelAuthPass,
  MASTER_PLACEHOLDER, redisQuote, renderDiscoverMaster, renderHaproxyCfg, renderHealthScript, renderKeepalivedCheck, renderRedisApplyScript,
  renderRedisMain, renderRedisMainScript, renderRedisManaged, renderRedisManagedCheck, renderRedisKeepalived, renderSentinelConf,
  renderSentinelScript, renderSentinelSetScript, respAuthHex,
} from "../../components/redisSentinelGroup/render";

const SUBNET = "10.213.7.0/24";
const SPECIAL = `jhYg/=\\F'"$`;
const NODES = [41, 42, 43].map((n) => ({ name: `redis${n - 40}`, address: `10.213.7.${n}` }));
const s = resolveRedisSentinelGroupSettings({ enabled: true, nodes: NODES }, SUBNET)!;
const tuned = resolveRedisSentinelGroupSettings({ enabled: true, nodes: NODES, maxmemory: "512mb", vip: "10.213.7.70", quorum: 3 }, SUBNET)!;

describe("redis.conf quoting", () => {
  it("escapes the special password for Redis' config parser", () => {
    expect(redisQuote(SPECIAL)).toBe(`"jhYg/=\\\\F'\\"$"`);
    expect(redisQuote("a\nb é")).toBe(`"a\\x0ab \\xc3\\xa9"`);
  });
});

describe("Redis files", () => {
  it.each([["plain", "s3cret"], ["special", SPECIAL]])("hastack.conf with the %s password", (_, pw) => {
    expect(renderRedisManaged(s, NODES[1], pw)).toMatchSnapshot();
  });
  it("hastack.conf with maxmemory", () => {
    expect(renderRedisManaged(tuned, NODES[0], "pw")).toContain("maxmemory 512mb");
  });
  it("redis.conf for a master and a replica", () => {
    expect(renderRedisMain(undefined, 6379)).toMatchSnapshot();
    expect(renderRedisMain("10.213.7.41", 6379)).toMatchSnapshot();
  });
  it("write-once redis.conf script discovers the master from the Sentinels", () => {
    const script = renderRedisMainScript(s, NODES[1]);
    expect(script).toMatchSnapshot();
    expect(script.split("\n")[0]).toContain("echo kept; exit 0");
  });
  it("apply script, staged check", () => {
    expect(renderRedisApplyScript()).toMatchSnapshot();
    expect(renderRedisManagedCheck()).toMatchSnapshot();
  });
});

describe("Sentinel files", () => {
  it.each([["plain", "s3cret"], ["special", SPECIAL]])("sentinel.conf with the %s password", (_, pw) => {
    const conf = renderSentinelConf(s, NODES[2], pw, MASTER_PLACEHOLDER);
    expect(conf).toMatchSnapshot();
    expect(conf).toContain(`sentinel monitor hastack ${MASTER_PLACEHOLDER} 6379 2`);
    // Sentinel logs in as its own ACL user with a derived hex password (Sentinel rewrites auth-pass unquoted)
    expect(conf).toContain("sentinel auth-user hastack hastack-sentinel");
    expect(conf).toContain(`sentinel auth-pass hastack ${sentinelAuthPass(pw)}`);
    expect(sentinelAuthPass(pw)).toMatch(/^[0-9a-f]{64}$/);
  });
  it("write-once sentinel.conf script, master discovery, SENTINEL SET script", () => {
    expect(renderSentinelScript(s)).toMatchSnapshot();
    expect(renderDiscoverMaster(s)).toMatchSnapshot();
    const set = renderSentinelSetScript(tuned);
    expect(set).toMatchSnapshot();
    expect(set).toContain("SENTINEL SET hastack quorum 3");
    expect(set).toContain("-x SENTINEL SET hastack auth-pass < /etc/redis/hastack-cli.pass");
  });
});

describe("HAProxy, keepalived and health files", () => {
  it.each([["plain", "s3cret"], ["special", SPECIAL]])("haproxy.cfg with the %s password", (_, pw) => {
    const cfg = renderHaproxyCfg(s, pw);
    expect(cfg).toMatchSnapshot();
    expect(cfg).toContain("server redis3 10.213.7.43:6379 check inter 1s fastinter 250ms fall 2 rise 2 on-marked-down shutdown-sessions");
    expect(cfg).toContain("tcp-check expect string role:master");
    expect(cfg).not.toContain(pw);
  });
  it("AUTH goes out as RESP bytes", () => {
    expect(Buffer.from(respAuthHex(SPECIAL), "hex").toString()).toBe(`*2\r\n$4\r\nAUTH\r\n$11\r\n${SPECIAL}\r\n`);
  });
  it.each([0, 2])("keepalived node %i with the special password, and its check", (i) => {
    const conf = renderRedisKeepalived(tuned, i, SPECIAL);
    expect(conf).toMatchSnapshot();
    expect(conf).not.toContain(SPECIAL);
    expect(renderKeepalivedCheck(tuned)).toMatchSnapshot();
  });
  it("health script", () => {
    expect(renderHealthScript(s)).toMatchSnapshot();
  });
});
