// `npm run bench:backup [-- --runs N --mb SIZE]`: backup and restore figures with the real pgBackRest 2.45 and
// PostgreSQL 15 on loopback, configured by the rendered files (components/pgBackRest/render.ts) exactly as in
// tests/daemons/pgBackRest.test.ts: a database "host" (127.0.0.2) and a repository "host" (127.0.0.3), each with its
// own `pgbackrest server` on mutual TLS, the repository encrypted (aes-256-cbc). Per run: a fresh cluster filled
// to SIZE MiB, a full backup (duration, repository size), a writer's acknowledged rows around a target time, a
// point-in-time restore into a new data directory (RTO = restore start until the promoted server answers), and the
// rows found there against the rows acknowledged before the target. Needs root. Writes bench/results-backup.{md,json}.
// Not the lab: no network between VMs, no firewall, one database host (the backup falls back from backup-standby).
// With --lab, the figures come from the backup lab instead (bench/backupLab.ts → bench/results-backup-lab.*).
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolvePgBackRestSettings } from "../components/pgBackRest/args";
import * as r from "../components/pgBackRest/render";
import { freePort } from "../tests/support/ports";
import { median } from "./stats";

const BIN = "/usr/lib/postgresql/15/bin";
const DB = { name: "bkdb1", address: "127.0.0.2" };
const REPO = { name: "bkrepo1", address: "127.0.0.3" };

function opt(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? dflt : Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: got ${JSON.stringify(process.argv[i + 1])}; expected a whole number ≥ 1`);
  return v;
}

interface RunResult { dbMiB: number; backupSeconds: number; repoMiB: number; rtoSeconds: number; expected: number; found: number; foundAfterTarget: number; missing: number }

async function oneRun(dbMiB: number): Promise<RunResult> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-bench-backup-"));
  fs.chmodSync(tmp, 0o755);
  spawnSync("chown", ["postgres:postgres", tmp]);
  const servers: ChildProcess[] = [];
  const pgs: string[] = [];
  const env = (side: string) => ({ ...process.env, PGBACKREST_CONFIG: path.join(tmp, side, "pgbackrest.conf"),
    PGBACKREST_LOG_PATH: path.join(tmp, side, "log"), PGBACKREST_LOCK_PATH: path.join(tmp, side, "lock") });
  const ok = (side: string, script: string): string => {
    const res = spawnSync("runuser", ["-u", "postgres", "--", "bash", "-c", `set -eu\n${script}`], { encoding: "utf8", env: env(side), maxBuffer: 1 << 28 });
    if (res.status !== 0) throw new Error(`${script}\nexit ${res.status}\n${res.stdout}\n${res.stderr}`);
    return res.stdout;
  };
  const sock = path.join(tmp, "sock");
  const psql = (port: number, sql: string) => ok("db", `psql -X -At -h ${sock} -p ${port} -d postgres -c ${JSON.stringify(sql)}`).trim();
  try {
    const tlsPort = await freePort("127.0.0.3");
    const pgPort = await freePort();
    const s = { ...resolvePgBackRestSettings({ repoHost: REPO, tlsPort }, { clusterName: "bench", dbHosts: [DB], dbPorts: [] })!, repoPath: path.join(tmp, "repo") };
    const pki = path.join(tmp, "pki");
    fs.mkdirSync(pki);
    const sh = (c: string) => { const x = spawnSync("bash", ["-c", `set -eu; cd ${pki}; ${c}`], { encoding: "utf8" }); if (x.status) throw new Error(x.stderr); };
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=bench-ca 2>/dev/null");
    for (const [side, h] of [["db", DB], ["repo", REPO]] as const) {
      // pgBackRest 2.45 matches the dialled host against CN and DNS names only: the address is a DNS name too
      fs.writeFileSync(path.join(pki, `${side}.ext`), `subjectAltName=IP:${h.address},DNS:${h.name},DNS:${h.address}\nextendedKeyUsage=serverAuth,clientAuth\n`);
      sh(`openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ${side}.key -out ${side}.csr -subj /CN=${h.name} 2>/dev/null`);
      sh(`openssl x509 -req -in ${side}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ${side}.ext -out ${side}.crt 2>/dev/null`);
    }
    for (const d of [sock, s.repoPath]) fs.mkdirSync(d);
    const dataDir = path.join(tmp, "pgdata");
    const confs = {
      db: r.renderDbHostConfig({ settings: s, self: DB, dataDir, pgPort, socketDir: sock }),
      repo: r.renderRepoHostConfig({ settings: s, dbHosts: [DB], dataDir, pgPort, socketDir: sock, cipherPass: `bench-${Date.now()}-passphrase` }),
    };
    for (const side of ["db", "repo"] as const) {
      const dir = path.join(tmp, side);
      for (const d of ["tls", "log", "lock"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
      fs.writeFileSync(path.join(dir, "pgbackrest.conf"), confs[side].split(r.TLS_DIR).join(path.join(dir, "tls")), { mode: 0o640 });
      fs.copyFileSync(path.join(pki, "ca.crt"), path.join(dir, "tls", "ca.crt"));
      fs.copyFileSync(path.join(pki, `${side}.crt`), path.join(dir, "tls", "host.crt"));
      fs.copyFileSync(path.join(pki, `${side}.key`), path.join(dir, "tls", "host.key"));
      fs.chmodSync(path.join(dir, "tls", "host.key"), 0o600);
      servers.push(spawn("runuser", ["-u", "postgres", "--", "pgbackrest", "server"], { env: env(side), stdio: "ignore" }));
    }
    fs.writeFileSync(path.join(tmp, "pgbackrest-backup"), r.renderBackupScript(), { mode: 0o755 });
    spawnSync("chown", ["-R", "postgres:postgres", tmp]);
    const startPg = (dir: string, port: number) => {
      ok("db", `${BIN}/pg_ctl -D ${dir} -l ${dir}.log -w -t 300 -o "-p ${port} -k ${sock} -c listen_addresses=''" start >/dev/null`);
      pgs.push(dir);
    };
    ok("db", `${BIN}/initdb -D ${dataDir} -A trust -U postgres >/dev/null`);
    fs.appendFileSync(path.join(dataDir, "postgresql.conf"), `archive_mode = on\narchive_command = '${r.patroniArchive(s.stanza).archiveCommand}'\nwal_level = replica\n`);
    startPg(dataDir, pgPort);
    // the database: random-ish rows (compressible like real data, not all zeros) until SIZE MiB
    psql(pgPort, `CREATE TABLE filler AS SELECT g AS id, md5(g::text) || md5((g*7)::text) AS a, now() AS t FROM generate_series(1, ${dbMiB * 7000}) g`);
    const size = Number(psql(pgPort, "SELECT pg_database_size('postgres')")) / 1048576;
    ok("repo", r.stanzaCreateScript(s.stanza).replace(/runuser -u postgres -- /g, ""));
    ok("repo", r.checkScript(s.stanza).replace(/runuser -u postgres -- /g, ""));
    const t0 = Date.now();
    ok("repo", `${path.join(tmp, "pgbackrest-backup")} ${s.stanza} full 2>/dev/null`);
    const backupSeconds = (Date.now() - t0) / 1000;
    const repoMiB = Number(spawnSync("du", ["-sm", s.repoPath], { encoding: "utf8" }).stdout.split("\t")[0]);
    // the writer: one row per acknowledged commit, the target time between two of them
    psql(pgPort, "CREATE TABLE drill (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");
    for (let i = 0; i < 100; i++) psql(pgPort, "INSERT INTO drill DEFAULT VALUES");
    await new Promise((ok) => setTimeout(ok, 1100));
    const target = psql(pgPort, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    await new Promise((ok) => setTimeout(ok, 1100));
    for (let i = 0; i < 100; i++) psql(pgPort, "INSERT INTO drill DEFAULT VALUES");
    const before = psql(pgPort, `SELECT id FROM drill WHERE at < '${target}' ORDER BY id`).split("\n");
    const after = new Set(psql(pgPort, `SELECT id FROM drill WHERE at >= '${target}' ORDER BY id`).split("\n"));
    ok("db", `pgbackrest --stanza=${s.stanza} check`);
    // RTO: from the restore command until the promoted copy answers
    const restored = path.join(tmp, "restored");
    const port = await freePort();
    const t1 = Date.now();
    const res = spawnSync("bash", ["-c", `set -eu\n${r.restoreScript(s.stanza, restored, { time: target })}`], { encoding: "utf8", env: env("db") });
    if (res.status !== 0) throw new Error(res.stdout + res.stderr);
    startPg(restored, port);
    let rows: string[] = [];
    while (Date.now() - t1 < 600000) {
      const q = spawnSync("runuser", ["-u", "postgres", "--", "psql", "-X", "-At", "-h", sock, "-p", String(port), "-d", "postgres", "-c",
        "SELECT pg_is_in_recovery()::text || ' ' || coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM drill"], { encoding: "utf8" });
      if (q.status === 0 && q.stdout.startsWith("false ")) { rows = q.stdout.trim().split(" ")[1].split(",").filter(Boolean); break; }
      await new Promise((ok) => setTimeout(ok, 200));
    }
    const rtoSeconds = (Date.now() - t1) / 1000;
    const found = new Set(rows);
    return { dbMiB: Math.round(size), backupSeconds, repoMiB, rtoSeconds, expected: before.length, found: before.filter((id) => found.has(id)).length,
      foundAfterTarget: rows.filter((id) => after.has(id)).length, missing: before.filter((id) => !found.has(id)).length };
  } finally {
    for (const d of pgs) spawnSync("runuser", ["-u", "postgres", "--", `${BIN}/pg_ctl`, "-D", d, "-m", "immediate", "stop"], { stdio: "ignore" });
    for (const p of servers) p.kill("SIGTERM");
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}


async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("needs root (runs PostgreSQL and pgbackrest as postgres)");
  const runs = opt("runs", 3), mb = opt("mb", 256);
  // --lab: the same figures between VMs deployed by the stack (bench/backupLab.ts) → results-backup-lab.*
  if (process.argv.includes("--lab")) return (await import("./backupLab")).labMain(runs, mb);
  const command = `npm run bench:backup -- --runs ${runs} --mb ${mb}`;
  const started = new Date().toISOString();
  const results: RunResult[] = [];
  for (let i = 0; i < runs; i++) {
    const x = await oneRun(mb);
    console.log(`run ${i + 1}/${runs}: ${JSON.stringify(x)}`);
    results.push(x);
  }
  const med = (k: keyof RunResult) => median(results.map((x) => x[k]));
  const summary = { backupSeconds: med("backupSeconds"), repoMiB: med("repoMiB"), rtoSeconds: med("rtoSeconds"), dbMiB: med("dbMiB") };
  const drillOk = results.every((x) => x.missing === 0 && x.foundAfterTarget === 0);
  const out = { command, started, finished: new Date().toISOString(), pgbackrest: spawnSync("pgbackrest", ["version"], { encoding: "utf8" }).stdout.trim(),
    load: fs.readFileSync("/proc/loadavg", "utf8").trim(), runs: results, medians: summary, drillOk };
  const dir = path.join(__dirname);
  fs.writeFileSync(path.join(dir, "results-backup.json"), JSON.stringify(out, null, 2) + "\n");
  fs.writeFileSync(path.join(dir, "results-backup.md"), [
    "# Backup and restore figures (pgBackRest on loopback)",
    "",
    `Command: \`${command}\` (as root). Started ${started}, finished ${out.finished}. ${out.pgbackrest}, PostgreSQL 15; load at the end: ${out.load} (2 cores, shared).`,
    "Setup: the rendered configs of one database host (127.0.0.2) and the repository host (127.0.0.3), each `pgbackrest server` on mutual TLS,",
    "repository encrypted (aes-256-cbc), default compression; no VMs, no network between hosts, one database host (no replica to back up from).",
    "",
    `| figure | median of ${runs} | runs |`,
    "| --- | --- | --- |",
    `| database size (MiB) | ${summary.dbMiB} | ${results.map((x) => x.dbMiB).join(", ")} |`,
    `| full backup duration (s) | ${summary.backupSeconds.toFixed(1)} | ${results.map((x) => x.backupSeconds.toFixed(1)).join(", ")} |`,
    `| repository size after it (MiB, incl. WAL) | ${summary.repoMiB} | ${results.map((x) => x.repoMiB).join(", ")} |`,
    `| restore RTO: restore + start + promoted (s) | ${summary.rtoSeconds.toFixed(1)} | ${results.map((x) => x.rtoSeconds.toFixed(1)).join(", ")} |`,
    `| drill rows expected / found (before target) | | ${results.map((x) => `${x.expected}/${x.found}`).join(", ")} |`,
    `| drill rows found from after the target | | ${results.map((x) => x.foundAfterTarget).join(", ")} |`,
    "",
    drillOk ? "Drill: every run found every row acknowledged before the target time and none after it." : "**Drill MISSED**: see the runs above (missing rows or rows after the target).",
    "",
  ].join("\n"));
  console.log(JSON.stringify(out.medians), drillOk ? "drill ok" : "DRILL MISSED");
  if (!drillOk) process.exit(1);
}

main().catch((e) => { console.error(`bench:backup: ${e instanceof Error ? e.message : e}`); process.exit(1); });
