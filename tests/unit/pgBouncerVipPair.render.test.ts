import { scramSecret } from "../../components/common/scram";
import {
  CHECK_USER, checkUserPassword, keepalivedValidateCommand, npgsqlConnectionString, npgsqlValue, pgpassLine, renderCheckPgpass,
  renderCheckScript, renderHaproxyCfg, renderKeepalivedConf, renderPgbouncerIni, renderResetScript, renderUserlist, userlistLine, PATHS,
} from "../../components/pgBouncerVipPair/render";
import { VRRP_TIMING_DEFAULTS, VRRP_V2_TIMING } from "../../components/keepalived/timing";

const SPECIAL = `jhYg/=\\F'"$`;
const members = [
  { name: "pg1", address: "10.213.7.11" }, { name: "pg2", address: "10.213.7.12" }, { name: "pg3", address: "10.213.7.13" },
];
const ka = {
  routerId: "px1", interface: "host0", virtualRouterId: 51, priority: 200, authPass: "Ab3dE6gH", vip: "10.213.7.50", vipPrefix: 24,
  self: "10.213.7.21", peers: ["10.213.7.22"], unicast: false, checkIntervalSeconds: 2, checkFall: 2, checkRise: 2,
  timing: VRRP_V2_TIMING,
};

describe("haproxy.cfg", () => {
  test("follows the Patroni primary through the REST check, never a fixed leader", () => {
    const cfg = renderHaproxyCfg({ members, pgPort: 5432, restApiPort: 8008, haproxyPort: 5000 });
    expect(cfg).toMatchSnapshot();
    expect(cfg).toContain("    bind 127.0.0.1:5000\n");
    expect(cfg).toContain("option httpchk OPTIONS /primary");
    expect(cfg).toContain("http-check expect status 200");
    expect(cfg).toContain("default-server inter 1s downinter 500ms fastinter 250ms fall 2 rise 2 on-marked-down shutdown-sessions");
    expect(cfg).toContain("timeout connect 1s");
    for (const m of members) expect(cfg).toContain(`server ${m.name} ${m.address}:5432 check port 8008`);
  });
});

describe("pgbouncer.ini", () => {
  const ini = renderPgbouncerIni({
    database: "workspad", haproxyPort: 5000, port: 6432, authType: "scram-sha-256", poolMode: "session", defaultPoolSize: 20, maxClientConn: 500,
  });
  test("routes the database to the local HAProxy and listens on every address", () => {
    expect(ini).toMatchSnapshot();
    expect(ini).toContain("workspad = host=127.0.0.1 port=5000 dbname=workspad\n");
    expect(ini).toContain("listen_addr = *\n");
    expect(ini).toContain("ignore_startup_parameters = extra_float_digits\n");
    expect(ini).toContain(`stats_users = ${CHECK_USER}\n`);
    expect(ini).toContain("admin_users =\n");
  });
  test("takes paths so it can run from a temp dir", () => {
    expect(renderPgbouncerIni({
      database: "app", haproxyPort: 15000, port: 16432, listenAddr: "127.0.0.1", authType: "md5", poolMode: "transaction",
      defaultPoolSize: 5, maxClientConn: 50, authFile: "/tmp/x/userlist.txt", unixSocketDir: "/tmp/x",
    })).toMatchSnapshot();
  });
  test("refuses a value that would break the ini line", () => {
    expect(() => renderPgbouncerIni({
      database: "app;x", haproxyPort: 1, port: 2, authType: "md5", poolMode: "session", defaultPoolSize: 1, maxClientConn: 1,
    })).toThrow('render: database "app;x" cannot be written unquoted');
  });
});

describe("userlist.txt", () => {
  test("quotes user and password, doubling quotes (md5: plain passwords)", () => {
    expect(renderUserlist([{ user: "workspad", password: "plain" }, { user: CHECK_USER, password: "0123abcd" }], "md5")).toMatchSnapshot();
  });
  test("escapes the special password", () => {
    const line = userlistLine("workspad", SPECIAL);
    expect(line).toBe(`"workspad" "jhYg/=\\F'""$"`);
    expect(renderUserlist([{ user: "workspad", password: SPECIAL }], "md5")).toMatchSnapshot();
  });
  test("with SCRAM holds each role's SCRAM secret, never the password", () => {
    const text = renderUserlist([{ user: "workspad", password: SPECIAL }, { user: CHECK_USER, password: "0123abcd" }], "scram-sha-256");
    expect(text).toBe(`"workspad" "${scramSecret("workspad", SPECIAL)}"\n"${CHECK_USER}" "${scramSecret(CHECK_USER, "0123abcd")}"\n`);
    expect(text).not.toContain("jhYg");
  });
  test("with SCRAM keeps a non-ASCII password plain (PostgreSQL would SASLprep it first)", () => {
    expect(renderUserlist([{ user: "workspad", password: "pässwörd" }], "scram-sha-256")).toBe(`"workspad" "pässwörd"\n`);
  });
});

describe("check script and its pgpass", () => {
  test("logs in to PgBouncer's admin console with a timeout", () => {
    const sh = renderCheckScript({ port: 6432 });
    expect(sh).toMatchSnapshot();
    expect(sh).toContain("connect_timeout=2");
    expect(sh).toContain("dbname=pgbouncer");
  });
  test("pgpass escapes ':' and '\\'", () => {
    expect(pgpassLine("*", 6432, "pgbouncer", CHECK_USER, "a:b\\c")).toBe("*:6432:pgbouncer:hastack_check:a\\:b\\\\c");
    expect(pgpassLine("*", 6432, "app", "app", SPECIAL)).toBe(`*:6432:app:app:jhYg/=\\\\F'"$`);
    expect(renderCheckPgpass(6432, checkUserPassword(SPECIAL))).toMatchSnapshot();
  });
  test("the check password is derived, hex, and changes with the app password", () => {
    expect(checkUserPassword(SPECIAL)).toMatch(/^[0-9a-f]{32}$/);
    expect(checkUserPassword(SPECIAL)).not.toBe(checkUserPassword("other"));
  });
});

describe("keepalived.conf", () => {
  test("multicast, with script security, a weight-0 login check and nopreempt", () => {
    const conf = renderKeepalivedConf(ka);
    expect(conf).toMatchSnapshot();
    expect(conf).toContain("enable_script_security");
    expect(conf).toContain("script_user keepalived_script");
    expect(conf).not.toContain("weight");
    expect(conf).toContain("10.213.7.50/24 dev host0");
    expect(conf).not.toContain("unicast");
  });
  test("unicast names the other nodes as peers", () => {
    const conf = renderKeepalivedConf({ ...ka, unicast: true, self: "10.213.7.22", peers: ["10.213.7.21", "10.213.7.23"], priority: 190 });
    expect(conf).toMatchSnapshot();
    expect(conf).toContain("unicast_src_ip 10.213.7.22");
  });
  test("quotes an auth_pass with keepalived comment characters", () => {
    expect(renderKeepalivedConf({ ...ka, authPass: "a#b!{c}$" })).toContain('auth_pass "a#b!{c}$"');
  });
  test("refuses an auth_pass keepalived cannot quote (the special password)", () => {
    expect(() => renderKeepalivedConf({ ...ka, authPass: SPECIAL })).toThrow("render: auth_pass cannot hold");
  });
  test("VRRPv3: version 3, the centisecond advert interval, and no authentication block (the secret is not written)", () => {
    const conf = renderKeepalivedConf({ ...ka, timing: { vrrpVersion: 3, advertIntervalSeconds: 0.3 } });
    expect(conf).toContain("    version 3\n    advert_int 0.3\n");
    expect(conf).not.toContain("authentication");
    expect(conf).not.toContain(ka.authPass);
  });
  test("VRRPv2 keeps whole-second adverts and the quoted auth_pass", () => {
    const conf = renderKeepalivedConf(ka);
    expect(conf).toContain("    version 2\n    advert_int 1\n    authentication {\n        auth_type PASS\n        auth_pass \"Ab3dE6gH\"\n    }\n");
  });
  test("validation treats keepalived 2.2.7's self-SIGTERM as a pass only when nothing was printed", () => {
    expect(keepalivedValidateCommand()).toMatchSnapshot();
  });
});

describe("Npgsql connection string", () => {
  test("plain values stay bare", () => {
    expect(npgsqlConnectionString({ host: "10.213.7.50", port: 6432, database: "workspad", username: "workspad", password: "Abc123" }))
      .toBe("Host=10.213.7.50;Port=6432;Database=workspad;Username=workspad;Password=Abc123");
  });
  test("the special password is double-quoted with inner quotes doubled", () => {
    const cs = npgsqlConnectionString({ host: "10.213.7.50", port: 6432, database: "workspad", username: "workspad", password: SPECIAL });
    expect(cs).toBe(`Host=10.213.7.50;Port=6432;Database=workspad;Username=workspad;Password="jhYg/=\\F'""$"`);
    expect(cs).toMatchSnapshot();
  });
  test.each([["a;b", '"a;b"'], ["a=b", '"a=b"'], [" a", '" a"'], ["", '""'], ["a'b", `"a'b"`], ["a\"b", '"a""b"']])(
    "quotes %j as %s", (v, q) => expect(npgsqlValue(v)).toBe(q));
});

describe("leaving the VIP", () => {
  it("cuts the clients of the VIP on this node, as root, on BACKUP and on FAULT", () => {
    const conf = renderKeepalivedConf({
      routerId: "px1", interface: "eth0", virtualRouterId: 51, priority: 150, authPass: "abcd1234", vip: "192.168.1.200", vipPrefix: 24,
      self: "192.168.1.140", peers: ["192.168.1.141"], unicast: false, checkIntervalSeconds: 1, checkFall: 2, checkRise: 2,
      timing: VRRP_TIMING_DEFAULTS,
    });
    expect(conf).toContain(`notify_backup "${PATHS.resetScript}" root`);
    expect(conf).toContain(`notify_fault "${PATHS.resetScript}" root`);
    expect(renderResetScript({ vip: "192.168.1.200", port: 6432 })).toContain("ss -t -n -K state established '( sport = :6432 )'");
  });
});
