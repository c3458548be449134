// Real-daemon checks for everything NginxBalancer renders. Needs root (nginx master, keepalived -t).
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { resolveNginxBalancerSettings } from "../../components/nginxBalancer/args";
import { keepalivedValidateCommand } from "../../components/keepalived";
import { NGINX_PATHS, renderBalancerCheck, renderBalancerKeepalived, renderSite, renderSiteCheck } from "../../components/nginxBalancer/render";
import { freePort } from "../support/ports";

const SPECIAL = `jhYg/=\\F'"$`;
const SUBNET = "10.213.7.0/24";

/** Absolute path of a binary; throws (so the suite FAILS, never skips) when it is missing. */
function need(bin: string): string {
  const r = spawnSync("sh", ["-c", `command -v ${bin}`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${bin} is not installed; these daemon tests need it`);
  return r.stdout.trim();
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** GET over HTTPS with curl; returns [status, body] or [0, ""] when nothing answered. */
function get(url: string): [number, string] {
  const r = spawnSync("curl", ["-sk", "--max-time", "5", "-w", "\n%{http_code}", url], { encoding: "utf8" });
  const lines = (r.stdout ?? "").split("\n");
  const code = Number(lines.pop());
  return [Number.isFinite(code) ? code : 0, lines.join("\n")];
}

async function waitUntil(what: string, ok: () => boolean, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (ok()) return;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const UPSTREAM_PY = `
import http.server, ssl, sys
port, name, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
status = int(sys.argv[5]) if len(sys.argv) > 5 else 200
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = name.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
`;

describe("NginxBalancer rendered files on the real daemons (needs root)", () => {
  let dir: string;
  const procs: ChildProcess[] = [];
  let nginx: string;

  beforeAll(() => {
    if (process.getuid && process.getuid() !== 0) throw new Error("daemon tests need root");
    nginx = need("nginx");
    need("openssl");
    need("keepalived");
    need("python3");
    need("curl");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-nginx-test-"));
    const cert = (name: string, cn: string) => execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
      "-subj", `/CN=${cn}`, "-addext", `subjectAltName=DNS:${cn}`, "-keyout", path.join(dir, `${name}.key`), "-out", path.join(dir, `${name}.crt`)],
    { stdio: "ignore" });
    cert("server", "balancer.test");
    cert("upstream", "workspad");
    fs.writeFileSync(path.join(dir, "upstream.py"), UPSTREAM_PY);
  });

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    await sleep(200);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function mainConf(site: string, tag: string): string {
    const t = path.join(dir, tag);
    for (const d of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) fs.mkdirSync(path.join(t, d), { recursive: true });
    fs.writeFileSync(path.join(t, "site.conf"), site);
    const conf = [
      "user root;", "worker_processes 1;", `pid ${t}/nginx.pid;`, `error_log ${t}/error.log;`, "events {}",
      "http {", "  access_log off;",
      ...["body", "proxy", "fastcgi", "uwsgi", "scgi"].map((d) => `  ${d === "body" ? "client_body" : d}_temp_path ${t}/${d};`),
      `  include ${t}/site.conf;`, "}", "",
    ].join("\n");
    fs.writeFileSync(path.join(t, "nginx.conf"), conf);
    return path.join(t, "nginx.conf");
  }

  const files = () => ({ cert: path.join(dir, "server.crt"), key: path.join(dir, "server.key") });

  it("nginx -t accepts the site with and without upstream certificate verification", async () => {
    const s = resolveNginxBalancerSettings({ nodes: [{ name: "lb1", address: "10.213.7.31" }], listenPort: await freePort() }, SUBNET);
    const ups = [{ name: "wp1", address: "10.213.7.21", port: 4430 }, { name: "wp2", address: "10.213.7.22", port: 4430 }];
    for (const [tag, site] of [
      ["plain", renderSite(s, ups, files(), { address: "127.0.0.1", httpPort: await freePort() })],
      ["ca", renderSite(s, ups, { ...files(), upstreamCa: path.join(dir, "upstream.crt") }, { address: "127.0.0.1", httpPort: await freePort() })],
    ] as const) {
      const r = spawnSync(nginx, ["-t", "-c", mainConf(site, tag)], { encoding: "utf8" });
      expect({ tag, status: r.status, stderr: r.status === 0 ? "" : r.stderr }).toEqual({ tag, status: 0, stderr: "" });
    }
  });

  it("nginx -t accepts each balanceMethod's upstream directive", async () => {
    for (const extra of [{ balanceMethod: "remoteAddress" }, { balanceMethod: "cookie", balanceCookie: "wpnode" }]) {
      const s = resolveNginxBalancerSettings({ nodes: [{ name: "lb1", address: "10.213.7.31" }], listenPort: await freePort(), ...extra }, SUBNET);
      const site = renderSite(s, [{ name: "wp1", address: "10.213.7.21", port: 4430 }], files(), { address: "127.0.0.1", httpPort: await freePort() });
      const r = spawnSync(nginx, ["-t", "-c", mainConf(site, `m-${extra.balanceMethod}`)], { encoding: "utf8" });
      expect({ ...extra, status: r.status, stderr: r.status === 0 ? "" : r.stderr }).toEqual({ ...extra, status: 0, stderr: "" });
    }
  });

  it("the staged check passes a good site against the host's nginx.conf and refuses a broken one", () => {
    const s = resolveNginxBalancerSettings({ nodes: [{ name: "lb1", address: "10.213.7.31" }] }, SUBNET);
    const good = path.join(dir, "staged-good.conf");
    const bad = path.join(dir, "staged-bad.conf");
    fs.writeFileSync(good, renderSite(s, [{ name: "wp1", address: "10.213.7.21", port: 4430 }], files()));
    fs.writeFileSync(bad, "server { listen 443 ssl; proxy_pass nowhere }\n");
    const run = (f: string) => spawnSync("sh", ["-euc", renderSiteCheck()], { env: { ...process.env, NEW: f }, encoding: "utf8" });
    const ok = run(good);
    expect({ status: ok.status, stderr: ok.status === 0 ? "" : ok.stderr }).toEqual({ status: 0, stderr: "" });
    expect(run(bad).status).not.toBe(0);
  });

  it("serves HTTPS, keeps a client on one upstream (ip_hash) and keeps serving when that upstream dies", async () => {
    const ports = { a: await freePort(), b: await freePort(), https: await freePort(), http: await freePort() };
    const upstream = (name: string, port: number) => {
      const p = spawn("python3", [path.join(dir, "upstream.py"), String(port), name, path.join(dir, "upstream.crt"), path.join(dir, "upstream.key")],
        { stdio: "ignore" });
      procs.push(p);
      return p;
    };
    const byName: Record<string, ChildProcess> = { A: upstream("A", ports.a), B: upstream("B", ports.b) };
    await waitUntil("upstreams", () => get(`https://127.0.0.1:${ports.a}/`)[0] === 200 && get(`https://127.0.0.1:${ports.b}/`)[0] === 200);

    const s = resolveNginxBalancerSettings({ nodes: [{ name: "lb1", address: "10.213.7.31" }], listenPort: ports.https }, SUBNET);
    const site = renderSite(s, [{ name: "wp1", address: "127.0.0.1", port: ports.a }, { name: "wp2", address: "127.0.0.1", port: ports.b }],
      { ...files(), upstreamCa: path.join(dir, "upstream.crt") }, { address: "127.0.0.1", httpPort: ports.http });
    const conf = mainConf(site, "live");
    const n = spawn(nginx, ["-c", conf, "-g", "daemon off;"], { stdio: "ignore" });
    procs.push(n);
    const url = `https://127.0.0.1:${ports.https}/`;
    await waitUntil("nginx", () => get(url)[0] === 200);

    const first = get(url)[1];
    expect(["A", "B"]).toContain(first);
    for (let i = 0; i < 8; i++) expect(get(url)).toEqual([200, first]);

    const redirect = spawnSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", `http://127.0.0.1:${ports.http}/x?y=1`],
      { encoding: "utf8" }).stdout;
    expect(redirect).toBe(`301 https://127.0.0.1:${ports.https}/x?y=1`);

    byName[first].kill("SIGKILL");
    await sleep(300);
    const other = first === "A" ? "B" : "A";
    for (let i = 0; i < 5; i++) expect(get(url)).toEqual([200, other]);

    n.kill("SIGQUIT");
    await waitUntil("nginx to stop", () => n.exitCode !== null || n.signalCode !== null);
  });

  it("the VIP check passes while nginx reaches a WorksPad node (a 503 from the node included) and fails when nginx is down or reaches none", async () => {
    const ports = { up: await freePort(), https: await freePort(), http: await freePort() };
    const s = resolveNginxBalancerSettings({ nodes: [{ name: "lb1", address: "10.213.7.31" }], listenPort: ports.https }, SUBNET);
    const site = renderSite(s, [{ name: "wp1", address: "127.0.0.1", port: ports.up }], files(), { address: "127.0.0.1", httpPort: ports.http });
    const script = path.join(dir, "check.sh");
    fs.writeFileSync(script, renderBalancerCheck({ listenPort: ports.https, serverName: "_", path: "/health", timeoutSeconds: s.checkTimeoutSeconds }), { mode: 0o700 });
    const check = () => spawnSync("sh", [script]).status;
    const upstream = (status: number) => {
      const p = spawn("python3", [path.join(dir, "upstream.py"), String(ports.up), "wp1", path.join(dir, "upstream.crt"), path.join(dir, "upstream.key"), String(status)],
        { stdio: "ignore" });
      procs.push(p);
      return p;
    };
    const stopped = (p: ChildProcess) => { p.kill("SIGKILL"); return waitUntil("process gone", () => p.exitCode !== null || p.signalCode !== null); };

    expect(check()).toBe(1); // no nginx at all
    const n = spawn(nginx, ["-c", mainConf(site, "check"), "-g", "daemon off;"], { stdio: "ignore" });
    procs.push(n);
    await waitUntil("nginx", () => get(`https://127.0.0.1:${ports.https}/`)[0] !== 0);
    expect(check()).toBe(1); // nginx answers 502 itself: no WorksPad node
    let up = upstream(200);
    await waitUntil("upstream", () => get(`https://127.0.0.1:${ports.up}/`)[0] === 200);
    await sleep(10500); // the node was marked failed for fail_timeout (10 s) by the 502 above
    expect(check()).toBe(0);
    await stopped(up);
    up = upstream(503); // a node whose database is down still answers: the balancer keeps the VIP
    await waitUntil("503 upstream", () => get(`https://127.0.0.1:${ports.up}/`)[0] === 503);
    expect(check()).toBe(0);
    await stopped(up);
    expect(check()).toBe(1);
    n.kill("SIGQUIT");
    await waitUntil("nginx to stop", () => n.exitCode !== null || n.signalCode !== null);
    expect(check()).toBe(1);
  }, 60000);

  // the defaults (VRRPv3, 0.3 s adverts, no authentication) and the older VRRPv2 form with auth_pass
  it.each([[0, {}], [1, {}], [0, { vrrpVersion: 2, advertIntervalSeconds: 1 }], [1, { vrrpVersion: 3, advertIntervalSeconds: 0.15 }]])(
    "keepalived -t accepts the pair's config for node %i with the special password (%j)", (i, timing) => {
    const s = resolveNginxBalancerSettings({ nodes: [{ name: "lb1", address: "10.213.7.31" }, { name: "lb2", address: "10.213.7.32" }],
      vip: "10.213.7.60", ...timing }, SUBNET);
    const f = path.join(dir, `keepalived-${i}.conf`);
    // keepalived -t checks that the script exists and is safe: point it at an executable root-owned copy
    const check = path.join(dir, "ka-check.sh");
    fs.writeFileSync(check, renderBalancerCheck({ listenPort: 443, serverName: "_", path: "/health", timeoutSeconds: s.checkTimeoutSeconds }), { mode: 0o700 });
    fs.writeFileSync(f, renderBalancerKeepalived(s, i, SPECIAL).replace(NGINX_PATHS.keepalivedCheck, check));
    // the host's own check (components/keepalived): keepalived -t must exit 0 (or 143) AND print nothing
    const validate = (file: string) => spawnSync("sh", ["-euc", keepalivedValidateCommand()], { env: { ...process.env, NEW: file }, encoding: "utf8" });
    const r = validate(f);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    // and the same check refuses this config on a host without its interface
    fs.writeFileSync(f, fs.readFileSync(f, "utf8").replace(/interface \S+/, "interface nosuch0"));
    const bad = validate(f);
    expect({ status: bad.status, named: /nosuch0/.test(bad.stderr) }).toEqual({ status: 1, named: true });
  });
});
