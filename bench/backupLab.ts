// The backup lab: 3 PostgreSQL members, the PgBouncer pair and a pgBackRest repository host as nspawn VMs on their
// own bridge (hsbk0, 10.213.21.0/24, disks /var/lib/hastack-bk, state lab/.bk-state, cgroup hastack-bk; VM names bk*,
// unique across labs: a VM's veth is vb-<name>), deployed with hastack:backup through the real engine. Used by
// tests/e2e/backup.test.ts (once) and `npm run bench:backup -- --lab N` (N drills on one lab). Needs root.
import { execFile, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { ConfigMap, Stack } from "@pulumi/pulumi/automation";
import { engineEnv, openStack, REPO } from "../engine/automation";
import { offlinePasswords, secretLeaves } from "../engine/offline-secrets";
import { median } from "./stats";

const run = promisify(execFile);
const LAB = path.join(REPO, "lab");
export const STATE = path.join(LAB, ".bk-state");
export const ENV = {
  ...process.env,
  HASTACK_LAB_STATE: STATE, HASTACK_LAB_ROOT: "/var/lib/hastack-bk", HASTACK_LAB_BRIDGE: "hsbk0", HASTACK_LAB_CGROUP: "hastack-bk",
  HASTACK_LAB_SUBNET_BASES: "10.213.21.", HASTACK_LAB_HOST_ADDR: "10.213.21.1",
};
const SUBNET = "10.213.21.0/24";
export const STACK = "bklab";
export const PG = [1, 2, 3].map((i) => ({ name: `bkpg${i}`, address: `10.213.21.${10 + i}` }));
const PX = [{ name: "bkpx1", address: "10.213.21.21" }, { name: "bkpx2", address: "10.213.21.22" }];
export const REPO_HOST = { name: "bkrepo1", address: "10.213.21.60" };
const VIP = "10.213.21.20";
/** The stanza: the cluster name, hastack:postgres.clusterName's default. */
export const STANZA = "hastack";
const ENGINE = { backendDir: path.join(STATE, "pulumi"), passphrase: "hastack-bk-lab" };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const sh = (script: string, args: string[]) => execFileSync("bash", [path.join(LAB, script), ...args], { env: ENV, stdio: ["ignore", "inherit", "inherit"] });
export const labDown = () => sh("down.sh", []);

export async function ssh(name: string, cmd: string, timeoutMs = 60000): Promise<string> {
  const p = run("bash", [path.join(LAB, "ssh.sh"), name, cmd], { env: ENV, timeout: timeoutMs, maxBuffer: 1 << 26 });
  p.child.stdin!.end("");
  return (await p).stdout.trim();
}

/**
 * pgBackRest's certificates as a user supplies them (certificates.servers.<host>-pgbackrest): CN = host name, the
 * address as IP and DNS name, server and client. The offline engine cannot run @pulumi/tls, so the CA signs here.
 */
function pgBackRestCertificates(hosts: readonly { name: string; address: string }[]) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-bk-pki-"));
  const openssl = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  try {
    openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
      "-subj", "/O=hastack/CN=hastack backup lab CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    const servers: Record<string, { certPem: string; keyPem: string }> = {};
    for (const h of hosts) {
      fs.writeFileSync(path.join(dir, `${h.name}.ext`), `subjectAltName=DNS:${h.name},DNS:${h.address},IP:${h.address}\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n`);
      openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${h.name}.key`, "-out", `${h.name}.csr`, "-subj", `/O=hastack/CN=${h.name}`]);
      openssl(["x509", "-req", "-in", `${h.name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30", "-extfile", `${h.name}.ext`, "-out", `${h.name}.crt`]);
      servers[`${h.name}-pgbackrest`] = { certPem: fs.readFileSync(path.join(dir, `${h.name}.crt`), "utf8"), keyPem: fs.readFileSync(path.join(dir, `${h.name}.key`), "utf8") };
    }
    return { caCertPem: fs.readFileSync(path.join(dir, "ca.crt"), "utf8"), servers };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface Member { name: string; role: string; state: string }
export const cluster = async (via = PG[0]): Promise<Member[]> => JSON.parse(await ssh(via.name, `curl -sf --max-time 5 http://${via.address}:8008/cluster`)).members;
export const leaderOf = (ms: Member[]) => ms.find((m) => m.role === "leader")?.name;
export const healthy = (ms: Member[]) => ms.length === PG.length && ms.filter((m) => m.role === "leader").length === 1
  && ms.every((m) => ["running", "streaming"].includes(m.state));

/** `pgbackrest info` of the stanza as the repository host sees it. */
export interface StanzaInfo { status: { code: number; message: string }; backup: { type: string; label: string; timestamp: { start: number; stop: number }; info: { size: number; repository: { size: number; delta: number } } }[] }
export const info = async (): Promise<StanzaInfo> =>
  JSON.parse(await ssh(REPO_HOST.name, `runuser -u postgres -- pgbackrest --stanza=${STANZA} --output=json info`))[0];

/** Acknowledged writes of one writer run: writer.py through the PgBouncer VIP, one connection per write. */
export interface WriterRun { run: string; acked: number[]; attempts: number }

export class BackupLab {
  stack!: Stack;
  readonly passwords = offlinePasswords();
  private readonly certs = pgBackRestCertificates([...PG, REPO_HOST]);
  readonly pwFile = path.join(STATE, "postgresApp.pw");
  readonly out = { onOutput: (s: string) => process.stdout.write(s) };

  /** The stack's config; `withBackup: false` leaves hastack:backup out (a user who removes backups). */
  config(withBackup = true): ConfigMap {
    const obj = (v: unknown) => ({ value: JSON.stringify(v) });
    const hosts = [...PG, ...PX, REPO_HOST];
    return {
      "hastack:subnet": { value: SUBNET },
      "hastack:sshPrivateKey": { value: fs.readFileSync(path.join(STATE, "id_ed25519"), "utf8"), secret: true },
      "hastack:ssh": obj({ user: "root", port: 22, hostKeys: Object.fromEntries(hosts.map((h) => [h.address,
        fs.readFileSync(`${ENV.HASTACK_LAB_ROOT}/${h.name}/upper/etc/ssh/ssh_host_ed25519_key.pub`, "utf8").split(" ").slice(0, 2).join(" ")])) }),
      // a one-site "site" stack: the datacenter's only form without an app tier
      "hastack:site": obj({ name: STACK, peers: [], primarySite: STACK, epoch: 1 }),
      "hastack:postgres": obj({ nodes: PG, failoverProfile: "aggressive" }),
      "hastack:proxy": obj({ nodes: PX, vip: VIP, interface: "host0" }),
      "hastack:redis": obj({ enabled: false }),
      "hastack:firewall": obj({ adminSources: ["10.213.21.1/32"] }),
      ...(withBackup ? { "hastack:backup": obj({ repoHost: REPO_HOST, retentionFull: 2, archiveTimeoutSeconds: 60 }) } : {}),
      ...secretLeaves("hastack:passwords", this.passwords),
      // without backups the pgBackRest hosts' certificates go too: the preview refuses a server certificate for a host
      // that serves no TLS, naming its key (hastack:certificates.servers.<host>-pgbackrest)
      ...secretLeaves("hastack:certificates", withBackup ? this.certs : { caCertPem: this.certs.caCertPem }),
    };
  }

  /** Fresh VMs (what an interrupted run left is removed first). */
  async boot(): Promise<void> {
    labDown();
    sh("net.sh", ["up"]);
    sh("vm.sh", ["key"]);
    await Promise.all([...PG, ...PX, REPO_HOST].map((h) => run("bash", [path.join(LAB, "vm.sh"), "up", h.name, h.address], { env: ENV, timeout: 300000 })));
    fs.writeFileSync(this.pwFile, this.passwords.postgresApp, { mode: 0o600 });
  }

  async open(withBackup = true): Promise<Stack> {
    const workDir = this.projectDir;
    fs.mkdirSync(workDir, { recursive: true });
    fs.copyFileSync(path.join(REPO, "Pulumi.yaml"), path.join(workDir, "Pulumi.yaml"));
    this.stack = await openStack({ stackName: STACK, config: this.config(withBackup), workDir }, ENGINE);
    return this.stack;
  }

  get projectDir(): string { return path.join(STATE, "project"); }

  /** The timer's own service, started by hand (a oneshot: returns when the backup is done); seconds it took. */
  async backupNow(kind: "full" | "diff"): Promise<number> {
    const t0 = Date.now();
    await ssh(REPO_HOST.name, `systemctl start hastack-pgbackrest-${STANZA}-${kind}.service`, 1800000);
    return (Date.now() - t0) / 1000;
  }

  /** writer.py through the PgBouncer VIP for `seconds`, one connection per write. */
  async write(run: string, seconds: number): Promise<WriterRun> {
    const args = [path.join(REPO, "bench", "writer.py"), "--host", VIP, "--port", "6432", "--dbname", "workspad", "--user", "workspad",
      "--password-file", this.pwFile, "--seconds", String(seconds), "--interval", "0.1", "--run", run];
    const { stdout } = await run_(args);
    const w = JSON.parse(stdout) as { run: string; attempts: number; acked: [number, number][] };
    return { run: w.run, attempts: w.attempts, acked: w.acked.map(([s]) => s) };
  }

  /** `npm run restore -- …` as a user runs it against this stack: stdout (the JSON summary), stderr, exit code. */
  restore(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const env = { ...process.env, ...engineEnv(ENGINE) };
    return new Promise((resolve, reject) => {
      const p = spawn("npm", ["run", "--silent", "restore", "--", "--stack", STACK, "--dir", this.projectDir, ...args], { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "", stderr = "";
      p.stdout.on("data", (d) => (stdout += d));
      p.stderr.on("data", (d) => { stderr += d; process.stderr.write(d); });
      p.on("error", reject);
      p.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
  }

  /** Rows of `runs` in the restored server (socket on its host, port `port`), as run → seqs. */
  async restoredRows(host: string, port: number, runs: string[]): Promise<Map<string, number[]>> {
    const q = `select run || ' ' || seq from drill_writes where run in (${runs.map((r) => `'${r}'`).join(",")}) order by 1`;
    const out = await ssh(host, `cd /tmp && runuser -u postgres -- psql -X -qAt -h /var/run/postgresql -p ${port} -d workspad -c ${JSON.stringify(q)}`);
    const m = new Map<string, number[]>(runs.map((r) => [r, []]));
    for (const line of out.split("\n").filter(Boolean)) { const [r, s] = line.split(" "); m.get(r)!.push(Number(s)); }
    return m;
  }

  /**
   * One drill: rows acknowledged, a target time between two stretches of writes, `npm run restore` to it on
   * `host`, and the rows found there. The restored server is stopped and its directory removed afterwards.
   */
  async drill(label: string, host: string, port: number): Promise<DrillResult> {
    const before = await this.write(`${label}-before`, 8);
    await sleep(1500);
    const target = new Date().toISOString();
    await sleep(1500);
    const after = await this.write(`${label}-after`, 5);
    const dataDir = `/var/lib/postgresql/15/restore-${label}`;
    const t0 = Date.now();
    const res = await this.restore(["--to", target, "--host", host, "--port", String(port), "--data-dir", dataDir]);
    const wallSeconds = (Date.now() - t0) / 1000;
    if (res.code !== 0) throw new Error(`npm run restore failed (exit ${res.code}): ${res.stderr}`);
    const summary = JSON.parse(res.stdout.trim().split("\n").pop()!);
    const rows = await this.restoredRows(host, port, [before.run, after.run]);
    const found = rows.get(before.run)!;
    return { label, target, host, port, dataDir, summary, wallSeconds, before, after, foundBefore: found,
      missing: before.acked.filter((s) => !found.includes(s)), foundAfter: rows.get(after.run)!,
      inRecovery: await ssh(host, `cd /tmp && runuser -u postgres -- psql -X -qAt -h /var/run/postgresql -p ${port} -d postgres -c 'select pg_is_in_recovery()'`) };
  }

  async dropRestored(d: DrillResult): Promise<void> {
    await ssh(d.host, `systemctl stop hastack-restore-${d.port}; rm -rf --one-file-system ${d.dataDir}`);
  }
}

export interface DrillResult {
  label: string; target: string; host: string; port: number; dataDir: string; wallSeconds: number;
  summary: { rtoSeconds: number; restoreSeconds: number; recoverySeconds: number; archivedBefore: boolean; unit: string };
  before: WriterRun; after: WriterRun; foundBefore: number[]; missing: number[]; foundAfter: number[]; inRecovery: string;
}

async function run_(args: string[]): Promise<{ stdout: string }> {
  // Debian's python3 (python3-psycopg2), not whatever python3 is first on PATH (bench/drills.ts does the same)
  return run("/usr/bin/python3", args, { timeout: 120000, maxBuffer: 1 << 24 });
}


interface LabRound { backupSeconds: number; dbMiB: number; backupMiB: number; repoMiB: number; rtoSeconds: number; commandSeconds: number; expected: number; found: number; foundAfterTarget: number; restoreHost: string }

/**
 * `npm run bench:backup -- --lab --runs N --mb SIZE`: one backup lab, the database filled to about SIZE MiB, then N
 * rounds of (a full backup from the timer's service, a restore drill with `npm run restore`), medians →
 * bench/results-backup-lab.{md,json}. The lab is removed at the end.
 */
export async function labMain(runs: number, mb: number): Promise<void> {
  const command = `npm run bench:backup -- --lab --runs ${runs} --mb ${mb}`;
  const started = new Date().toISOString();
  const lab = new BackupLab();
  const rounds: LabRound[] = [];
  try {
    await lab.boot();
    await lab.open();
    const up = await lab.stack.up(lab.out);
    if (up.summary.result !== "succeeded") throw new Error(`pulumi up: ${up.summary.result}`);
    const leader = leaderOf(await cluster())!;
    // compressible like real data, not all zeros (as the loopback bench)
    await ssh(leader, `cd /tmp && runuser -u postgres -- psql -X -qAt -d workspad -c "CREATE TABLE filler AS SELECT g AS id, md5(g::text) || md5((g*7)::text) AS a, now() AS t FROM generate_series(1, ${mb * 7000}) g"`, 600000);
    for (let i = 0; i < runs; i++) {
      const ms = await cluster();
      const restoreHost = ms.find((m) => m.role !== "leader")!.name;
      const backupSeconds = await lab.backupNow("full");
      const last = (await info()).backup.slice(-1)[0];
      const repoMiB = Number((await ssh(REPO_HOST.name, "du -sm /var/lib/pgbackrest | cut -f1")));
      const d = await lab.drill(`bench${i + 1}`, restoreHost, 5433);
      await lab.dropRestored(d);
      const round = { backupSeconds, dbMiB: Math.round(last.info.size / 2 ** 20), backupMiB: Math.round(last.info.repository.delta / 2 ** 20), repoMiB,
        rtoSeconds: d.summary.rtoSeconds, commandSeconds: Math.round(d.wallSeconds * 10) / 10, expected: d.before.acked.length,
        found: d.before.acked.length - d.missing.length, foundAfterTarget: d.foundAfter.length, restoreHost };
      console.log(`round ${i + 1}/${runs}: ${JSON.stringify(round)}`);
      rounds.push(round);
    }
  } finally {
    if (!process.env.HASTACK_KEEP_LAB) labDown();
  }
  const med = (k: keyof LabRound) => median(rounds.map((x) => x[k] as number));
  const medians = { dbMiB: med("dbMiB"), backupSeconds: med("backupSeconds"), backupMiB: med("backupMiB"), repoMiB: med("repoMiB"), rtoSeconds: med("rtoSeconds"), commandSeconds: med("commandSeconds") };
  const drillOk = rounds.every((x) => x.found === x.expected && x.foundAfterTarget === 0);
  const out = { command, started, finished: new Date().toISOString(), load: fs.readFileSync("/proc/loadavg", "utf8").trim(), rounds, medians, drillOk };
  const dir = __dirname;
  const col = (f: (x: LabRound) => string) => rounds.map(f).join(", ");
  fs.writeFileSync(path.join(dir, "results-backup-lab.json"), JSON.stringify(out, null, 2) + "\n");
  fs.writeFileSync(path.join(dir, "results-backup-lab.md"), [
    "# Backup and restore figures on the backup lab (pgBackRest between VMs)",
    "",
    `Command: \`${command}\` (as root). Started ${started}, finished ${out.finished}; load at the end: ${out.load} (2 cores, shared).`,
    "Lab: bkpg1-3 (Patroni, PostgreSQL 15), bkpx1-2 (PgBouncer pair), bkrepo1 (repository, encrypted) as nspawn VMs on hsbk0, deployed by `pulumi up` with",
    "hastack:backup; backups by the timer's own service (`systemctl start hastack-pgbackrest-hastack-full.service`) from a streaming replica; the restore by",
    "`npm run restore -- --to <target> --host <a replica>` into a new PostgreSQL beside the cluster; rows from writer.py through the PgBouncer VIP.",
    "",
    `| figure | median of ${rounds.length} | runs |`,
    "| --- | --- | --- |",
    `| database size (MiB, pgBackRest's) | ${medians.dbMiB} | ${col((x) => String(x.dbMiB))} |`,
    `| full backup duration (s) | ${medians.backupSeconds.toFixed(1)} | ${col((x) => x.backupSeconds.toFixed(1))} |`,
    `| that backup in the repository (MiB, compressed, encrypted) | ${medians.backupMiB} | ${col((x) => String(x.backupMiB))} |`,
    `| repository on disk after it (MiB, all backups kept + WAL) | ${medians.repoMiB} | ${col((x) => String(x.repoMiB))} |`,
    `| restore RTO: pgbackrest restore + recovery to the target + promoted (s) | ${medians.rtoSeconds.toFixed(1)} | ${col((x) => x.rtoSeconds.toFixed(1))} |`,
    `| the whole \`npm run restore\` (s, incl. reading the stack and a WAL switch) | ${medians.commandSeconds.toFixed(1)} | ${col((x) => x.commandSeconds.toFixed(1))} |`,
    `| drill rows acknowledged before the target / found | | ${col((x) => `${x.expected}/${x.found}`)} |`,
    `| drill rows found from after the target | | ${col((x) => String(x.foundAfterTarget))} |`,
    "",
    drillOk ? "Drill: every round found every row acknowledged before the target time and none written after it." : "**Drill MISSED**: see the rounds above.",
    "",
  ].join("\n"));
  console.log(JSON.stringify(medians), drillOk ? "drill ok" : "DRILL MISSED");
  if (!drillOk) process.exit(1);
}
