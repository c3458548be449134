import { resolveRedisSentinelGroupSettings } from "../../components/redisSentinelGroup/args";
import { CHECK_USER, SENTINEL_USER, checkAuthPass, renderRedisAcl, renderSurveyScript, sentinelAuthPass,
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
    const script = renderRedisMainScript(s, NODES[1], "10.213.7.43");
    expect(script).toMatchSnapshot();
    expect(script.split("\n")[0]).toContain("echo kept; exit 0");
    // with no Sentinel and no running master, the node chosen from the surveys, not simply the first node
    expect(script).toContain(`[ -n "$master" ] || { master=10.213.7.43;`);
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
    expect(renderSentinelScript(s, "10.213.7.41")).toMatchSnapshot();
    expect(renderDiscoverMaster(s, "10.213.7.41")).toMatchSnapshot();
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
    expect(Buffer.from(respAuthHex(SPECIAL, "hastack-check"), "hex").toString()).toBe(`*3\r\n$4\r\nAUTH\r\n$13\r\nhastack-check\r\n$11\r\n${SPECIAL}\r\n`);
  });
  it("HAProxy's check logs in as the check user with its derived password, never as default", () => {
    const cfg = renderHaproxyCfg(s, SPECIAL);
    expect(cfg).toContain(`tcp-check send-binary ${respAuthHex(checkAuthPass(SPECIAL), CHECK_USER)}`);
    expect(cfg).not.toContain(respAuthHex(SPECIAL));
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

describe("Redis users", () => {
  const app = { appUser: "app", appCommands: ["+@all", "-@dangerous", "+info"] };
  it("ACL file: hastack's default user, the application's user with its rules, Sentinel's and the check's", () => {
    const acl = renderRedisAcl(app, "app-" + SPECIAL, SPECIAL);
    expect(acl).toMatchSnapshot();
    expect(acl).not.toContain(SPECIAL);
    const lines = acl.trimEnd().split("\n");
    expect(lines.map((l) => l.split(" ")[1])).toEqual(["default", "app", SENTINEL_USER, CHECK_USER]);
    expect(lines[1]).toMatch(/^user app on #[0-9a-f]{64} ~\* &\* \+@all -@dangerous \+info$/);
    expect(lines[3]).toMatch(/ -@all \+ping \+info$/);
  });
  it("the application's password opens only the application user (different hashes)", () => {
    const hashes = renderRedisAcl(app, "one", "two").match(/#[0-9a-f]{64}/g)!;
    expect(new Set(hashes).size).toBe(4);
  });
  it("derived passwords depend on hastack's own secret, not on anything the application knows", () => {
    expect(sentinelAuthPass("a")).not.toBe(sentinelAuthPass("b"));
    expect(checkAuthPass("a")).not.toBe(sentinelAuthPass("a"));
    expect(checkAuthPass("a")).toMatch(/^[0-9a-f]{64}$/);
  });
  it("survey script reads the replication offset from dump.rdb's AUX fields", () => {
    const script = renderSurveyScript();
    expect(script).toMatchSnapshot();
    expect(script).toContain("redis-check-rdb '/var/lib/redis/dump.rdb'");
  });
});
