import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";
import { demoteBody, memberRestUrls, parseStatus, promoteBody, renderSiteEnv, siteRoleCommand, siteRoleScript } from "../../components/patroniCluster/siteRole";

describe("site-role: the hosts' script for a change of the leading site", () => {
  it("is valid bash and refuses an unknown command", () => {
    const f = path.join(fs.mkdtempSync("/tmp/site-role-"), "site-role");
    fs.writeFileSync(f, siteRoleScript(), { mode: 0o755 });
    execFileSync("bash", ["-n", f]);
    const env = path.join(path.dirname(f), "env");
    fs.writeFileSync(env, renderSiteEnv({ member: { name: "pg1", address: "10.0.0.11" }, restApiPort: 8008, dataDir: "/var/lib/postgresql/15/main", pgVersion: 15, pgPort: 5432,
      clusterName: "hastack", etcdClientPort: 2379, slotName: "standby_dc1" }));
    let code = 0;
    try { execFileSync("bash", [f, "frobnicate"], { env: { ...process.env, HASTACK_SITE_ENV: env }, stdio: "pipe" }); } catch (e) { code = (e as { status: number }).status; }
    expect(code).toBe(2);
  });

  it("gets its settings from an env file the shell reads back unchanged", () => {
    const text = renderSiteEnv({ member: { name: "pg1", address: "10.0.0.11" }, restApiPort: 8009, dataDir: "/srv/pg data/main", pgVersion: 15, pgPort: 5433,
      clusterName: "hastack", etcdClientPort: 2379, slotName: "standby_dc1",
      otherSites: [{ address: "10.2.0.11", pgPort: 5432, restApiPort: 8008 }, { address: "10.2.0.12", pgPort: 5432, restApiPort: 8008 }] });
    const f = path.join(fs.mkdtempSync("/tmp/site-env-"), "env");
    fs.writeFileSync(f, text);
    const out = execFileSync("bash", ["-c", `. "$1"; printf '%s|' "$REST" "$DATA" "$BIN" "$PGPORT" "$SOCKET" "$AUTH" "$SCOPE" "$ETCD" "$SLOT" "$OTHER_SITES" "$OTHER_PG" "$OTHER_PGPORT"`, "-", f], { encoding: "utf8" });
    expect(out).toBe("http://10.0.0.11:8009|/srv/pg data/main|/usr/lib/postgresql/15/bin|5433|/var/run/postgresql|/etc/patroni/hastack-rest.curl|" +
      "hastack|http://127.0.0.1:2379|standby_dc1|http://10.2.0.11:8008 http://10.2.0.12:8008|10.2.0.11,10.2.0.12|5432|");
  });

  it("demotes a standby site's leader and promotes a primary site's only after checking every other site's member", () => {
    expect(siteRoleCommand("standby", ["http://10.2.0.11:8008"])).toBe("/usr/local/lib/hastack/site-role demote");
    const urls = memberRestUrls([{ address: "10.2.0.11", restApiPort: 8008 }, { address: "10.2.0.12", restApiPort: 8010 }]);
    expect(siteRoleCommand("primary", urls)).toBe("/usr/local/lib/hastack/site-role promote 'http://10.2.0.11:8008' 'http://10.2.0.12:8010'");
    expect(siteRoleCommand("primary", urls, true)).toContain("promote --force 'http://10.2.0.11:8008'");
  });

  it("sends the standby block (never a single leader address) when demoting, and drops it with the other sites' slots when promoting", () => {
    expect(JSON.parse(demoteBody({ hosts: ["10.2.0.11", "10.2.0.12"], port: 5432, slotName: "standby_dc1" }))).toEqual({
      standby_cluster: { host: "10.2.0.11,10.2.0.12", port: 5432, primary_slot_name: "standby_dc1", create_replica_methods: ["basebackup"] }, slots: null });
    expect(JSON.parse(promoteBody(["standby_dc1"]))).toEqual({ standby_cluster: null, slots: { standby_dc1: { type: "physical" } } });
    expect(JSON.parse(promoteBody([]))).toEqual({ standby_cluster: null, slots: null });
  });

  it("reads the status line and fails on anything else", () => {
    const s = parseStatus('noise\n{"role":"standby_leader","state":"running","timeline":3,"position":100,"received":120,"paused":false,"readWrite":false,"standbyCluster":true}\n');
    expect(s).toMatchObject({ role: "standby_leader", readWrite: false, position: 100, received: 120 });
    expect(() => parseStatus('{"state":"running"}')).toThrow("site-role status: unexpected answer");
  });
});
