// The merge-request pipeline's preview job (scripts/ci-preview.sh, run by .gitlab-ci.yml) against the
// prod stack kept in a shared S3 backend (loopback S3 server, real CLI, no root), with a stand-in
// for GitLab's notes API on loopback: the whole diff and a short note are written, neither holds a
// secret, and the note reaches the merge request with the token only in the request's header.
import { spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { REPO } from "../../engine/automation";
import { getObject, listKeys, S3Server, startS3Server } from "../../engine/s3backend";
import { openProdStack, ProdStack, STACK } from "../../scripts/preview-prod";
import { NOTE_MAX_ROWS } from "../../scripts/ci-preview";
import { leaks } from "../support/leaks";

jest.setTimeout(15 * 60 * 1000);

interface Run { code: number | null; stdout: string; stderr: string }

function runScript(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn("bash", [path.join(REPO, "scripts", "ci-preview.sh"), ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    p.stdout.on("data", (d) => { stdout += d; });
    p.stderr.on("data", (d) => { stderr += d; });
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("the pipeline's preview job (scripts/ci-preview.sh) on the prod stack in a shared S3 backend", () => {
  let dir: string;
  let s3: S3Server;
  let prod: ProdStack;
  let gitlab: http.Server;
  const posts: { url: string; token: string | undefined; body: string }[] = [];
  const token = `glpat-${crypto.randomBytes(12).toString("hex")}`;
  let run: Run;
  let baseEnv: NodeJS.ProcessEnv;
  let bucketBefore: string[] = [];
  let stateBefore = "";
  const stateKey = `.pulumi/stacks/hastack/${STACK}.json`;
  const outDir = () => path.join(dir, "out");
  const read = (f: string) => fs.readFileSync(path.join(outDir(), f), "utf8");

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-ci-preview-"));
    s3 = await startS3Server(path.join(dir, "s3"));
    const passphrase = "ci-preview-test-passphrase";
    // the stack as a team has it: created in the shared bucket, its secrets in its config file as ciphertext
    prod = await openProdStack({ passphrase, backendUrl: s3.backendUrl, backendEnv: s3.env });
    gitlab = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d) => { body += d; });
      req.on("end", () => {
        posts.push({ url: `${req.method} ${req.url}`, token: req.headers["private-token"] as string | undefined, body });
        res.writeHead(201, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => gitlab.listen(0, "127.0.0.1", r));
    const passphraseFile = path.join(dir, "passphrase");
    fs.writeFileSync(passphraseFile, passphrase, { mode: 0o600 });
    // what the CI variables give the job: no passphrase in the environment itself, a file instead
    baseEnv = { ...process.env, ...s3.env, PULUMI_BACKEND_URL: s3.backendUrl, PULUMI_CONFIG_PASSPHRASE_FILE: passphraseFile,
      PULUMI_HOME: path.join(prod.backendDir, ".pulumi-home"), PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true", HASTACK_PROJECT_DIR: prod.workDir };
    delete baseEnv.PULUMI_CONFIG_PASSPHRASE;
    const { port } = gitlab.address() as { port: number };
    bucketBefore = await listKeys(s3.endpoint, s3.bucket);
    stateBefore = await getObject(s3.endpoint, s3.bucket, stateKey);
    run = await runScript([STACK, outDir()], { ...baseEnv, GITLAB_NOTE_TOKEN: token,
      CI_API_V4_URL: `http://127.0.0.1:${port}/api/v4`, CI_PROJECT_ID: "42", CI_MERGE_REQUEST_IID: "7" });
  });

  afterAll(async () => {
    gitlab?.close();
    await s3?.stop();
    prod?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("previews the stack kept in the bucket and writes the whole diff", async () => {
    expect({ code: run.code, stderr: run.code === 0 ? "" : run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(bucketBefore).toContain(stateKey);
    // a preview takes no lock and writes nothing: merge requests can run with read-only credentials
    expect(await listKeys(s3.endpoint, s3.bucket)).toEqual(bucketBefore);
    expect(await getObject(s3.endpoint, s3.bucket, stateKey)).toBe(stateBefore);
    const full = read(`preview-${STACK}.txt`);
    expect(full).toContain(`Previewing update (${STACK})`);
    // --diff: inputs of the planned steps are in the text, secret ones masked
    expect(full).toContain("[secret]");
    expect(full).toMatch(/\+ command:remote:Command: \(create\)/);
  });

  it("writes a short note whose counts agree with the CLI's own summary", () => {
    const note = read(`preview-${STACK}.md`);
    expect(run.stdout).toBe(note);
    const created = Number(/\+ (\d+) to create/.exec(read(`preview-${STACK}.txt`))?.[1]);
    expect(created).toBeGreaterThan(NOTE_MAX_ROWS);
    expect(note.split("\n")[0]).toBe(`#### \`pulumi preview --diff\` of stack \`${STACK}\`: ${created} to create`);
    // many creates are grouped by type, so the note stays a screenful however big the stack
    expect(note).toMatch(/\| create \| \d+ resources \| command:remote:Command \| \|/);
    expect(note.split("\n").length).toBeLessThanOrEqual(NOTE_MAX_ROWS + 8);
    expect(note).toContain(`job artifact \`preview-${STACK}.txt\``);
  });

  it("holds no secret in the note, the whole diff or the job's output", () => {
    expect(prod.secrets.length).toBeGreaterThan(0);
    const found = [
      ...leaks("note", read(`preview-${STACK}.md`), prod.secrets),
      ...leaks("whole diff", read(`preview-${STACK}.txt`), prod.secrets),
      ...leaks("job output", run.stdout + run.stderr, [...prod.secrets, token]),
    ];
    expect(found).toEqual([]);
    expect(read(`preview-${STACK}.txt`)).not.toMatch(/PRIVATE KEY/);
  });

  it("posts the note on the merge request once, the token only in the request header", () => {
    expect(posts.map((p) => p.url)).toEqual(["POST /api/v4/projects/42/merge_requests/7/notes"]);
    expect(posts[0].token).toBe(token);
    expect(new URLSearchParams(posts[0].body).get("body")).toBe(read(`preview-${STACK}.md`));
  });

  it("fails, saying what is missing, when no shared backend is given (never a local one instead)", async () => {
    const env = { ...baseEnv };
    delete env.PULUMI_BACKEND_URL;
    const r = await runScript([STACK, path.join(dir, "out-nobackend")], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("PULUMI_BACKEND_URL is not set");
    expect(fs.existsSync(path.join(dir, "out-nobackend"))).toBe(false);
  });

  it(".gitlab-ci.yml parses, and every script it runs is in the repo", () => {
    const doc = yaml.load(fs.readFileSync(path.join(REPO, ".gitlab-ci.yml"), "utf8")) as Record<string, any>;
    // jobs and the hidden templates (".name") they extend
    const jobs = Object.values(doc).filter((v) => v && typeof v === "object" && ("script" in v || "before_script" in v));
    expect(jobs.length).toBeGreaterThan(0);
    const lines = jobs.flatMap((j) => [j.before_script ?? [], j.script ?? []].flat(2)) as string[];
    const scripts = [...new Set(lines.flatMap((l) => [...l.matchAll(/\bscripts\/[\w.-]+/g)].map((m) => m[0])))];
    expect(scripts).toContain("scripts/ci-preview.sh");
    for (const s of scripts) expect({ script: s, exists: fs.existsSync(path.join(REPO, s)) }).toEqual({ script: s, exists: true });
  });
});
