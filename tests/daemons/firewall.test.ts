// The rendered tables against the real nft: checked like the deploy checks them (nft -c), then loaded,
// replaced and removed inside a throwaway network namespace, so the machine's own ruleset is never touched.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { deleteTableScript, renderAdmitScript, renderNftTable } from "../../components/firewall/render";

const db = (extra: string[] = []) => ({
  name: "db",
  guards: [
    { name: "postgres", ports: [5432, 8008], sources: ["10.213.7.11", "10.213.7.21", "10.213.7.0/28", ...extra] },
    { name: "etcd", ports: [2379, 2380], sources: ["10.213.7.11", "10.213.7.12", "10.213.7.13"] },
  ],
});
const proxy = { name: "proxy", vrrpPeers: ["10.213.7.21", "10.213.7.22"], guards: [{ name: "pgbouncer", ports: [6432], sources: [] }] };

describe("firewall tables (needs root; nft in a private network namespace)", () => {
  let tmp: string;
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-nft-")); });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const file = (name: string, text: string) => { const f = path.join(tmp, name); fs.writeFileSync(f, text); return f; };
  /** Runs a script in a new network namespace (its own, empty nftables ruleset). */
  const inNetns = (script: string) => spawnSync("unshare", ["--net", "bash", "-c", `set -eu\n${script}`], { encoding: "utf8" });

  it("runs as root with nft installed", () => {
    expect(process.getuid?.()).toBe(0);
    expect(spawnSync("nft", ["--version"]).status).toBe(0);
  });

  it("passes nft -c, the check the deploy runs before the swap; a broken file does not", () => {
    for (const t of [db(), proxy]) {
      const r = spawnSync("nft", ["-c", "-f", file(`${t.name}.nft`, renderNftTable(t))], { encoding: "utf8" });
      expect([t.name, r.status, r.stderr]).toEqual([t.name, 0, ""]);
    }
    const bad = spawnSync("nft", ["-c", "-f", file("bad.nft", renderNftTable(db()).replace("policy accept", "policy maybe"))], { encoding: "utf8" });
    expect(bad.status).not.toBe(0);
  });

  it("loads, replaces itself atomically on a second load, leaves other tables alone, and is removed by the delete step", () => {
    const first = file("a.nft", renderNftTable(db()));
    const second = file("b.nft", renderNftTable(db(["192.168.5.0/28"])));
    const other = file("p.nft", renderNftTable(proxy));
    const r = inNetns([
      `nft -f ${first}`, `nft -f ${other}`,
      `nft -f ${second}`,
      "echo ---; nft list table inet hastack_db",
      "echo ---; nft list tables",
      deleteTableScript("db"), deleteTableScript("db"),
      "echo ---; nft list tables",
    ].join("\n"));
    expect([r.status, r.stderr]).toEqual([0, ""]);
    const [, listed, before, after] = r.stdout.split("---\n");
    expect(listed).toContain("192.168.5.0/28");
    expect(listed).toMatch(/tcp dport \{ 5432, 8008 \} ip saddr != @postgres_src drop/);
    expect(before.trim().split("\n").sort()).toEqual(["table inet hastack_db", "table inet hastack_proxy"]);
    expect(after.trim()).toBe("table inet hastack_proxy");
  });

  it("the admit step adds a table's new sources to the live table, keeps the ones it drops, and skips a table not loaded", () => {
    // the loaded table admits app nodes .31 and .33; the new one .33 and .35 (.31 removed, .35 added; not adjacent, or nft shows ranges)
    const apps = (a: string[]) => ({ ...proxy, guards: [{ name: "pgbouncer", ports: [6432], sources: [...a, "10.213.7.21", "10.213.7.23"] }] });
    const loaded = file("live.nft", renderNftTable(apps(["10.213.7.31", "10.213.7.33"])));
    const admit = file("admit.sh", renderAdmitScript(apps(["10.213.7.33", "10.213.7.35"])));
    const r = inNetns([
      `bash ${admit}`, "echo ---; nft list tables",
      `nft -f ${loaded}`, `bash ${admit}`, `bash ${admit}`, "echo ---; nft list set inet hastack_proxy pgbouncer_src",
      "echo ---; nft list set inet hastack_proxy vrrp_src",
    ].join("\n"));
    expect([r.status, r.stderr]).toEqual([0, ""]);
    const [skipped, none, pgbouncer, vrrp] = r.stdout.split("---\n");
    expect(skipped).toContain("table not loaded");
    expect(none.trim()).toBe("");
    expect(pgbouncer.replace(/\s+/g, " ")).toContain("elements = { 10.213.7.21, 10.213.7.23, 10.213.7.31, 10.213.7.33, 10.213.7.35 }");
    expect(vrrp.replace(/\s+/g, " ")).toContain("elements = { 10.213.7.21-10.213.7.22 }");
  });
});
