// Runs a script on a host with the system OpenSSH client. The key goes to a private 0600 file,
// never to the command line; the script is the remote command, its stdin is piped.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface Connection {
  host: string;
  port?: number;
  user?: string;
  privateKey?: string;
  hostKey?: string;
  dialErrorLimit?: number;
  perDialTimeout?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

// ssh exits 255 for its own failures; these texts mark a failure to connect (worth a retry)
const DIAL_ERROR = /Connection refused|Connection timed out|No route to host|Connection reset|kex_exchange_identification|Connection closed by|Network is unreachable|Operation timed out/;

function sshArgs(conn: Connection, dir: string): string[] {
  const args = ["-F", "/dev/null", "-p", String(conn.port ?? 22), "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
    "-o", `ConnectTimeout=${conn.perDialTimeout ?? 15}`, "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=6"];
  if (conn.privateKey) {
    const key = path.join(dir, "key");
    fs.writeFileSync(key, conn.privateKey.endsWith("\n") ? conn.privateKey : conn.privateKey + "\n", { mode: 0o600 });
    args.push("-i", key, "-o", "IdentitiesOnly=yes");
  }
  if (conn.hostKey) {
    const kh = path.join(dir, "known_hosts");
    const hostField = (conn.port ?? 22) === 22 ? conn.host : `[${conn.host}]:${conn.port}`;
    fs.writeFileSync(kh, `${hostField} ${conn.hostKey.trim()}\n`, { mode: 0o600 });
    args.push("-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${kh}`);
  } else {
    args.push("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null");
  }
  args.push(`${conn.user ?? "root"}@${conn.host}`);
  return args;
}

function once(conn: Connection, script: string, stdin: string | Buffer | fs.ReadStream | undefined): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-ssh-"));
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn("ssh", [...sshArgs(conn, dir), "--", script], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 255, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    child.stdin.on("error", () => undefined); // the remote side may not read its stdin
    if (stdin instanceof fs.ReadStream) stdin.pipe(child.stdin);
    else child.stdin.end(stdin ?? "");
  }).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}

/** Run with retries while the host cannot be reached (a VM still booting), like the provider's dialErrorLimit. */
export async function run(conn: Connection, script: string, stdin?: string | (() => fs.ReadStream)): Promise<RunResult> {
  const limit = conn.dialErrorLimit ?? 10;
  let last: RunResult | undefined;
  for (let attempt = 1; limit < 0 || attempt <= Math.max(limit, 1); attempt++) {
    last = await once(conn, script, typeof stdin === "function" ? stdin() : stdin);
    if (!(last.code === 255 && DIAL_ERROR.test(last.stderr))) return last;
    await new Promise((r) => setTimeout(r, Math.min(1000 * attempt, 5000)));
  }
  return last!;
}
