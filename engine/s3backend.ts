// A shared state backend on this machine: the loopback S3 server of backend/s3server (built by
// scripts/setup-s3.sh), and the s3:// backend URL and AWS settings the Pulumi CLI needs to use it.
// Teams use their own S3 (or Pulumi Cloud) the same way: see README "Sharing state".
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { REPO } from "./automation";

let binary: string | undefined;

/** The server binary (builds it once per source version; the script reuses its cache). */
export function s3ServerBinary(): string {
  binary ??= execFileSync("bash", [path.join(REPO, "scripts", "setup-s3.sh")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] })
    .trim().split("\n").pop()!;
  return binary;
}

/**
 * The CLI's URL for state in `bucket` of an S3-compatible server (gocloud's s3blob driver):
 * path-style requests, since a loopback endpoint has no per-bucket host names; the server
 * returns no checksums, so the SDK is told to check them only where S3 requires them.
 */
export function s3BackendUrl(bucket: string, endpoint: string, region = "us-east-1"): string {
  const q = new URLSearchParams({ endpoint, region, use_path_style: "true", response_checksum_validation: "when_required" });
  return `s3://${bucket}?${q.toString()}`;
}

export interface S3Server {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  readonly bucket: string;
  /** PULUMI_BACKEND_URL for state in `bucket`. */
  readonly backendUrl: string;
  /** AWS settings for the CLI: credentials in a 0600 file, no instance metadata lookups. */
  readonly env: Record<string, string>;
  /** Stop the server (its data stays in `dir`). */
  stop(): Promise<void>;
}

/** Start the server on a free loopback port, with its data in `dir` (reused when it exists). */
export async function startS3Server(dir: string, bucket = "hastack-state"): Promise<S3Server> {
  fs.mkdirSync(dir, { recursive: true });
  const child = spawn(s3ServerBinary(), ["-dir", path.join(dir, "data"), "-bucket", bucket], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => { err += d; });
  const endpoint = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`s3server did not start within 15 s: ${err.trim()}`)), 15000);
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`s3server exited with ${code}: ${err.trim()}`)); });
  });
  // an exit before stop() would otherwise show only as "connection refused" in the CLI's errors
  let stopping = false;
  child.once("exit", (code, signal) => {
    if (!stopping) process.stderr.write(`s3server on ${endpoint} exited unexpectedly (code ${code}, signal ${signal}): ${err.trim()}\n`);
  });
  // the server checks no credentials, but the SDK signs every request and needs some; a file, as a team keeps real ones
  const credentials = path.join(dir, "aws-credentials");
  fs.writeFileSync(credentials, "[default]\naws_access_key_id = hastack-test\naws_secret_access_key = hastack-test-not-a-secret\n", { mode: 0o600 });
  fs.writeFileSync(path.join(dir, "aws-config"), "[default]\nregion = us-east-1\n", { mode: 0o600 });
  return {
    endpoint, bucket, backendUrl: s3BackendUrl(bucket, endpoint),
    env: {
      AWS_SHARED_CREDENTIALS_FILE: credentials,
      AWS_CONFIG_FILE: path.join(dir, "aws-config"),
      AWS_PROFILE: "default",
      // never ask a cloud metadata address for credentials: only loopback traffic here
      AWS_EC2_METADATA_DISABLED: "true",
    },
    stop: () => { stopping = true; return stopChild(child); },
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => { child.once("exit", () => resolve()); child.kill("SIGTERM"); });
}

/** Keys under `prefix` in a bucket of the loopback server (which answers unsigned requests). */
export async function listKeys(endpoint: string, bucket: string, prefix = ""): Promise<string[]> {
  const res = await fetch(`${endpoint}/${bucket}?list-type=2&prefix=${encodeURIComponent(prefix)}`);
  if (!res.ok) throw new Error(`list ${bucket}/${prefix}: HTTP ${res.status}`);
  const xml = await res.text();
  if (/<IsTruncated>true</.test(xml)) throw new Error(`list ${bucket}/${prefix}: more than one page of keys`);
  return [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
}

/** One object's content from the loopback server. */
export async function getObject(endpoint: string, bucket: string, key: string): Promise<string> {
  const res = await fetch(`${endpoint}/${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`);
  if (!res.ok) throw new Error(`get ${bucket}/${key}: HTTP ${res.status}`);
  return res.text();
}
