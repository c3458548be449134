// Helpers for the WorksPad double and WorksPadNode tests: build the .deb, a throwaway PostgreSQL,
// self-signed certificates, and the double's server run straight from the source tree.
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { freePort } from "../support/ports";
export { freePort };

export const DOUBLE_DIR = __dirname;
export const SERVER_SCRIPT = path.join(DOUBLE_DIR, "pkg/opt/workspad/bin/workspad-server");
export const APPSETTINGS_TEMPLATE = path.join(DOUBLE_DIR, "pkg/opt/workspad/appsettings.json");
export const PYTHON = "/usr/bin/python3";
export const PG_BIN = "/usr/lib/postgresql/15/bin";
export const SPECIAL_PASSWORD = `jhYg/=\\F'"$`;

/** Build the .deb into `outDir`; returns its path. */
export function buildDouble(outDir: string): string {
  return execFileSync("sh", [path.join(DOUBLE_DIR, "build.sh"), outDir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** Throw (so the test fails, not skips) when a binary the test depends on is missing. */
export function requireBinaries(...files: string[]): void {
  const missing = files.filter((f) => !fs.existsSync(f));
  if (missing.length > 0) throw new Error(`missing required binaries: ${missing.join(", ")}`);
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error("this test needs root (initdb/pg_ctl run as user postgres)");
}

export function requirePsycopg2(): void {
  execFileSync(PYTHON, ["-c", "import psycopg2"], { stdio: "pipe" });
}

/** A TCP port free on 127.0.0.1 right now. */

export interface TempPostgres {
  readonly port: number;
  readonly dir: string;
  stop(): void;
}

/** initdb + start a PostgreSQL on 127.0.0.1:<free port> as user postgres, with one SCRAM login role and database. */
export async function startTempPostgres(role: { user: string; password: string; database: string }): Promise<TempPostgres> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-wp-pg-"));
  fs.chmodSync(dir, 0o755);
  execFileSync("chown", ["postgres:postgres", dir]);
  const data = path.join(dir, "data");
  const asPg = (cmd: string, args: string[], input?: string) =>
    execFileSync("runuser", ["-u", "postgres", "--", cmd, ...args], { cwd: dir, input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
  asPg(`${PG_BIN}/initdb`, ["-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8"]);
  const port = await freePort();
  asPg(`${PG_BIN}/pg_ctl`, ["-D", data, "-l", path.join(dir, "log"), "-w", "-t", "30", "-o",
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "start"]);
  const stop = () => {
    try {
      asPg(`${PG_BIN}/pg_ctl`, ["-D", data, "-m", "immediate", "-w", "stop"]);
    } catch {
      // already stopped
    }
  };
  try {
    // the password travels as a psql variable on stdin, so no quoting is involved
    asPg(`${PG_BIN}/psql`, ["-h", dir, "-p", String(port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
      "-v", `pw=${role.password}`, "-v", `u=${role.user}`, "-v", `db=${role.database}`],
    "CREATE ROLE :\"u\" LOGIN PASSWORD :'pw';\nCREATE DATABASE :\"db\" OWNER :\"u\";\n");
  } catch (e) {
    stop();
    throw e;
  }
  return { port, dir, stop };
}

export function removeTempPostgres(pg: TempPostgres | undefined): void {
  if (!pg) return;
  pg.stop();
  fs.rmSync(pg.dir, { recursive: true, force: true });
}

/** Self-signed certificate and key (PEM) made by openssl. */
export function selfSigned(dir: string, base: string, cn: string): { certPem: string; keyPem: string; certPath: string; keyPath: string } {
  const certPath = path.join(dir, `${base}.crt`);
  const keyPath = path.join(dir, `${base}.key`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", keyPath, "-out", certPath, "-days", "2", "-subj", `/CN=${cn}`], { stdio: "pipe" });
  return { certPem: fs.readFileSync(certPath, "utf8"), keyPem: fs.readFileSync(keyPath, "utf8"), certPath, keyPath };
}

/** A WorksPad home (appsettings.json + certs/) in a temp dir, listening on 127.0.0.1:<port>. */
export function makeHome(port: number): { home: string; appsettings: string; certs: string } {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-wp-home-"));
  const certs = path.join(home, "certs");
  fs.mkdirSync(certs);
  const settings = JSON.parse(fs.readFileSync(APPSETTINGS_TEMPLATE, "utf8"));
  settings.Kestrel.Endpoints.Https.Url = `https://127.0.0.1:${port}`;
  const appsettings = path.join(home, "appsettings.json");
  fs.writeFileSync(appsettings, JSON.stringify(settings, null, 2), { mode: 0o640 });
  selfSigned(certs, "tls", "workspad.test");
  selfSigned(certs, "dataprotection", "workspad data protection");
  return { home, appsettings, certs };
}

export interface RunningDouble {
  readonly proc: ChildProcess;
  readonly log: () => string;
  stop(): Promise<void>;
}

/** Run the double's server from the source tree against `home`, resolve once it accepts connections. */
export async function startDouble(home: string, port: number): Promise<RunningDouble> {
  const proc = spawn(PYTHON, [SERVER_SCRIPT], { env: { ...process.env, WORKSPAD_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const stop = () => new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once("exit", () => resolve());
    proc.kill("SIGTERM");
  });
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`workspad-server exited ${proc.exitCode}:\n${out}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => { s.destroy(); resolve(true); });
      s.on("error", () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`workspad-server did not listen on ${port}:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { proc, log: () => out, stop };
}

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: any;
}

/** HTTPS request to 127.0.0.1 (self-signed certificate accepted). */
export function request(port: number, method: string, urlPath: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: "127.0.0.1", port, method, path: urlPath, rejectUnauthorized: false, agent: false,
      headers: body === undefined ? {} : { "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(body) } }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data ? JSON.parse(data) : undefined }));
    });
    req.on("error", reject);
    req.setTimeout(15000, () => req.destroy(new Error(`timeout: ${method} ${urlPath}`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Parse an Npgsql connection string with the double's own parser. */
export function parseWithDouble(connectionString: string): Record<string, string> {
  return JSON.parse(execFileSync(PYTHON, [SERVER_SCRIPT, "--parse-connection-string"], { input: connectionString, encoding: "utf8" }));
}
