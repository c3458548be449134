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
  /** Reuse the master connection at this control socket (see openMaster): no new handshake per command. */
  controlPath?: string;
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
  if (conn.controlPath) args.push("-o", "ControlMaster=no", "-o", `ControlPath=${conn.controlPath}`);
  args.push(`${conn.user ?? "root"}@${conn.host}`);
  return args;
}

/**
 * Start a background master connection at `controlPath` (later runs with conn.controlPath reuse it, which
 * saves a handshake per command when seconds count). Resolves false when the host cannot be reached.
 * Stop it with closeMaster.
 */
export function openMaster(conn: Connection, controlPath: string): Promise<boolean> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-ssh-"));
  const args = sshArgs({ ...conn, controlPath: undefined }, dir);
  const target = args.pop()!;
  return new Promise<boolean>((resolve) => {
    // -f: ssh goes to the background once authenticated; its stdio is not ours, so nothing waits on it
    const child = spawn("ssh", [...args, "-M", "-N", "-f", "-o", `ControlPath=${controlPath}`, "-o", "ControlPersist=no", target], { stdio: "ignore" });
    child.on("error", () => resolve(false));
    child.on("close", (code) => resolve(code === 0));
  }).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}

export function closeMaster(conn: Connection, controlPath: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn("ssh", ["-o", `ControlPath=${controlPath}`, "-O", "exit", `${conn.user ?? "root"}@${conn.host}`], { stdio: "ignore" });
    child.on("error", () => resolve());
    child.on("close", () => resolve());
  });
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
