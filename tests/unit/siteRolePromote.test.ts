// site-role.sh promote, the script itself (bash, curl, jq) against a fake Patroni REST API on loopback.
// What it must do when the old primary site is lost: ask every old member at once, so three dead members
// cost one curl timeout, not three; refuse without --force; and still refuse while an old member leads.
import { spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { siteRoleScript } from "../../components/patroniCluster/siteRole";

interface Fake { url: string; close(): Promise<void>; patches: string[] }

/** This site's standby leader: answers as standby_leader until a PATCH removes standby_cluster. */
async function fakeStandbyLeader(): Promise<Fake> {
  let standby = true;
  const patches: string[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const send = (code: number, obj: unknown) => { res.writeHead(code, { "Content-Type": "application/json" }); res.end(JSON.stringify(obj)); };
      const role = standby ? "standby_leader" : "leader";
      if (req.method === "PATCH" && req.url === "/config") {
        patches.push(body);
        if (JSON.parse(body).standby_cluster === null) standby = false;
        return send(200, {});
      }
      if (req.url === "/config") return send(200, standby ? { standby_cluster: { host: "10.0.0.1" } } : {});
      if (req.url === "/patroni") return send(200, { role, state: "running", timeline: 2, xlog: { received_location: 900, replayed_location: 900 } });
      if (req.url === "/cluster") return send(200, { members: [{ name: "d2pg1", role, state: "running" }] });
      if (req.url === "/primary") return send(standby ? 503 : 200, {});
      send(404, {});
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, patches,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

/** A member of a lost site: accepts the TCP connection and never answers (a hung host, or a black hole). */
async function deadMember(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => new Promise((r) => { sockets.forEach((s) => s.destroy()); server.close(() => r()); }) };
}

/** An old member that still leads: /primary answers 200. */
async function leadingMember(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ role: "leader", state: "running", xlog: { location: 800 } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

function runPromote(dir: string, rest: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }> {
  const env = path.join(dir, "site.env");
  fs.writeFileSync(env, [`REST=${rest}`, `DATA=${dir}/data`, `BIN=${dir}/bin`, "PGPORT=5432", `SOCKET=${dir}`, `AUTH=${dir}/rest.curl`, ""].join("\n"));
  fs.writeFileSync(path.join(dir, "rest.curl"), "", { mode: 0o600 });
  const script = path.join(dir, "site-role");
  fs.writeFileSync(script, siteRoleScript(), { mode: 0o755 });
  const started = Date.now();
  return new Promise((resolve) => {
    const p = spawn("bash", [script, "promote", ...args], { env: { ...process.env, HASTACK_SITE_ENV: env, HASTACK_SITE_WAIT_S: "20" } });
    let stdout = "", stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.stdin.end(JSON.stringify({ standby_cluster: null, slots: null }));
    p.on("close", (code) => resolve({ code, stdout, stderr, seconds: (Date.now() - started) / 1000 }));
  });
}

describe("site-role promote (the shipped script against a fake Patroni)", () => {
  let dir: string;
  const closers: Array<() => Promise<void>> = [];
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-siterole-")); });
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((c) => c()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("asks three dead members of the lost site at once: --force promotes within one curl timeout, not three", async () => {
    const local = await fakeStandbyLeader(); closers.push(local.close);
    const dead = await Promise.all([deadMember(), deadMember(), deadMember()]);
    dead.forEach((d) => closers.push(d.close));
    const r = await runPromote(dir, local.url, ["--force", ...dead.map((d) => d.url)]);
    expect(r.stderr).toContain("forced: the old primary site does not answer");
    if (r.code !== 0) throw new Error(`promote failed (${r.code}):\n${r.stderr}`);
    expect(r.stdout).toMatch(/^promoted leader=d2pg1 oldSitePosition=0 replayed=900 received=900 timeline=2/m);
    expect(local.patches.map((b) => JSON.parse(b))).toEqual([{ standby_cluster: null, slots: null }]);
    // one member costs curl's 5 s timeout; asked one after the other the three cost 3 × (3 + 5) s = 24 s. The bound
    // sits between: 15.0 s was seen at a load average of ~19 (CI's three streams and a lab benchmark, 2026-11-29)
    expect(r.seconds).toBeLessThan(18);
  }, 60000);

  it("without --force refuses while no old member answers, and changes nothing", async () => {
    const local = await fakeStandbyLeader(); closers.push(local.close);
    const dead = await deadMember(); closers.push(dead.close);
    const r = await runPromote(dir, local.url, [dead.url]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`no member of the old primary site answers (${dead.url})`);
    expect(local.patches).toEqual([]);
  }, 60000);

  it("refuses, even with --force, while one old member still accepts writes, naming it", async () => {
    const local = await fakeStandbyLeader(); closers.push(local.close);
    const dead = await deadMember(); closers.push(dead.close);
    const leading = await leadingMember(); closers.push(leading.close);
    const r = await runPromote(dir, local.url, ["--force", dead.url, leading.url]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${leading.url} still accepts writes`);
    expect(local.patches).toEqual([]);
  }, 60000);
});
