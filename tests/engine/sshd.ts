// A throwaway OpenSSH server on loopback: a real SSH target for engine tests that need no lab VM.
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { PulumiFn, Stack } from "@pulumi/pulumi/automation";
import { openStack } from "../../engine/automation";
import { freePort } from "../support/ports";
export { freePort };

export interface TestSshd {
  readonly port: number;
  readonly privateKey: string;
  readonly hostKey: string;
  readonly dir: string;
  stop(): void;
  /** Same port and client key, a newly generated host key (what a man in the middle, or a rebuilt VM, presents). */
  newHostKey(): Promise<string>;
}


async function waitPort(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, "127.0.0.1", () => { s.destroy(); r(true); });
      s.on("error", () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sshd did not listen on 127.0.0.1:${port} within ${ms} ms`);
}

/** Needs root (sshd logs in as root) and openssh-server installed. */
export async function startSshd(): Promise<TestSshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-sshd-"));
  const port = await freePort();
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host_key")]);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "client_key")]);
  fs.copyFileSync(path.join(dir, "client_key.pub"), path.join(dir, "authorized_keys"));
  fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(dir, "sshd_config"), [
    `Port ${port}`, "ListenAddress 127.0.0.1", `HostKey ${dir}/host_key`, `AuthorizedKeysFile ${dir}/authorized_keys`,
    "PermitRootLogin prohibit-password", "PasswordAuthentication no", "StrictModes no", "UsePAM no",
    `PidFile ${dir}/sshd.pid`, "Subsystem sftp internal-sftp", "",
  ].join("\n"));
  const start = () => spawn("/usr/sbin/sshd", ["-D", "-e", "-f", path.join(dir, "sshd_config")], { stdio: "ignore" });
  const readHostKey = () => fs.readFileSync(path.join(dir, "host_key.pub"), "utf8").trim().split(" ").slice(0, 2).join(" ");
  let child: ChildProcess = start();
  await waitPort(port, 10000);
  return {
    port, dir, hostKey: readHostKey(),
    privateKey: fs.readFileSync(path.join(dir, "client_key"), "utf8"),
    stop() { child.kill("SIGTERM"); fs.rmSync(dir, { recursive: true, force: true }); },
    async newHostKey() {
      await new Promise((r) => { child.once("exit", r); child.kill("SIGTERM"); });
      for (const f of ["host_key", "host_key.pub"]) fs.rmSync(path.join(dir, f), { force: true });
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host_key")]);
      child = start();
      await waitPort(port, 10000);
      return readHostKey();
    },
  };
}

export interface ProbeStack {
  readonly sshd: TestSshd;
  readonly stack: Stack;
  /** A fresh directory for the files the program puts on "the host". */
  readonly target: string;
  readonly backendDir: string;
}

/**
 * The set-up every engine test over SSH shares: a real sshd on 127.0.0.1, then a stack of an inline
 * program with its own state backend, workspace and target directory, each a fresh temp dir named after
 * the test. The program may read the returned sshd: it runs only at preview/up time.
 */
export async function openProbeStack(name: string, program: PulumiFn, o: { stackName?: string; projectName?: string } = {}): Promise<ProbeStack> {
  const sshd = await startSshd();
  const tmp = (what: string) => fs.mkdtempSync(path.join(os.tmpdir(), `hastack-${name}-${what}-`));
  const target = tmp("target");
  const backendDir = tmp("state");
  const stack = await openStack({ stackName: o.stackName ?? name, projectName: o.projectName ?? `engine${name}`, config: {}, program, workDir: tmp("ws") },
    { backendDir, passphrase: `${name}-passphrase` });
  return { sshd, stack, target, backendDir };
}
