import { authRotationSteps, keepalivedValidateCommand } from "../keepalived";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { HostSpec, SshAccess, connectionFor } from "../common/host";
import { contentHash } from "../common/hash";
import { installPackages, putFile, restartOnChange, runScript, serviceEnabled, waitFor } from "../common/remote";
import { invalid } from "../common/validate";
import { rolling } from "../common/rolling";
import { ResolvedRedisSentinelGroupSettings, checkRedisPasswords } from "./args";
import { chooseInitialMaster, parseSurvey } from "./initialMaster";
import { forgetScript, handOverScript, MembershipParams } from "./membership";
import { RotationPhase, rotationScript, rotationStdin } from "./rotation";
import {
  MASTER_PLACEHOLDER, redisLayout, renderHaproxyCfg, renderHaproxyUnit, renderKeepalivedUnit, renderHealthScript, renderKeepalivedCheck, renderRedisApplyScript, renderRedisApplyUpdateScript,
  renderRedisMainScript, renderRedisManaged, renderRedisManagedCheck, renderRedisKeepalived, renderSentinelConf,
  renderSentinelScript, renderSentinelSetScript, renderSurveyScript, sentinelAuthPass, renderRedisAcl,
} from "./render";

export interface RedisSentinelGroupArgs {
  /** Output of resolveRedisSentinelGroupSettings (only create the component when it is not undefined). */
  readonly settings: ResolvedRedisSentinelGroupSettings;
  readonly ssh: SshAccess;
  /** The application user's password (hastack:passwords.redis); only its hash reaches the hosts. */
  readonly password: pulumi.Input<string>;
  /**
   * hastack's own password (hastack:passwords.redisSentinel): Sentinel's requirepass, Redis' `default` user
   * (replication, scripts, operators), and the seed of Sentinel's and HAProxy's derived logins. Never the application's.
   */
  readonly sentinelPassword: pulumi.Input<string>;
  /** VRRP shared secret; required when settings.vip is set. */
  readonly keepalivedAuthPass?: pulumi.Input<string>;
  /**
   * The application's previous password (hastack:passwords.redisPrevious), accepted beside `password` while clients
   * move to a rotated one; leave it out in a later up once they have (that up changes no Redis process: the users
   * are reloaded at runtime). Only its hash reaches the hosts.
   */
  readonly previousPassword?: pulumi.Input<string>;
}

/** Redis with auth, one Sentinel per node, HAProxy following the master on every node, optional keepalived VIP. */
export class RedisSentinelGroup extends pulumi.ComponentResource {
  /** Address clients use: the VIP, or the first node's HAProxy when there is no VIP. */
  public readonly vip: pulumi.Output<string>;
  /** HAProxy port that always reaches the current master. */
  public readonly port: pulumi.Output<number>;
  public readonly masterName: pulumi.Output<string>;
  /** `address:port` of every Sentinel, for Sentinel-aware clients and other datacenters. */
  public readonly sentinelAddresses: pulumi.Output<string[]>;
  /** ACL user applications log in as. */
  public readonly user: pulumi.Output<string>;
  /** That user's password (secret). */
  public readonly password: pulumi.Output<string>;
  /** The group's name in the list form of hastack:redis; undefined in the single-object form. */
  public readonly group?: string;
  /** Hands the master over when it is a node the stack removes (membership.ts); the group's firewall tables change after it. */
  public readonly handOver: command.remote.Command;

  constructor(name: string, args: RedisSentinelGroupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:cache:RedisSentinelGroup", name, {}, opts);
    const s = args.settings;
    this.group = s.group;
    if (s.vip && args.keepalivedAuthPass === undefined) invalid("keepalivedAuthPass", undefined, "a secret when the Redis group has a vip");
    // plain values are checked at once; secrets from config when they resolve, which is still during preview
    const given = (v: unknown) => (v === undefined || typeof v === "string");
    if (typeof args.password === "string" && typeof args.sentinelPassword === "string" && given(args.previousPassword)) {
      checkRedisPasswords(args.password, args.sentinelPassword, args.previousPassword as string | undefined);
    }
    const checked = pulumi.all([args.password, args.sentinelPassword, args.previousPassword])
      .apply(([a, i, prev]) => { checkRedisPasswords(a, i, prev); return { a, i, prev }; });
    const password = pulumi.secret(checked.apply((c) => c.a));
    // none given: the same inputs as before the previous password existed (no secret output that holds undefined)
    const previous = args.previousPassword === undefined ? undefined : pulumi.secret(checked.apply((c) => c.prev));
    const passwords = { app: password, internal: pulumi.secret(checked.apply((c) => c.i)), previous };

    const conns = s.nodes.map((h) => connectionFor(h, args.ssh));
    const L = redisLayout(s.group);
    const packages = s.nodes.map((host, i) => installPackages(`${name}-${host.name}-packages`, conns[i],
      ["redis-server", "redis-sentinel", "redis-tools", "haproxy", ...(s.vip ? ["keepalived"] : [])], { parent: this }));
    // every node's data is surveyed before any node's redis.conf is written: the initial master is the newest data's node
    const surveys = s.nodes.map((host, i) => runScript(`${name}-${host.name}-redis-survey`, { connection: conns[i], create: renderSurveyScript(L.redisRuntime) },
      { parent: this, dependsOn: [packages[i]] }));
    const initialMaster = pulumi.all(surveys.map((v) => v.stdout)).apply((out) => chooseInitialMaster(s.nodes, out.map(parseSurvey),
      s.replicaPriorities?.map((p) => p !== 0)).address);

    // a password rotation (rotation.ts): every node's Redis and Sentinel accept the new passwords, then every client
    // switches to them at runtime, before any node's files change; the old ones are dropped once the group is healthy
    const setups = s.nodes.map((host, i) => this.groupSetup(name, host, conns[i], s, surveys[i]));
    const rotationInput = (phase: RotationPhase) => pulumi.secret(pulumi.all([passwords.app, passwords.internal, passwords.previous])
      .apply(([a, i, prev]) => rotationStdin(phase, { appUser: s.appUser, masterName: s.masterName }, i, a, prev)));
    const rotate = (phase: RotationPhase, deps: (i: number) => pulumi.Resource[]) => s.nodes.map((host, i) =>
      runScript(`${name}-${host.name}-rotate-${phase}`, {
        connection: conns[i], create: rotationScript(s.port, s.sentinelPort, L.paths.cliPass), stdin: rotationInput(phase), quiet: true,
        triggers: [contentHash(passwords.app, passwords.internal)],
      }, { parent: this, dependsOn: deps(i) }));
    const added = rotate("add", (i) => [setups[i]]);
    const switched = rotate("switch", () => added);
    // HAProxy checks every node's Redis: each node's HAProxy takes its new check login before any Redis restarts
    const haproxies = s.nodes.map((host, i) => this.deployHaproxy(`${name}-${host.name}`, conns[i], s, passwords.internal, [setups[i], ...switched]));

    // rolling: node k's Redis restart waits until node k-1 is ready again (replica synced, or master answering)
    const deployed = rolling(s.nodes, (host, previousReady, index) =>
      this.deployNode(name, host, conns[index], s, passwords, setups[index], initialMaster,
        [...previousReady, ...haproxies], switched), (r) => r.ready);
    const last = s.vip ? this.deployKeepalived(name, conns, s, args.keepalivedAuthPass!, deployed.map((r, i) => [r.last, haproxies[i]]))
      : deployed.map((r) => r.last);
    // scale in (membership.ts), from the first node when the node list changes: a removed master hands over (once the
    // first node's login file is there; the firewalls follow the list only after it), then, once every kept node is
    // deployed, the kept Sentinels forget the removed nodes
    const params: MembershipParams = { nodes: s.nodes, port: s.port, sentinelPort: s.sentinelPort, masterName: s.masterName, passFile: L.paths.cliPass };
    const nodeList = s.nodes.map((n) => n.address).join(" ");
    this.handOver = runScript(`${name}-${s.nodes[0].name}-hand-over`, { connection: conns[0], create: handOverScript(params), triggers: [nodeList] },
      { parent: this, dependsOn: [deployed[0].pass] });
    const forget = runScript(`${name}-${s.nodes[0].name}-forget-removed`, { connection: conns[0], create: forgetScript(params), triggers: [nodeList] },
      { parent: this, dependsOn: [this.handOver, ...last] });
    // every node waits for the whole group: all Sentinels must see each other and the master every replica
    const health = s.nodes.map((host, i) => waitFor(`${name}-${host.name}-health`, conns[i], `sh ${L.paths.health} group`, 180,
      { parent: this, dependsOn: [...last, ...haproxies, forget] }));
    rotate("drop", () => health);

    const healthy = pulumi.all(health.map((h) => h.stdout));
    this.vip = healthy.apply(() => s.vip ?? s.nodes[0].address);
    this.port = healthy.apply(() => s.haproxyPort);
    this.masterName = pulumi.output(s.masterName);
    this.sentinelAddresses = pulumi.output(s.nodes.map((n) => `${n.address}:${s.sentinelPort}`));
    this.user = pulumi.output(s.appUser);
    this.password = password;
    this.registerOutputs({ vip: this.vip, port: this.port, masterName: this.masterName, sentinelAddresses: this.sentinelAddresses,
      user: this.user, password: this.password });
  }

  /**
   * A named group's own pieces before its first file: the data dir, the HAProxy and keepalived units, and the packaged
   * default Redis and Sentinel stopped (they listen on 6379/26379 on loopback, a port a group may use). Nothing in
   * the single-object form, whose steps stay as they were.
   */
  private groupSetup(name: string, host: HostSpec, conn: command.types.input.remote.ConnectionArgs, s: ResolvedRedisSentinelGroupSettings,
    survey: command.remote.Command): command.remote.Command {
    const L = redisLayout(s.group);
    if (!L.unitFiles || s.group === undefined) return survey;
    const g = s.group, withVip = s.vip !== undefined;
    const unit = (path: string, text: string) => [`cat > ${path}.new <<'HASTACK_UNIT'`, text.trimEnd(), "HASTACK_UNIT", `mv -f ${path}.new ${path}`];
    const create = [
      `install -d -o redis -g redis -m 0750 ${L.redisRuntime.dir}`,
      ...unit(L.unitFiles.haproxy, renderHaproxyUnit(g)),
      ...(withVip ? unit(L.unitFiles.keepalived, renderKeepalivedUnit(g)) : []),
      "systemctl daemon-reload",
      "systemctl disable --now redis-server redis-sentinel >/dev/null 2>&1 || true",
    ].join("\n");
    return runScript(`${name}-${host.name}-group-setup`, {
      connection: conn,
      create,
      // the data dir stays (as the single-object form's /var/lib/redis does): a destroy must not lose data
      delete: [`rm -f ${L.unitFiles.haproxy} ${L.unitFiles.keepalived}`, "systemctl daemon-reload"].join("\n"),
      // a new unit text replaces the step; the generation keeps the old step's delete from removing the new files
      triggers: [contentHash(create)],
    }, { parent: this, dependsOn: [survey] });
  }

  private deployNode(name: string, host: HostSpec, conn: command.types.input.remote.ConnectionArgs,
    s: ResolvedRedisSentinelGroupSettings, passwords: { app: pulumi.Output<string>; internal: pulumi.Output<string>; previous?: pulumi.Output<string | undefined> }, survey: command.remote.Command,
    initialMaster: pulumi.Output<string>, previousReady: pulumi.Resource[], rotated: pulumi.Resource[]) {
    const L = redisLayout(s.group);
    const P = L.paths;
    const p = `${name}-${host.name}`;
    const after = (...deps: (pulumi.Resource | undefined)[]): pulumi.CustomResourceOptions =>
      ({ parent: this, dependsOn: deps.filter((d): d is pulumi.Resource => d !== undefined) });

    const internal = passwords.internal;
    const pass = putFile(`${p}-password`, { connection: conn, path: P.cliPass, content: internal, secret: true }, after(survey, ...rotated));
    // the Sentinel ACL user's derived password, for SENTINEL SET auth-pass (see sentinelAuthPass)
    const sentinelPass = putFile(`${p}-sentinel-password`, {
      connection: conn, path: `${P.cliPass}.sentinel`, content: internal.apply(sentinelAuthPass), secret: true,
    }, after(pass));
    const healthScript = putFile(`${p}-health-script`, {
      connection: conn, path: P.health, content: renderHealthScript(s), mode: "0700", validate: `sh -n "$NEW"`,
    }, after(sentinelPass));

    // Redis: settings we own (changeable) in an included file; redis.conf itself written once, then Redis' own
    const acl = pulumi.secret(pulumi.all([passwords.app, internal, passwords.previous]).apply(([a, i, prev]) => renderRedisAcl(s, a, i, prev)));
    const aclFile = putFile(`${p}-redis-users`, {
      connection: conn, path: P.acl, content: acl, secret: true, mode: "0640", owner: "redis:redis",
    }, after(healthScript));
    const managed = internal.apply((pw) => renderRedisManaged(s, host, pw));
    const managedFile = putFile(`${p}-redis-settings`, {
      connection: conn, path: P.managed, content: managed, secret: true, mode: "0640", owner: "redis:redis",
      validate: renderRedisManagedCheck(),
    }, after(aclFile));
    const mainFile = runScript(`${p}-redis-conf`, {
      connection: conn, create: initialMaster.apply((m) => renderRedisMainScript(s, host, m)),
      delete: `rm -f ${P.main} ${P.mainMarker}`,
    }, after(managedFile));
    const redis = serviceEnabled(`${p}-redis`, conn, L.units.redis, after(mainFile));
    // one node at a time, so a settings change never restarts every Redis at once
    // (a change of users or passwords alone is applied at runtime: see renderRedisApplyScript)
    const restart = restartOnChange(`${p}-redis-restart`, conn, renderRedisApplyScript(s), [contentHash(managed, acl)],
      after(redis, ...previousReady), renderRedisApplyUpdateScript(s));
    const ready = waitFor(`${p}-redis-ready`, conn, `sh ${P.health} local`, 60, after(restart), [contentHash(managed, acl)]);

    // Sentinel: file written once (monitoring the master the running Sentinels report), later changes via SENTINEL SET
    const sentinelConf = internal.apply((pw) => renderSentinelConf(s, host, pw, MASTER_PLACEHOLDER));
    const sentinelFile = runScript(`${p}-sentinel-conf`, {
      connection: conn, create: initialMaster.apply((m) => renderSentinelScript(s, m)), stdin: sentinelConf, quiet: true,
      delete: `rm -f ${P.sentinel} ${P.sentinelMarker}`,
    }, after(ready));
    const sentinel = serviceEnabled(`${p}-sentinel`, conn, L.units.sentinel, after(sentinelFile));
    const sentinelSettings = runScript(`${p}-sentinel-settings`, {
      connection: conn, create: renderSentinelSetScript(s),
      triggers: [contentHash(String(s.quorum), String(s.downAfterMs), String(s.failoverTimeoutMs), String(s.parallelSyncs), internal)],
    }, after(sentinel));

    return { ready, last: sentinelSettings, pass };
  }

  /**
   * keepalived on every node, after its HAProxy and Sentinel. The VIP keeps VRRPv2, whose adverts carry auth_pass:
   * a changed password stops the backups before any node's file changes and starts them once the holder reloaded
   * (components/keepalived/authRotation.ts), so the VIP is never on two nodes; no-ops otherwise.
   */
  private deployKeepalived(name: string, conns: command.types.input.remote.ConnectionArgs[], s: ResolvedRedisSentinelGroupSettings,
    authPass: pulumi.Input<string>, before: pulumi.Resource[][]): command.remote.Command[] {
    const L = redisLayout(s.group);
    const P = L.paths;
    const o = (deps: pulumi.Resource[]): pulumi.CustomResourceOptions => ({ parent: this, dependsOn: deps });
    const rp = { unit: L.units.keepalived, confPath: P.keepalived, vip: s.vip! };
    const confs = s.nodes.map((_, i) => pulumi.all([authPass]).apply(([ka]) => renderRedisKeepalived(s, i, ka)));
    const checks = s.nodes.map((host, i) => putFile(`${name}-${host.name}-keepalived-check`, {
      connection: conns[i], path: P.keepalivedCheck, content: renderKeepalivedCheck(s), mode: "0700", validate: `sh -n "$NEW"`,
    }, o(before[i])));
    // the steps keep the trigger they had before the helper: the raw secret's hash (a new one replaces them)
    const { enabled, resumed } = authRotationSteps({
      nodes: s.nodes.map((host, i) => ({ prefix: `${name}-${host.name}`, connection: conns[i], conf: confs[i], after: checks })),
      params: rp, triggers: [contentHash(authPass)], parent: this,
    }, (i, quiesced) => {
      const kaFile = putFile(`${name}-${s.nodes[i].name}-keepalived-conf`, {
        connection: conns[i], path: P.keepalived, content: pulumi.secret(confs[i]), secret: true, validate: keepalivedValidateCommand(),
      }, o([checks[i], ...quiesced]));
      return serviceEnabled(`${name}-${s.nodes[i].name}-keepalived`, conns[i], L.units.keepalived, o([kaFile]));
    });
    return s.nodes.map((host, i) => restartOnChange(`${name}-${host.name}-keepalived-reload`, conns[i], `systemctl reload ${L.units.keepalived}`,
      [contentHash(pulumi.secret(confs[i]))], o([enabled[i], resumed[i]])));
  }

  /** HAProxy: always forwards to whichever node answers role:master. */
  private deployHaproxy(p: string, conn: command.types.input.remote.ConnectionArgs, s: ResolvedRedisSentinelGroupSettings,
    internal: pulumi.Output<string>, deps: pulumi.Resource[]): command.remote.Command {
    const L = redisLayout(s.group);
    const haproxyCfg = internal.apply((pw) => renderHaproxyCfg(s, pw));
    const haproxyFile = putFile(`${p}-haproxy-conf`, {
      connection: conn, path: L.paths.haproxy, content: haproxyCfg, secret: true, owner: "haproxy:haproxy",
      validate: `haproxy -c -q -f "$NEW"`,
    }, { parent: this, dependsOn: deps });
    const haproxy = serviceEnabled(`${p}-haproxy`, conn, L.units.haproxy, { parent: this, dependsOn: [haproxyFile] });
    return restartOnChange(`${p}-haproxy-reload`, conn, `systemctl reload ${L.units.haproxy}`, [contentHash(haproxyCfg)],
      { parent: this, dependsOn: [haproxy] });
  }
}
