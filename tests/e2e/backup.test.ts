// Backups on their own lab (bench/backupLab.ts: bkpg1-3, bkpx1-2, bkrepo1 on hsbk0, 10.213.21.0/24), through the
// real engine: `pulumi up` with hastack:backup (stanza created once, check, a first full backup, timers), a full
// backup from the timer's own service taken from a replica, a writer's acknowledged rows around a target time,
// `npm run restore -- --to <target>` into a new PostgreSQL beside the cluster checked row by row, a refused restore
// into a directory that is not empty, a second `up` that changes nothing, archiving after a switchover, and last
// hastack:backup removed (archive_command /bin/true: WAL recycled, not piled up).
// Needs root (nspawn VMs).
import axios from "axios";
import { changes } from "../../engine/automation";
import { until } from "../support/until";
import { BackupLab, DrillResult, PG, REPO_HOST, STANZA, cluster, healthy, info, labDown, leaderOf, ssh } from "../../bench/backupLab";

jest.setTimeout(15 * 60 * 1000);
const progress = (msg: string) => process.stderr.write(`e2e-backup: ${new Date().toISOString()} ${msg}\n`);
beforeEach(() => progress(`start: ${expect.getState().currentTestName}`));
afterEach(() => progress(`end: ${expect.getState().currentTestName}`));

describe("pgBackRest backups and a point-in-time restore (needs root: nspawn VMs on hsbk0)", () => {
  const lab = new BackupLab();
  let replica = "";
  let drill: DrillResult;

  beforeAll(async () => {
    await lab.boot();
  });

  afterAll(() => {
    if (!process.env.HASTACK_KEEP_LAB) labDown();
  });

  it("pulumi up with hastack:backup: the stanza exists, check passes, a first full backup, timers on, the passphrase only on the repository host", async () => {
    await lab.open();
    const r = await lab.stack.up(lab.out);
    expect(r.summary.result).toBe("succeeded");
    await until("three healthy Patroni members", async () => healthy(await cluster()), 120, 2000);
    const i = await info();
    expect(i.status.code).toBe(0);
    expect(i.backup.map((b) => b.type)).toEqual(["full"]);
    for (const kind of ["full", "diff"]) expect(await ssh(REPO_HOST.name, `systemctl is-enabled hastack-pgbackrest-${STANZA}-${kind}.timer`)).toBe("enabled");
    expect(await ssh(REPO_HOST.name, `runuser -u postgres -- pgbackrest --stanza=${STANZA} check >/dev/null && echo ok`)).toBe("ok");
    // archive_command came through Patroni's dynamic configuration
    const cfg = JSON.parse(await ssh(PG[0].name, `curl -sf http://${PG[0].address}:8008/config`));
    expect(cfg.postgresql.parameters).toMatchObject({ archive_mode: "on", archive_command: `pgbackrest --stanza=${STANZA} archive-push %p` });
    expect(await ssh(PG[1].name, "grep -c cipher /etc/pgbackrest/pgbackrest.conf || true")).toBe("0");
    expect(await ssh(REPO_HOST.name, "stat -c '%a %U' /etc/pgbackrest/pgbackrest.conf; grep -c '^repo1-cipher-pass=' /etc/pgbackrest/pgbackrest.conf")).toBe("640 postgres\n1");
  });

  it("a full backup from the timer's service is taken from a streaming replica", async () => {
    const since = (await ssh(REPO_HOST.name, "date '+%Y-%m-%d %H:%M:%S'"));
    const seconds = await lab.backupNow("full");
    const i = await info();
    expect(i.backup.map((b) => b.type)).toEqual(["full", "full"]);
    const last = i.backup[i.backup.length - 1];
    const journal = await ssh(REPO_HOST.name, `journalctl -u hastack-pgbackrest-${STANZA}-full.service --since '${since}' --no-pager -o cat`);
    progress(`full backup ${last.label}: ${seconds.toFixed(1)} s, database ${(last.info.size / 2 ** 20).toFixed(1)} MiB, repository ${(last.info.repository.delta / 2 ** 20).toFixed(1)} MiB`);
    // pgBackRest waits for the standby to replay to the backup's start: the files come from the replica
    expect(journal).toMatch(/replay on the standby/);
    expect(journal).not.toContain("backing up from the leader");
    replica = (await cluster()).find((m) => m.role !== "leader")!.name;
  });

  it("npm run restore -- --to <target>: a new PostgreSQL with every row acknowledged before the target and none after", async () => {
    const leaderBefore = leaderOf(await cluster());
    drill = await lab.drill("e2e", replica, 5433);
    progress(`drill: target ${drill.target}; before ${drill.before.acked.length} acknowledged, found ${drill.foundBefore.length}, missing ${drill.missing.length}; after ${drill.after.acked.length} acknowledged, found ${drill.foundAfter.length}; RTO ${drill.summary.rtoSeconds} s (restore ${drill.summary.restoreSeconds} s, recovery ${drill.summary.recoverySeconds} s), command ${drill.wallSeconds.toFixed(1)} s`);
    expect(drill.before.acked.length).toBeGreaterThanOrEqual(10);
    expect(drill.after.acked.length).toBeGreaterThanOrEqual(5);
    expect(drill.summary.archivedBefore).toBe(true);
    expect(drill.missing).toEqual([]);
    expect(drill.foundAfter).toEqual([]);
    expect(drill.inRecovery).toBe("f");
    // the cluster itself went on: same leader, and it holds the rows written after the target
    const members = await cluster();
    expect(leaderOf(members)).toBe(leaderBefore);
    expect(healthy(members)).toBe(true);
    const onCluster = await ssh(leaderBefore!, `cd /tmp && runuser -u postgres -- psql -X -qAt -d workspad -c "select count(*) from drill_writes where run = '${drill.after.run}'"`);
    expect(Number(onCluster)).toBeGreaterThanOrEqual(drill.after.acked.length);
  });

  it("npm run restore refuses a data directory that is not empty, before pgBackRest runs", async () => {
    const res = await lab.restore(["--to", "latest", "--host", drill.host, "--port", "5434", "--data-dir", drill.dataDir]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`refused: ${drill.dataDir} is not empty`);
    // the first restore's server still runs on its data
    expect(await ssh(drill.host, `systemctl is-active ${drill.summary.unit}`)).toBe("active");
    await lab.dropRestored(drill);
  });

  it("a second up changes nothing", async () => {
    const r = await lab.stack.up(lab.out);
    expect(changes(r.summary.resourceChanges)).toEqual({});
  });

  it("after a switchover, WAL from the new leader reaches the repository (pgbackrest check)", async () => {
    const before = leaderOf(await cluster())!;
    const candidate = PG.find((m) => m.name !== before)!.name;
    const addr = PG.find((m) => m.name === before)!.address;
    const res = await axios.post(`http://${addr}:8008/switchover`, { leader: before, candidate },
      { auth: { username: "patroni", password: lab.passwords.patroniRest }, timeout: 60000, validateStatus: () => true });
    expect(res.status).toBe(200);
    await until(`${candidate} leading a healthy cluster`, async () => { const ms = await cluster(); return leaderOf(ms) === candidate && healthy(ms); }, 120, 2000);
    expect(await ssh(REPO_HOST.name, `runuser -u postgres -- pgbackrest --stanza=${STANZA} check >/dev/null && echo ok`, 180000)).toBe("ok");
  });

  it("hastack:backup removed: the up sets archive_command to /bin/true, so WAL is recycled, not piled up for an archive that is gone; a second up changes nothing", async () => {
    const leader = leaderOf(await cluster())!;
    const sql = (q: string) => ssh(leader, `cd /tmp && runuser -u postgres -- psql -X -qAt -d postgres -c ${JSON.stringify(q)}`);
    expect(await sql("show archive_command")).toMatch(/pgbackrest/);
    await lab.open(false);
    const r = await lab.stack.up(lab.out);
    expect(r.summary.result).toBe("succeeded");
    await until("archive_command /bin/true on the leader", async () => (await sql("show archive_command")) === "/bin/true", 60, 2000);
    // the archiver takes each segment (into nothing): the first switch shows it runs the new command (an attempt of
    // the old one may still fail while it is reloaded), the second that it fails no more; nothing waits in archive_status
    const switched = async () => {
      await sql("create table if not exists wal_filler (x int); insert into wal_filler values (1)");
      const segment = await sql("select pg_walfile_name(pg_switch_wal())");
      await until(`${segment} archived`, async () => (await sql("select last_archived_wal from pg_stat_archiver")) >= segment, 90, 2000);
    };
    await switched();
    const failedBefore = Number(await sql("select failed_count from pg_stat_archiver"));
    await switched();
    expect(Number(await sql("select failed_count from pg_stat_archiver"))).toBe(failedBefore);
    expect(await ssh(leader, "ls /var/lib/postgresql/15/main/pg_wal/archive_status | grep -c '\\.ready$' || true")).toBe("0");
    const again = await lab.stack.up(lab.out);
    expect(changes(again.summary.resourceChanges)).toEqual({});
  });
});
