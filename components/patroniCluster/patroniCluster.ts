import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { SshAccess, connectionFor, contentHash, installPackages, invalid, putFile, restartOnChange, runScript, serviceEnabled, sha256, waitFor } from "../common";
import { ResolvedPatroniClusterSettings } from "./args";
import * as r from "./render";

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
}

/** Seconds to wait for etcd quorum, and for a leader with streaming replicas. */
const ETCD_TIMEOUT_S = 180;
const CLUSTER_TIMEOUT_S = 300;

/** A password reaches files and psql variables line-wise: it must be one line. */
function checkedSecret(field: string, v: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.secret(pulumi.output(v).apply((p) => {
    if (typeof p !== "string" || p.length === 0 || /[\n\r\0]/.test(p)) invalid(field, "[secret]", "a non-empty single-line password");
    return p;
  }));
}

/** PostgreSQL 15 + Patroni + etcd (v3) on every node, with the application role and database. */
export class PatroniCluster extends pulumi.ComponentResource {
  public readonly memberAddresses: pulumi.Output<string[]>;
  public readonly leaderName: pulumi.Output<string>;
  public readonly leaderAddress: pulumi.Output<string>;
  public readonly replicationEndpoint: pulumi.Output<{ host: string; port: number }>;
  public readonly restApiPort: pulumi.Output<number>;
  public readonly pgPort: pulumi.Output<number>;
  public readonly database: pulumi.Output<string>;
  public readonly appUser: pulumi.Output<string>;
  public readonly superuserPassword: pulumi.Output<string>;
  public readonly replicationPassword: pulumi.Output<string>;
  public readonly appPassword: pulumi.Output<string>;

  constructor(name: string, args: PatroniClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:db:PatroniCluster", name, {}, opts);
    const s = args.settings;
    const o = (dependsOn: pulumi.Resource[]): pulumi.CustomResourceOptions => ({ parent: this, dependsOn });
    const superuserPassword = checkedSecret("superuserPassword", args.superuserPassword);
    const replicationPassword = checkedSecret("replicationPassword", args.replicationPassword);
    const rewindPassword = checkedSecret("rewindPassword", args.rewindPassword);
    const appPassword = checkedSecret("appPassword", args.appPassword);
    const packages = [`postgresql-${s.pgVersion}`, "postgresql-common", "patroni", "etcd-server", "etcd-client", "python3-psycopg2", "curl"];

    // Phase 1, per host: packages, packaged cluster off, data dirs, etcd config and start.
    const hosts = s.nodes.map((h) => {
      const conn = connectionFor(h, args.ssh);
      const n = (step: string) => `${name}-${h.name}-${step}`;
      const pkgs = installPackages(n("packages"), conn, packages, o([]));
      const packagedOff = runScript(n("packaged-cluster-off"), { connection: conn, create: r.disablePackagedClusterScript(s.pgVersion) }, o([pkgs]));
      const dirs = runScript(n("data-dirs"), { connection: conn, create: r.dataDirsScript(s) }, o([pkgs]));
      const etcdEnv = r.renderEtcdEnv({ member: h, nodes: s.nodes, clientPort: s.etcdClientPort, peerPort: s.etcdPeerPort, dataDir: s.etcdDataDir, clusterName: s.clusterName });
      const etcdConfig = putFile(n("etcd-config"), { connection: conn, path: r.ETCD_ENV_PATH, content: etcdEnv }, o([dirs]));
      const etcdService = runScript(n("etcd-service"), {
        connection: conn, create: r.etcdStartScript(), delete: "systemctl disable --now etcd.service >/dev/null 2>&1 || true",
      }, o([etcdConfig]));
      const etcdRestart = restartOnChange(n("etcd-restart"), conn, r.etcdRestartScript(), [sha256(etcdEnv)], o([etcdService]));
      return { h, conn, n, packagedOff, dirs, etcdRestart };
    });

    // Phase 2, per host: etcd quorum (needs every member started), then Patroni.
    const allEtcdStarted = hosts.map((x) => x.etcdRestart);
    const configHashes: pulumi.Output<string>[] = [];
    const members = hosts.map(({ h, conn, n, packagedOff, dirs }) => {
      const etcdHealthy = waitFor(n("etcd-healthy"), conn, r.etcdHealthProbe(s.nodes, s.etcdClientPort), ETCD_TIMEOUT_S, o(allEtcdStarted));
      const content = pulumi.secret(pulumi.all([superuserPassword, replicationPassword, rewindPassword])
        .apply(([superuser, replication, rewind]) => r.renderPatroniConfig(s, h, { superuser, replication, rewind })));
      const hash = contentHash(content);
      configHashes.push(hash);
      const config = putFile(n("patroni-config"), {
        connection: conn, path: r.PATRONI_CONFIG_PATH, content, secret: true, owner: "postgres:postgres", validate: r.patroniValidateScript(),
      }, o([etcdHealthy, dirs, packagedOff]));
      const service = serviceEnabled(n("patroni-service"), conn, "patroni.service", o([config]));
      return restartOnChange(n("patroni-reload"), conn, r.patroniReloadScript(), [hash], o([service]));
    });

    // Phase 3, from the first member: wait for a leader and streaming replicas, apply dynamic settings, app role/db, observe leader.
    const first = hosts[0];
    const rest = r.restUrl(first.h, s.restApiPort);
    const clusterHash = contentHash(...configHashes);
    const healthy = waitFor(first.n("cluster-healthy"), first.conn, r.clusterHealthyProbe(rest, s.nodes.length), CLUSTER_TIMEOUT_S, o(members), [clusterHash]);
    const dynamicJson = r.renderDynamicConfigJson(s);
    const dynamic = runScript(first.n("dynamic-config"), {
      connection: first.conn, create: r.patchConfigScript(rest), stdin: dynamicJson, triggers: [sha256(dynamicJson)],
    }, o([healthy]));
    const appStdin = pulumi.secret(pulumi.all([superuserPassword, appPassword])
      .apply(([su, app]) => r.renderAppDbStdin(s.superuser, su, s.database, s.appUser, app)));
    const appDb = runScript(first.n("app-database"), {
      connection: first.conn, create: r.appDbScript(rest, s.pgPort, s.superuser), stdin: appStdin, triggers: [contentHash(appStdin)], quiet: true,
    }, o([dynamic]));
    const leader = new command.remote.Command(first.n("leader"), {
      connection: first.conn, create: r.leaderQueryScript(rest), triggers: [clusterHash, sha256(dynamicJson)],
    }, o([appDb]));
    const observed = leader.stdout.apply(r.parseLeader);

    this.memberAddresses = pulumi.output(s.nodes.map((x) => x.address));
    this.leaderName = observed.apply((l) => l.name);
    this.leaderAddress = observed.apply((l) => l.host);
    this.replicationEndpoint = observed.apply((l) => ({ host: l.host, port: l.port || s.pgPort }));
    this.restApiPort = pulumi.output(s.restApiPort);
    this.pgPort = pulumi.output(s.pgPort);
    this.database = pulumi.output(s.database);
    this.appUser = pulumi.output(s.appUser);
    this.superuserPassword = superuserPassword;
    this.replicationPassword = replicationPassword;
    this.appPassword = appPassword;
    this.registerOutputs({
      memberAddresses: this.memberAddresses, leaderName: this.leaderName, leaderAddress: this.leaderAddress,
      replicationEndpoint: this.replicationEndpoint, restApiPort: this.restApiPort, pgPort: this.pgPort,
      database: this.database, appUser: this.appUser, superuserPassword: this.superuserPassword,
      replicationPassword: this.replicationPassword, appPassword: this.appPassword,
    });
  }
}
