import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { HostSpec, SshAccess, connectionFor } from "../common/host";
import { contentHash } from "../common/hash";
import { installPackages, putFile, restartOnChange, runScript, serviceEnabled, waitFor } from "../common/remote";
import { authRotationSteps } from "../keepalived/authRotationSteps";
import { shq } from "../common/shell";
import { checkHosts, invalid } from "../common/validate";
import { ResolvedPgBouncerVipPairSettings, checkAppPassword, checkKeepalivedAuthPass, checkPatroniMembers, checkPgName } from "./args";
import {
  CHECK_USER, PATHS, PGBOUNCER_USER, SCRIPT_USER, checkUserPassword, keepalivedValidateCommand, npgsqlConnectionString, renderResetScript,
  renderCheckPgpass, renderCheckScript, renderHaproxyCfg, renderKeepalivedConf, renderPgbouncerIni, renderUserlist,
} from "./render";

export interface PgBouncerVipPairArgs {
  /** Resolved `hastack:proxy` settings (see resolvePgBouncerVipPairSettings). */
  readonly settings: ResolvedPgBouncerVipPairSettings;
  readonly ssh: SshAccess;
  /** Patroni members HAProxy health-checks; the primary is whichever answers 200 on /primary. */
  readonly patroniMembers: pulumi.Input<HostSpec[]>;
  /** PostgreSQL port on the Patroni members. */
  readonly pgPort: number;
  /** Patroni REST API port on the members. */
  readonly restApiPort: number;
  /**
   * Members of another site HAProxy falls back to (`backup` servers checked on /primary), so a standby
   * site's clients reach the leading site through their local VIP. @default []
   */
  readonly remoteMembers?: pulumi.Input<{ name: string; address: string; pgPort: number; restApiPort: number }[]>;
  /** Application database PgBouncer serves. */
  readonly database: pulumi.Input<string>;
  /** Application role; PgBouncer logs in to PostgreSQL as this role with `appPassword`. */
  readonly appUser: pulumi.Input<string>;
  /** Application role's password (secret). */
  readonly appPassword: pulumi.Input<string>;
  /** VRRP PASS authentication, 1..8 characters without '"', '\' or spaces (secret; checked when it resolves). */
  readonly keepalivedAuthPass: pulumi.Input<string>;
}

/** Names of the nodes that report holding the VIP; throws unless exactly one does (empty reports: not known yet). */
export function vipHolders(names: readonly string[], reports: readonly string[]): string[] {
  if (reports.some((r) => !/^\d+$/.test((r ?? "").trim()))) return [];
  const holders = names.filter((_, i) => Number(reports[i].trim()) > 0);
  if (holders.length !== 1) {
    throw new Error(`PgBouncerVipPair: the VIP should be held by exactly one node, but ${holders.length} hold it` +
      (holders.length ? ` (${holders.join(", ")})` : "") + "; check VRRP traffic between the proxy nodes and virtualRouterId clashes.");
  }
  return holders;
}

/**
 * PgBouncer on every proxy node, a local HAProxy that follows the Patroni primary, and a keepalived VIP that
 * leaves a node whose PgBouncer stops accepting logins.
 */
export class PgBouncerVipPair extends pulumi.ComponentResource {
  /** The floating address clients connect to. */
  public readonly vip: pulumi.Output<string>;
  /** PgBouncer port on the VIP. */
  public readonly port: pulumi.Output<number>;
  /** Npgsql connection string through the VIP (secret). */
  public readonly connectionString: pulumi.Output<string>;
  /** The proxy nodes. */
  public readonly nodes: pulumi.Output<HostSpec[]>;
  /** Node(s) holding the VIP right after the deploy (exactly one, or the deploy fails). */
  public readonly vipHolders: pulumi.Output<string[]>;

  constructor(name: string, args: PgBouncerVipPairArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:proxy:PgBouncerVipPair", name, {}, opts);
    const s = args.settings;
    for (const [what, p] of [["Patroni's PostgreSQL port", args.pgPort], ["Patroni's REST API port", args.restApiPort]] as const) {
      if (s.port === p) invalid("hastack:proxy.port", s.port, `a port other than ${what} (${p})`);
      if (s.haproxyPort === p) invalid("hastack:proxy.haproxyPort", s.haproxyPort, `a port other than ${what} (${p})`);
    }

    const upstream = pulumi.all([args.patroniMembers, args.database, args.appUser, args.remoteMembers ?? []]).apply(([members, database, appUser, remote]) => {
      checkPatroniMembers(members);
      checkPgName("hastack:postgres.database", database);
      checkPgName("hastack:postgres.appUser", appUser);
      if (appUser === CHECK_USER) invalid("hastack:postgres.appUser", appUser, `a role other than ${CHECK_USER} (PgBouncer's check user)`);
      checkHosts("remoteMembers", remote, 0);
      const clash = remote.find((m) => members.some((x) => x.name === m.name || x.address === m.address));
      if (clash) invalid("remoteMembers", clash, "members of another site whose names and addresses differ from the local members'");
      return {
        members: members.map((m) => ({ name: m.name, address: m.address })), database, appUser,
        backupMembers: remote.map((m) => ({ name: m.name, address: m.address, pgPort: m.pgPort, restApiPort: m.restApiPort })),
      };
    });
    const appPassword = pulumi.secret(pulumi.output(args.appPassword).apply((p) => { checkAppPassword(p); return p; }));
    const authPass = pulumi.secret(pulumi.output(args.keepalivedAuthPass).apply((p) => { checkKeepalivedAuthPass(p); return p; }));

    const haproxyCfg = upstream.apply((u) => renderHaproxyCfg({
      members: u.members, pgPort: args.pgPort, restApiPort: args.restApiPort, haproxyPort: s.haproxyPort, backupMembers: u.backupMembers,
    }));
    const pgbouncerIni = upstream.apply((u) => renderPgbouncerIni({
      database: u.database, haproxyPort: s.haproxyPort, port: s.port, authType: s.authType, poolMode: s.poolMode,
      defaultPoolSize: s.defaultPoolSize, maxClientConn: s.maxClientConn,
    }));
    const checkPassword = appPassword.apply(checkUserPassword);
    const userlist = pulumi.secret(pulumi.all([upstream, appPassword, checkPassword]).apply(([u, pw, checkPw]) =>
      renderUserlist([{ user: u.appUser, password: pw }, { user: CHECK_USER, password: checkPw }], s.authType)));
    const checkPgpass = pulumi.secret(checkPassword.apply((pw) => renderCheckPgpass(s.port, pw)));
    const checkScript = renderCheckScript({ port: s.port });
    const resetScript = renderResetScript({ vip: s.vip, port: s.port });

    const hHaproxy = contentHash(haproxyCfg);
    const hPgbouncer = contentHash(pgbouncerIni, userlist);
    const hCheck = contentHash(checkScript, checkPgpass);
    const allHashes: pulumi.Output<string>[] = [hHaproxy, hPgbouncer, hCheck];

    // first every node's files up to keepalived's (no daemon restarted yet), keepalived's own under the auth_pass change's
    // steps (components/keepalived/authRotationSteps.ts); then the rolling restarts, each node's after its resume, so a
    // changed auth_pass is in force everywhere before any restart can move the VIP
    const nodes = s.nodes.map((host, i) => {
      const conn = connectionFor(host, args.ssh);
      const n = (step: string) => `${name}-${host.name}-${step}`;
      const after = (...deps: pulumi.Resource[]): pulumi.CustomResourceOptions => ({ parent: this, dependsOn: deps });

      const keepalivedConf = pulumi.secret(authPass.apply((pass) => renderKeepalivedConf({
        routerId: host.name, interface: s.interface, virtualRouterId: s.virtualRouterId, priority: s.priorities[i], authPass: pass,
        vip: s.vip, vipPrefix: s.vipPrefix, self: host.address, peers: s.nodes.filter((o) => o !== host).map((o) => o.address),
        unicast: s.unicast, checkIntervalSeconds: s.checkIntervalSeconds, checkFall: s.checkFall, checkRise: s.checkRise,
        timing: { vrrpVersion: s.vrrpVersion, advertIntervalSeconds: s.advertIntervalSeconds },
      })));

      const packages = installPackages(n("packages"), conn, ["haproxy", "keepalived", "pgbouncer", "postgresql-client"], { parent: this });
      const haproxyFile = putFile(n("haproxy-cfg"), {
        connection: conn, path: PATHS.haproxyCfg, content: haproxyCfg, validate: `haproxy -c -q -f "$NEW"`,
      }, after(packages));
      const haproxyOn = serviceEnabled(n("haproxy-enable"), conn, "haproxy", after(haproxyFile));
      const userlistFile = putFile(n("pgbouncer-userlist"), {
        connection: conn, path: PATHS.userlist, content: userlist, secret: true, mode: "0600", owner: `${PGBOUNCER_USER}:${PGBOUNCER_USER}`,
      }, after(haproxyOn));
      // pgbouncer has no config checker; the daemon test starts it on this very rendering
      const iniFile = putFile(n("pgbouncer-ini"), {
        connection: conn, path: PATHS.pgbouncerIni, content: pgbouncerIni, mode: "0640", owner: `${PGBOUNCER_USER}:${PGBOUNCER_USER}`,
      }, after(userlistFile));
      const pgbouncerOn = serviceEnabled(n("pgbouncer-enable"), conn, "pgbouncer", after(iniFile));
      const checkUser = runScript(n("check-user"), {
        connection: conn,
        create: [
          `id -u ${SCRIPT_USER} >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${SCRIPT_USER}`,
          `install -d -m 0755 -o root -g root ${shq(PATHS.checkScript.replace(/\/[^/]+$/, ""))}`,
          `install -d -m 0700 -o ${SCRIPT_USER} -g ${SCRIPT_USER} ${shq(PATHS.checkDir)}`,
        ].join("\n"),
        delete: `rmdir ${shq(PATHS.checkDir)} 2>/dev/null || true`,
      }, after(pgbouncerOn));
      const checkScriptFile = putFile(n("check-script"), {
        connection: conn, path: PATHS.checkScript, content: checkScript, mode: "0755", validate: `sh -n "$NEW"`,
      }, after(checkUser));
      const resetScriptFile = putFile(n("reset-script"), {
        connection: conn, path: PATHS.resetScript, content: resetScript, mode: "0755", validate: `sh -n "$NEW"`,
      }, after(checkScriptFile));
      const pgpassFile = putFile(n("check-pgpass"), {
        connection: conn, path: PATHS.checkPgpass, content: checkPgpass, secret: true, mode: "0600", owner: `${SCRIPT_USER}:${SCRIPT_USER}`,
      }, after(resetScriptFile));
      return { host, conn, n, after, keepalivedConf, pgpassFile };
    });

    const rotation = authRotationSteps({
      nodes: nodes.map((x) => ({ prefix: `${name}-${x.host.name}`, connection: x.conn, conf: x.keepalivedConf, after: nodes.map((y) => y.pgpassFile) })),
      params: { unit: "keepalived", confPath: PATHS.keepalivedConf, vip: s.vip }, parent: this,
    }, (i, quiesced) => {
      const { conn, n, after, keepalivedConf, pgpassFile } = nodes[i];
      const keepalivedFile = putFile(n("keepalived-cfg"), {
        connection: conn, path: PATHS.keepalivedConf, content: keepalivedConf, secret: true, mode: "0600",
        validate: keepalivedValidateCommand(),
      }, after(pgpassFile, ...quiesced));
      return serviceEnabled(n("keepalived-enable"), conn, "keepalived", after(keepalivedFile));
    });

    const healthy: command.remote.Command[] = [];
    nodes.forEach(({ conn, n, after, keepalivedConf }, i) => {
      const hKeepalived = contentHash(keepalivedConf);
      const keepalivedOn = rotation.enabled[i];
      const resumed = rotation.resumed[i];
      // rolling: a node restarts only after the previous one answers logins again, so the VIP always has a home; and
      // only once every node resumed, so no restart moves the VIP while a backup is still stopped
      const rollAfter = [keepalivedOn, ...rotation.resumed, ...(i > 0 ? [healthy[i - 1]] : [])];
      // create runs too: the packaged units were started on Debian's default configs before ours were written
      const haproxyReload = restartOnChange(n("haproxy-reload"), conn, "systemctl reload haproxy", [hHaproxy], after(...rollAfter));
      // listen_addr/listen_port changes need a restart, not a reload
      const pgbouncerRestart = restartOnChange(n("pgbouncer-restart"), conn, "systemctl restart pgbouncer", [hPgbouncer],
        after(haproxyReload));
      const keepalivedReload = restartOnChange(n("keepalived-reload"), conn, "systemctl reload keepalived", [hKeepalived],
        after(pgbouncerRestart, resumed));
      healthy.push(waitFor(n("healthy"), conn, `runuser -u ${SCRIPT_USER} -- ${shq(PATHS.checkScript)}`, 60,
        after(keepalivedReload), [...allHashes, hKeepalived]));
    });

    // the VIP answers a PgBouncer login from every node, and exactly one node holds it
    const reports = s.nodes.map((host) => {
      const conn = connectionFor(host, args.ssh);
      const answered = waitFor(`${name}-${host.name}-vip-answers`, conn,
        `runuser -u ${SCRIPT_USER} -- ${shq(PATHS.checkScript)} ${shq(s.vip)}`, 60, { parent: this, dependsOn: healthy }, allHashes);
      return runScript(`${name}-${host.name}-vip-held`, {
        connection: conn,
        create: `ip -o -4 addr show dev ${shq(s.interface)} | grep -cF ${shq(` ${s.vip}/`)} || true`,
        triggers: allHashes,
      }, { parent: this, dependsOn: [answered] }).stdout;
    });

    this.vip = pulumi.output(s.vip);
    this.port = pulumi.output(s.port);
    this.nodes = pulumi.output(s.nodes.map((h) => ({ name: h.name, address: h.address })));
    this.vipHolders = pulumi.all(reports).apply((r) => vipHolders(s.nodes.map((h) => h.name), r));
    this.connectionString = pulumi.secret(pulumi.all([upstream, appPassword]).apply(([u, pw]) =>
      npgsqlConnectionString({ host: s.vip, port: s.port, database: u.database, username: u.appUser, password: pw })));
    this.registerOutputs({
      vip: this.vip, port: this.port, connectionString: this.connectionString, nodes: this.nodes, vipHolders: this.vipHolders,
    });
  }
}
