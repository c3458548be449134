import * as pulumi from "@pulumi/pulumi";
import { SshAccess, connectionFor, contentHash, installPackages, invalid, putFile, restartOnChange, rolling, runScript, serviceEnabled, sha256, waitFor } from "../common";
import { ResolvedPatroniClusterSettings } from "./args";
import * as mb from "./membership";
import * as r from "./render";
import * as off from "./etcdLeaderOff";
import * as role from "./siteRole";
import * as rr from "./rollingRestart";
import * as rot from "./rotation";

export interface PatroniClusterArgs {
  /** Resolved `hastack:postgres` settings (see resolvePatroniClusterSettings). */
  readonly settings: ResolvedPatroniClusterSettings;
  /** SSH access to every node. */
  readonly ssh: SshAccess;
  /** Password of `settings.superuser` (secret). */
  readonly superuserPassword: pulumi.Input<string>;
  /** Password of `settings.replicationUser` (secret). */
  readonly replicationPassword: pulumi.Input<string>;
  /** Password of `settings.rewindUser` (secret). */
  readonly rewindPassword: pulumi.Input<string>;
  /** Password of `settings.appUser` (secret). */
  readonly appPassword: pulumi.Input<string>;
  /** Basic-auth password of Patroni's REST API, needed by its unsafe methods (secret). */
  readonly restApiPassword: pulumi.Input<string>;
  /** Password of etcd's root user; etcd authentication is enabled with it (secret). */
  readonly etcdRootPassword: pulumi.Input<string>;
  /** Password of Patroni's etcd user, whose role may write Patroni's namespace only (secret). */
  readonly etcdPatroniPassword: pulumi.Input<string>;
  /** Who besides the members may reach PostgreSQL, and as which role (pg_hba). @default {} (members and loopback only) */
  readonly access?: r.PatroniAccess;
  /**
   * This cluster's part in a multi-site setup (`hastack:site`). @default undefined (one datacenter)
   */
  readonly site?: PatroniSiteArgs;
}

export interface PatroniSiteArgs {
  /**
   * Follow another site's cluster: Patroni bootstraps a standby cluster from it (and an existing cluster
   * gets the block through PATCH /config, never a re-initialisation). The application role and database
   * then come with the replicated data. @default undefined (this site leads)
   */
  readonly standby?: pulumi.Input<r.StandbySource>;
  /** Permanent physical slots kept on the leader, one per standby site, when this site leads. @default [] */
  readonly permanentSlots?: pulumi.Input<string[]>;
  /** Other sites' subnets pg_hba admits (replication and logins). @default [] */
  readonly remoteSubnets?: readonly string[];
  /**
   * Members of the other deployed sites. Before a standby site takes the lead, its standby leader checks
   * them: none may still accept writes, and it replays everything they hold. @default []
   */
  readonly otherSiteMembers?: pulumi.Input<{ address: string; pgPort: number; restApiPort: number }[]>;
  /** This site's permanent slot name on whichever site leads (its standby_cluster primary_slot_name). */
  readonly slotName: string;
}

/** Seconds to wait for etcd quorum, and for a leader with streaming replicas. */
const ETCD_TIMEOUT_S = 180;
const CLUSTER_TIMEOUT_S = 300;

/**
 * A password reaches files and psql variables line-wise: it must be one line. `oneWord`: etcdctl reads a
 * password from stdin as one word, so etcd's may hold no space or tab either.
 */
function checkedSecret(field: string, v: pulumi.Input<string>, oneWord = false): pulumi.Output<string> {
  return pulumi.secret(pulumi.output(v).apply((p) => {
    const bad = oneWord ? /\s|\0/ : /[\n\r\0]/;
    if (typeof p !== "string" || p.length === 0 || bad.test(p)) {
      invalid(field, `<secret of ${typeof p === "string" ? p.length : 0} characters>`, oneWord ? "a non-empty password without spaces, tabs or line breaks" : "a non-empty single-line password");
    }
    return p;
  }));
}

/** PostgreSQL 15 + Patroni + etcd (v3) on every node, with the application role and database. */
export class PatroniCluster extends pulumi.ComponentResource {
  public readonly memberAddresses: pulumi.Output<string[]>;
  /** Runs first when the node list changes: a leader the stack removes switches over to a member it names. */
  public readonly handOver: pulumi.Resource;
  /**
   * Every member with its ports. Deliberately no leader: it changes with every failover, so consumers ask
   * each member's REST API (`/primary` answers 200 only on the read-write leader).
   */
  public readonly members: pulumi.Output<{ name: string; address: string; pgPort: number; restApiPort: number }[]>;
  public readonly restApiPort: pulumi.Output<number>;
  public readonly pgPort: pulumi.Output<number>;
  public readonly database: pulumi.Output<string>;
  public readonly appUser: pulumi.Output<string>;
  public readonly superuserPassword: pulumi.Output<string>;
  public readonly replicationPassword: pulumi.Output<string>;
  public readonly rewindPassword: pulumi.Output<string>;
  public readonly appPassword: pulumi.Output<string>;

  constructor(name: string, args: PatroniClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:db:PatroniCluster", name, {}, opts);
    const s = args.settings;
    const o = (dependsOn: pulumi.Resource[]): pulumi.CustomResourceOptions => ({ parent: this, dependsOn });
    const superuserPassword = checkedSecret("hastack:passwords.postgresSuperuser", args.superuserPassword);
    const replicationPassword = checkedSecret("hastack:passwords.postgresReplication", args.replicationPassword);
    const rewindPassword = checkedSecret("hastack:passwords.postgresRewind", args.rewindPassword);
    const appPassword = checkedSecret("hastack:passwords.postgresApp", args.appPassword);
    const restApiPassword = checkedSecret("hastack:passwords.patroniRest", args.restApiPassword);
    const etcdRootPassword = checkedSecret("hastack:passwords.etcdRoot", args.etcdRootPassword, true);
    const etcdPatroniPassword = checkedSecret("hastack:passwords.etcdPatroni", args.etcdPatroniPassword, true);
    const access = args.access ?? {};
    const remoteSubnets = args.site?.remoteSubnets ?? [];
    const isStandby = args.site?.standby !== undefined;
    // resolved once for the config files and the PATCH body; undefined keeps the single-site rendering
    const siteRole: pulumi.Output<r.SiteRoleConfig | undefined> = args.site === undefined ? pulumi.output(undefined)
      : pulumi.all([args.site.standby, args.site.permanentSlots ?? []]).apply(([standby, permanentSlots]) =>
        ({ standby: standby as r.StandbySource | undefined, permanentSlots: permanentSlots as string[] }));
    const packages = [`postgresql-${s.pgVersion}`, "postgresql-common", "patroni", "etcd-server", "etcd-client", "python3-psycopg2", "curl",
      // site-role (multi-site role changes) reads Patroni's JSON with jq
      ...(args.site ? ["jq"] : [])];

    const names = s.nodes.map((x) => x.name);
    // Phase 1, per host: packages, packaged cluster off, data dirs, etcd config and start.
    const hosts = rolling(s.nodes, (h, previousEtcdRestart) => {
      const conn = connectionFor(h, args.ssh);
      const n = (step: string) => `${name}-${h.name}-${step}`;
      const pkgs = installPackages(n("packages"), conn, packages, o([]));
      const packagedOff = runScript(n("packaged-cluster-off"), { connection: conn, create: r.disablePackagedClusterScript(s.pgVersion) }, o([pkgs]));
      // first, before any file or directory named after the cluster: a renamed running cluster would start empty
      const nameGuard = runScript(n("cluster-name-guard"), { connection: conn, create: r.clusterNameGuardScript(s.clusterName, s.allowClusterRename) }, o([pkgs]));
      const dirs = runScript(n("data-dirs"), { connection: conn, create: r.dataDirsScript(s) }, o([nameGuard]));
      const etcdEnv = r.renderEtcdEnv({ member: h, nodes: s.nodes, clientPort: s.etcdClientPort, peerPort: s.etcdPeerPort, dataDir: s.etcdDataDir, clusterName: s.clusterName,
        heartbeatMs: s.etcdHeartbeatMs, electionMs: s.etcdElectionMs });
      const etcdConfig = putFile(n("etcd-config"), { connection: conn, path: r.ETCD_ENV_PATH, content: etcdEnv }, o([dirs]));
      // for operators, tests and the join/leave below: etcdctl as root once auth is on, the password in the
      // environment, not argv
      const etcdctlEnv = putFile(n("etcdctl-env"), {
        connection: conn, path: r.ETCDCTL_ENV_PATH, content: etcdRootPassword.apply((pw) => r.renderEtcdctlEnv(pw)), secret: true,
      }, o([pkgs]));
      // a member new to a running cluster joins it (member add) before its first start, after the members
      // before it have restarted on the new membership; a member the stack no longer wants leaves it (membership.ts)
      const etcdService = runScript(n("etcd-service"), {
        connection: conn,
        create: mb.etcdJoinAndStartScript(h, s.nodes, s.etcdClientPort, s.etcdPeerPort, s.etcdDataDir),
        delete: mb.etcdLeaveAndStopScript(h, s.nodes, s.etcdClientPort, s.etcdPeerPort, s.etcdDataDir),
      }, o([etcdConfig, etcdctlEnv, ...previousEtcdRestart]));
      // rolling: one member restarts only after the previous one is healthy again (the restart script waits for it)
      const etcdRestart = restartOnChange(n("etcd-restart"), conn, r.etcdRestartScript(h, s.etcdClientPort), [sha256(etcdEnv)],
        o([etcdService, ...previousEtcdRestart]));
      const restAuth = putFile(n("rest-auth"), {
        connection: conn, path: r.REST_AUTH_PATH, content: restApiPassword.apply((pw) => r.renderRestCurlConfig(pw)), secret: true,
      }, o([pkgs]));
      // etcd's raft leader kept off the Patroni leader's host (a crash of both costs ~3 s more): a script on a timer
      const offService = off.renderEtcdLeaderOffService(h, s.restApiPort, s.etcdClientPort);
      const offFiles = [
        putFile(n("etcd-leader-off-script"), { connection: conn, path: off.ETCD_LEADER_OFF_PATH, content: off.etcdLeaderOffScript(), mode: "0755" }, o([pkgs])),
        putFile(n("etcd-leader-off-service"), { connection: conn, path: off.ETCD_LEADER_OFF_SERVICE_PATH, content: offService }, o([pkgs])),
        putFile(n("etcd-leader-off-timer"), { connection: conn, path: off.ETCD_LEADER_OFF_TIMER_PATH, content: off.renderEtcdLeaderOffTimer() }, o([pkgs])),
      ];
      const offReload = restartOnChange(n("etcd-leader-off-reload"), conn, "systemctl daemon-reload",
        [sha256(offService + off.renderEtcdLeaderOffTimer())], o(offFiles));
      serviceEnabled(n("etcd-leader-off-on"), conn, `${off.ETCD_LEADER_OFF_UNIT}.timer`, o([offReload]));
      // multi-site: the role-change script and its settings on every member
      const siteFiles = args.site === undefined ? [] : [
        putFile(n("site-role-script"), { connection: conn, path: role.SITE_ROLE_PATH, content: role.siteRoleScript(), mode: "0755" }, o([pkgs])),
        putFile(n("site-role-env"), {
          connection: conn, path: role.SITE_ENV_PATH,
          content: pulumi.output(args.site.otherSiteMembers ?? []).apply((otherSites) => role.renderSiteEnv({
            member: h, restApiPort: s.restApiPort, dataDir: s.dataDir, pgVersion: s.pgVersion, pgPort: s.pgPort,
            clusterName: s.clusterName, etcdClientPort: s.etcdClientPort, slotName: args.site!.slotName, otherSites })),
        }, o([pkgs])),
      ];
      // the fence before every start of Patroni (see site-role.sh); systemd reads a new drop-in on daemon-reload
      if (args.site !== undefined) {
        const dropIn = putFile(n("site-fence-dropin"), { connection: conn, path: role.FENCE_DROPIN_PATH, content: role.renderFenceDropIn() }, o([pkgs]));
        siteFiles.push(restartOnChange(n("site-fence-reload"), conn, "systemctl daemon-reload", [sha256(role.renderFenceDropIn())], o([dropIn])));
      }
      return { h, conn, n, packagedOff, dirs, etcdRestart, restAuth, siteFiles };
    }, (x) => x.etcdRestart);

    // a leader the stack no longer names hands over before anything changes around it (the firewalls wait for this)
    this.handOver = runScript(hosts[0].n("hand-over"), {
      connection: hosts[0].conn, create: mb.handOverScript(s.nodes, s.restApiPort), triggers: [names.join(" ")],
    }, o([hosts[0].restAuth]));

    // Phase 2, per host: etcd quorum (needs every member started), then Patroni.
    const allEtcdStarted = hosts.map((x) => x.etcdRestart);
    const configHashes: pulumi.Output<string>[] = [];
    // a rotation of the superuser, replication or rewind password: the read-write leader's roles change first
    // (Patroni sets them only at bootstrap), and no member's config carries a new password before that
    const systemStdin = pulumi.secret(pulumi.all([superuserPassword, replicationPassword, rewindPassword])
      .apply(([superuser, replication, rewind]) => rot.rolePasswordsStdin(s, { superuser, replication, rewind })));
    const rolePasswords = hosts.map(({ h, conn, n, packagedOff }) => runScript(n("role-passwords"), {
      connection: conn, create: rot.rolePasswordsCommand(r.restUrl(h, s.restApiPort), s.pgPort), stdin: systemStdin,
      triggers: [contentHash(systemStdin)], quiet: true,
    }, o([packagedOff])));
    const members = hosts.map(({ h, conn, n, packagedOff, dirs, restAuth }) => {
      const etcdHealthy = waitFor(n("etcd-healthy"), conn, r.etcdHealthProbe(s.nodes, s.etcdClientPort), ETCD_TIMEOUT_S, o(allEtcdStarted));
      const content = pulumi.secret(pulumi.all([superuserPassword, replicationPassword, rewindPassword, restApiPassword, etcdPatroniPassword, siteRole])
        .apply(([superuser, replication, rewind, restApi, etcd, role]) =>
          r.renderPatroniConfig(s, h, { superuser, replication, rewind, restApi, etcd }, role, remoteSubnets, access)));
      const hash = contentHash(content);
      configHashes.push(hash);
      const config = putFile(n("patroni-config"), {
        connection: conn, path: r.PATRONI_CONFIG_PATH, content, secret: true, owner: "postgres:postgres", validate: r.patroniValidateScript(),
      }, o([etcdHealthy, dirs, packagedOff, ...rolePasswords]));
      // a leader the stack removes hands over by a switchover before it stops (its REST login must still be there)
      const service = serviceEnabled(n("patroni-service"), conn, "patroni.service", o([config, restAuth]),
        mb.patroniLeaveAndStopScript(h, s.restApiPort));
      return restartOnChange(n("patroni-reload"), conn, r.patroniReloadScript(), [hash], o([service]));
    });

    // etcd authentication, only once every Patroni runs with its etcd login: one without it can still renew its
    // lease, but writes no key (member, status, a new leader key after a failover). Patroni given a login while
    // auth is still off keeps working without one (AuthNotEnabled), so a first deploy and an upgrade agree.
    const authStdin = pulumi.secret(pulumi.all([etcdRootPassword, etcdPatroniPassword]).apply(([root, patroni]) => r.renderEtcdAuthStdin(root, patroni)));
    const authScript = r.etcdAuthScript(s.nodes, s.etcdClientPort);
    const authTriggers = [contentHash(authStdin, authScript)];
    const patroniLoggedIn = waitFor(hosts[0].n("patroni-etcd-login"), hosts[0].conn,
      r.patroniEtcdCredentialsProbe(r.restUrl(hosts[0].h, s.restApiPort), names), CLUSTER_TIMEOUT_S, o(members), authTriggers);
    const etcdAuth = runScript(hosts[0].n("etcd-auth"), { connection: hosts[0].conn, create: authScript, stdin: authStdin, triggers: authTriggers, quiet: true }, o([patroniLoggedIn]));
    // the members the stack wants, read by a removed member's delete (it leaves etcd only when not named here);
    // written before any delete runs, since the engine deletes removed resources after every create and update
    runScript(hosts[0].n("etcd-desired-members"), {
      connection: hosts[0].conn, create: mb.desiredMembersScript(s.nodes, s.etcdClientPort, s.etcdPeerPort), triggers: [names.join(" ")],
    }, o([etcdAuth]));

    // Phase 3, from the first member: wait for a leader and streaming replicas, apply dynamic settings, app role/db, observe leader.
    const first = hosts[0];
    const rest = r.restUrl(first.h, s.restApiPort);
    const clusterHash = contentHash(...configHashes);
    const healthy = waitFor(first.n("cluster-healthy"), first.conn, r.clusterHealthyProbe(rest, names), CLUSTER_TIMEOUT_S, o(members), [clusterHash]);
    const dynamicJson = siteRole.apply((role) => r.renderDynamicConfigJson(s, role));
    // multi-site: the leading member of each site applies a change of role first (safe demotion, or promotion
    // only once no other site accepts writes and this one holds all they wrote); the others do nothing
    const siteRoleSteps = args.site === undefined ? [] : hosts.map((m) => {
      const cmd = pulumi.output(args.site!.otherSiteMembers ?? []).apply((others) =>
        role.siteRoleCommand(isStandby ? "standby" : "primary", role.memberRestUrls(others)));
      return runScript(m.n("site-role"), { connection: m.conn, create: cmd, stdin: dynamicJson, triggers: [contentHash(dynamicJson)] },
        o([healthy, m.restAuth, ...m.siteFiles]));
    });
    const dynamic = runScript(first.n("dynamic-config"), {
      connection: first.conn, create: r.patchConfigScript(rest), stdin: dynamicJson, triggers: [contentHash(dynamicJson)],
    }, o([healthy, first.restAuth, ...siteRoleSteps]));
    // settings that need a restart (max_connections, …): replicas one at a time, then a switchover (a standby
    // site's standby leader restarts in place); the trigger names the values, so the preview shows the change
    const pgRestart = runScript(first.n("rolling-restart"), {
      connection: first.conn, triggers: [rr.rollingRestartTrigger(s)],
      create: rr.rollingRestartCommand({ restUrls: s.nodes.map((m) => r.restUrl(m, s.restApiPort)), loopWaitSeconds: s.loopWait }),
    }, o([dynamic]));
    const appStdin = pulumi.secret(pulumi.all([superuserPassword, appPassword])
      .apply(([su, app]) => r.renderAppDbStdin(s.superuser, su, s.database, s.appUser, app)));
    // a standby cluster is read-only: the role and database arrive with the primary site's data
    // on every member, but only the read-write leader acts: psql then runs locally, over the socket
    if (!isStandby) {
      for (const m of hosts) {
        runScript(m.n("app-database"), {
          connection: m.conn, create: r.appDbScript(r.restUrl(m.h, s.restApiPort), s.pgPort, s.superuser), stdin: appStdin,
          triggers: [contentHash(appStdin)], quiet: true,
        }, o([pgRestart]));
      }
    }

    this.memberAddresses = pulumi.output(s.nodes.map((x) => x.address));
    this.members = pulumi.output(s.nodes.map((x) => ({ name: x.name, address: x.address, pgPort: s.pgPort, restApiPort: s.restApiPort })));
    this.restApiPort = pulumi.output(s.restApiPort);
    this.pgPort = pulumi.output(s.pgPort);
    this.database = pulumi.output(s.database);
    this.appUser = pulumi.output(s.appUser);
    this.superuserPassword = superuserPassword;
    this.replicationPassword = replicationPassword;
    this.rewindPassword = rewindPassword;
    this.appPassword = appPassword;
    this.registerOutputs({
      memberAddresses: this.memberAddresses, members: this.members, restApiPort: this.restApiPort, pgPort: this.pgPort,
      database: this.database, appUser: this.appUser, superuserPassword: this.superuserPassword,
      replicationPassword: this.replicationPassword, appPassword: this.appPassword,
    });
  }
}
