import * as pulumi from "@pulumi/pulumi";
import { CertPair, HostSpec, SshAccess, connectionFor, contentHash, installPackages, invalid, putFile, restartOnChange, runScript, serviceEnabled, sha256, shq, waitFor } from "../common";
import { ResolvedPgBackRestSettings } from "./args";
import * as r from "./render";
import { REST_AUTH_PATH, restUrl } from "../patroniCluster/render";

export interface PgBackRestArgs {
  /** Resolved `hastack:backup`. */
  readonly settings: ResolvedPgBackRestSettings;
  readonly ssh: SshAccess;
  /** The database hosts (every Patroni member): each runs a `pgbackrest server` the repository host backs up through. */
  readonly dbHosts: readonly HostSpec[];
  readonly dataDir: string;
  readonly pgPort: number;
  readonly socketDir: string;
  /** The repository's encryption passphrase (`hastack:passwords.pgbackrestCipher`, secret). */
  readonly cipherPass: pulumi.Input<string>;
  /** The stack CA (PEM): every pgBackRest server and client verifies its peer with it. */
  readonly caCertPem: pulumi.Input<string>;
  /** Each host's certificate by host name (database hosts and the repository host), usable as TLS server and client. */
  readonly certs: Readonly<Record<string, CertPair>>;
  /** The cluster is up with archive_command set: the stanza, check and first backup wait for it. */
  readonly after: readonly pulumi.Resource[];
  /** Patroni's REST API port on the database hosts (the archive release below PATCHes /config there). */
  readonly restApiPort: number;
}

/** The passphrase reaches an INI line: one line, no surrounding spaces, long enough for AES keys derived from it. */
function checkedCipher(v: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.secret(pulumi.output(v).apply((p) => {
    if (typeof p !== "string" || p.length < 20 || /[\r\n\0]/.test(p) || p !== p.trim()) {
      invalid("hastack:passwords.pgbackrestCipher", `<secret of ${typeof p === "string" ? p.length : 0} characters>`,
        "a single-line passphrase of at least 20 characters without leading or trailing spaces");
    }
    return p;
  }));
}

/**
 * pgBackRest with a dedicated repository host: WAL archiving from every member, backups from the repository host
 * (from a replica when one streams) on systemd timers, the stanza created once, `check` as the health gate.
 * Every hop is mutual TLS (`pgbackrest server`) with the stack CA; no SSH keys between hosts.
 */
export class PgBackRest extends pulumi.ComponentResource {
  /** `pgbackrest check` passed after the last change: archiving reaches the repository. */
  public readonly healthGate: pulumi.Resource;
  public readonly stanza: pulumi.Output<string>;
  public readonly repoHost: pulumi.Output<string>;

  constructor(name: string, args: PgBackRestArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:backup:PgBackRest", name, {}, opts);
    const s = args.settings;
    const o = (dependsOn: readonly pulumi.Resource[]): pulumi.CustomResourceOptions => ({ parent: this, dependsOn: [...dependsOn] });
    const cipherPass = checkedCipher(args.cipherPass);
    const certOf = (h: HostSpec): CertPair => args.certs[h.name] ?? invalid(`hastack:certificates.servers.${h.name}`, undefined, "a certificate for every pgBackRest host");

    /** Package, TLS files, config, the TLS server: the same four steps on every host; returns the restart step. */
    const hostSteps = (h: HostSpec, config: pulumi.Input<string>, secretConfig: boolean) => {
      const conn = connectionFor(h, args.ssh);
      const n = (step: string) => `${name}-${h.name}-${step}`;
      const pkg = installPackages(n("packages"), conn, ["pgbackrest"], o([]));
      const cert = certOf(h);
      // postgres owns them: Debian's pgbackrest.service runs the server as postgres
      const files = [
        putFile(n("tls-ca"), { connection: conn, path: r.TLS.ca, content: args.caCertPem, owner: "postgres:postgres" }, o([pkg])),
        putFile(n("tls-cert"), { connection: conn, path: r.TLS.cert, content: cert.certPem, owner: "postgres:postgres" }, o([pkg])),
        putFile(n("tls-key"), { connection: conn, path: r.TLS.key, content: cert.keyPem, owner: "postgres:postgres", secret: true }, o([pkg])),
        putFile(n("config"), { connection: conn, path: r.CONFIG_PATH, content: config, owner: "postgres:postgres", mode: "0640", secret: secretConfig }, o([pkg])),
      ];
      const service = serviceEnabled(n("server"), conn, r.SERVER_UNIT, o(files));
      const hash = contentHash(pulumi.output(config), pulumi.all([args.caCertPem, cert.certPem, cert.keyPem]).apply((x) => x.join("\n")));
      // the server reads its config and certificates at start; a restart takes a moment and no WAL is lost (archive-push retries)
      const restart = restartOnChange(n("server-restart"), conn, `systemctl restart ${r.SERVER_UNIT}`, [hash], o([service]));
      return { conn, n, pkg, restart };
    };

    const dbSteps = args.dbHosts.map((h) => hostSteps(h, r.renderDbHostConfig({ settings: s, self: h, dataDir: args.dataDir, pgPort: args.pgPort, socketDir: args.socketDir }), false));
    const repoConfig = pulumi.secret(cipherPass.apply((cipher) => r.renderRepoHostConfig({
      settings: s, dbHosts: args.dbHosts, dataDir: args.dataDir, pgPort: args.pgPort, socketDir: args.socketDir, cipherPass: cipher })));
    const repo = hostSteps(s.repoHost, repoConfig, true);
    const repoDir = runScript(repo.n("repo-dir"), { connection: repo.conn, create: r.repoDirScript(s.repoPath) }, o([repo.pkg]));
    const backupScript = putFile(repo.n("backup-script"), { connection: repo.conn, path: r.BACKUP_SCRIPT_PATH, content: r.renderBackupScript(), mode: "0755" }, o([repo.pkg]));
    const servers = [repo.restart, ...dbSteps.map((d) => d.restart)];

    // once: an existing stanza is never re-created (render.ts stanzaCreateScript)
    const stanza = runScript(repo.n("stanza"), { connection: repo.conn, create: r.stanzaCreateScript(s.stanza), triggers: [s.stanza] },
      o([repoDir, ...servers, ...args.after]));
    const check = waitFor(repo.n("check"), repo.conn, r.checkScript(s.stanza), 120, o([stanza]),
      [contentHash(repoConfig, pulumi.output(s.stanza))]);
    const first = runScript(repo.n("first-backup"), { connection: repo.conn, create: r.firstBackupScript(s.stanza), triggers: [s.stanza] },
      o([check, backupScript]));

    // timers: written (systemd's own parser checks the schedule first), then daemon-reload, then enabled
    const timers = r.BACKUP_KINDS.map((kind) => {
      const schedule = kind === "full" ? s.fullSchedule : s.diffSchedule;
      const units = r.renderBackupUnits(s.stanza, kind, schedule);
      const unit = r.unitName(s.stanza, kind);
      const svc = putFile(repo.n(`${kind}-service`), { connection: repo.conn, path: `${r.TIMER_DIR}/${unit}.service`, content: units.service }, o([repo.pkg]));
      const tmr = putFile(repo.n(`${kind}-timer`), { connection: repo.conn, path: `${r.TIMER_DIR}/${unit}.timer`, content: units.timer,
        validate: `systemd-analyze calendar ${shq(schedule)} >/dev/null` }, o([repo.pkg]));
      const reload = restartOnChange(repo.n(`${kind}-reload`), repo.conn, "systemctl daemon-reload", [sha256(units.service, units.timer)], o([svc, tmr]));
      return serviceEnabled(repo.n(`${kind}-timer-enabled`), repo.conn, `${unit}.timer`, o([reload, first]));
    });

    // hastack:backup removed from the config: Patroni's PATCH then leaves archive_command as it was (a PATCH only
    // changes the keys it names), so every WAL segment would fail to archive and pile up in pg_wal until the disk is
    // full. Deleting this step (it exists only while the component does) sets archive_command to /bin/true: WAL is
    // recycled again, with no archive. Put hastack:backup back and the PATCH names pgBackRest's command again.
    const db0 = args.dbHosts[0];
    runScript(`${name}-archive-release`, {
      connection: connectionFor(db0, args.ssh),
      create: "echo 'WAL goes to pgBackRest while hastack:backup is set'",
      delete: r.archiveReleaseScript(restUrl(db0, args.restApiPort), REST_AUTH_PATH),
    }, o([...args.after]));

    this.healthGate = check;
    this.stanza = pulumi.output(s.stanza);
    this.repoHost = pulumi.output(s.repoHost.address);
    this.registerOutputs({ stanza: this.stanza, repoHost: this.repoHost, timers: timers.length });
  }
}
