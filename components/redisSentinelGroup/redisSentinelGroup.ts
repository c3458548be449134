import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { HostSpec, SshAccess, connectionFor } from "../common/host";
import { contentHash } from "../common/hash";
import { installPackages, putFile, restartOnChange, runScript, serviceEnabled, waitFor } from "../common/remote";
import { invalid } from "../common/validate";
import { ResolvedRedisSentinelGroupSettings, checkRedisPassword } from "./args";
import {
  MASTER_PLACEHOLDER, REDIS_PATHS, renderHaproxyCfg, renderHealthScript, renderKeepalivedCheck, renderRedisApplyScript,
  renderRedisMainScript, renderRedisManaged, renderRedisManagedCheck, renderRedisKeepalived, renderSentinelConf,
  renderSentinelScript, renderSentinelSetScript, sentinelAuthPass, renderRedisAcl,
} from "./render";

export interface RedisSentinelGroupArgs {
  /** Output of resolveRedisSentinelGroupSettings (only create the component when it is not undefined). */
  readonly settings: ResolvedRedisSentinelGroupSettings;
  readonly ssh: SshAccess;
  /** Redis requirepass/masterauth, Sentinel requirepass and auth-pass, HAProxy's check login. */
  readonly password: pulumi.Input<string>;
  /** VRRP shared secret; required when settings.vip is set. */
  readonly keepalivedAuthPass?: pulumi.Input<string>;
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
  public readonly password: pulumi.Output<string>;

  constructor(name: string, args: RedisSentinelGroupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:cache:RedisSentinelGroup", name, {}, opts);
    const s = args.settings;
    if (s.vip && args.keepalivedAuthPass === undefined) invalid("keepalivedAuthPass", undefined, "a secret when the Redis group has a vip");
    const password = pulumi.secret(pulumi.output(args.password).apply((p) => { checkRedisPassword(p); return p; }));

    const ready: command.remote.Command[] = [];
    const last: command.remote.Command[] = [];
    const conns = s.nodes.map((h) => connectionFor(h, args.ssh));
    s.nodes.forEach((host, index) => {
      const r = this.deployNode(name, host, index, conns[index], args, password, ready[index - 1]);
      ready.push(r.ready);
      last.push(r.last);
    });
    // every node waits for the whole group: all Sentinels must see each other and the master every replica
    const health = s.nodes.map((host, i) => waitFor(`${name}-${host.name}-health`, conns[i], `sh ${REDIS_PATHS.health} group`, 180,
      { parent: this, dependsOn: last }));

    const healthy = pulumi.all(health.map((h) => h.stdout));
    this.vip = healthy.apply(() => s.vip ?? s.nodes[0].address);
    this.port = healthy.apply(() => s.haproxyPort);
    this.masterName = pulumi.output(s.masterName);
    this.sentinelAddresses = pulumi.output(s.nodes.map((n) => `${n.address}:${s.sentinelPort}`));
    this.password = password;
    this.registerOutputs({ vip: this.vip, port: this.port, masterName: this.masterName, sentinelAddresses: this.sentinelAddresses,
      password: this.password });
  }

  private deployNode(name: string, host: HostSpec, index: number, conn: command.types.input.remote.ConnectionArgs,
    args: RedisSentinelGroupArgs, password: pulumi.Output<string>, previousReady?: command.remote.Command) {
    const s = args.settings;
    const P = REDIS_PATHS;
    const p = `${name}-${host.name}`;
    const after = (...deps: (pulumi.Resource | undefined)[]): pulumi.CustomResourceOptions =>
      ({ parent: this, dependsOn: deps.filter((d): d is pulumi.Resource => d !== undefined) });

    const packages = installPackages(`${p}-packages`, conn,
      ["redis-server", "redis-sentinel", "redis-tools", "haproxy", ...(s.vip ? ["keepalived"] : [])], after());
    const pass = putFile(`${p}-password`, { connection: conn, path: P.cliPass, content: password, secret: true }, after(packages));
    // the Sentinel ACL user's derived password, for SENTINEL SET auth-pass (see sentinelAuthPass)
    const sentinelPass = putFile(`${p}-sentinel-password`, {
      connection: conn, path: `${P.cliPass}.sentinel`, content: password.apply(sentinelAuthPass), secret: true,
    }, after(pass));
    const healthScript = putFile(`${p}-health-script`, {
      connection: conn, path: P.health, content: renderHealthScript(s), mode: "0700", validate: `sh -n "$NEW"`,
    }, after(sentinelPass));

    // Redis: settings we own (changeable) in an included file; redis.conf itself written once, then Redis' own
    const acl = password.apply(renderRedisAcl);
    const aclFile = putFile(`${p}-redis-users`, {
      connection: conn, path: P.acl, content: acl, secret: true, mode: "0640", owner: "redis:redis",
    }, after(healthScript));
    const managed = password.apply((pw) => renderRedisManaged(s, host, pw));
    const managedFile = putFile(`${p}-redis-settings`, {
      connection: conn, path: P.managed, content: managed, secret: true, mode: "0640", owner: "redis:redis",
      validate: renderRedisManagedCheck(),
    }, after(aclFile));
    const mainFile = runScript(`${p}-redis-conf`, {
      connection: conn, create: renderRedisMainScript(s, host),
      delete: `rm -f ${P.main} ${P.mainMarker}`,
    }, after(managedFile));
    const redis = serviceEnabled(`${p}-redis`, conn, "redis-server", after(mainFile));
    // one node at a time, so a settings change never restarts every Redis at once
    const restart = restartOnChange(`${p}-redis-restart`, conn, renderRedisApplyScript(), [contentHash(managed, acl)],
      after(redis, previousReady));
    const ready = waitFor(`${p}-redis-ready`, conn, `sh ${P.health} local`, 60, after(restart), [contentHash(managed, acl)]);

    // Sentinel: file written once (monitoring the master the running Sentinels report), later changes via SENTINEL SET
    const sentinelConf = password.apply((pw) => renderSentinelConf(s, host, pw, MASTER_PLACEHOLDER));
    const sentinelFile = runScript(`${p}-sentinel-conf`, {
      connection: conn, create: renderSentinelScript(s), stdin: sentinelConf, quiet: true,
      delete: `rm -f ${P.sentinel} ${P.sentinelMarker}`,
    }, after(ready));
    const sentinel = serviceEnabled(`${p}-sentinel`, conn, "redis-sentinel", after(sentinelFile));
    const sentinelSettings = runScript(`${p}-sentinel-settings`, {
      connection: conn, create: renderSentinelSetScript(s),
      triggers: [contentHash(String(s.quorum), String(s.downAfterMs), String(s.failoverTimeoutMs), String(s.parallelSyncs), password)],
    }, after(sentinel));

    // HAProxy: always forwards to whichever node answers role:master
    const haproxyCfg = password.apply((pw) => renderHaproxyCfg(s, pw));
    const haproxyFile = putFile(`${p}-haproxy-conf`, {
      connection: conn, path: P.haproxy, content: haproxyCfg, secret: true, owner: "haproxy:haproxy",
      validate: `haproxy -c -q -f "$NEW"`,
    }, after(sentinelSettings));
    const haproxy = serviceEnabled(`${p}-haproxy`, conn, "haproxy", after(haproxyFile));
    let last = restartOnChange(`${p}-haproxy-reload`, conn, "systemctl reload haproxy", [contentHash(haproxyCfg)], after(haproxy));

    if (s.vip) {
      const check = putFile(`${p}-keepalived-check`, {
        connection: conn, path: P.keepalivedCheck, content: renderKeepalivedCheck(s), mode: "0700", validate: `sh -n "$NEW"`,
      }, after(last));
      const conf = pulumi.all([args.keepalivedAuthPass!]).apply(([ka]) => renderRedisKeepalived(s, index, ka));
      const kaFile = putFile(`${p}-keepalived-conf`, {
        connection: conn, path: P.keepalived, content: pulumi.secret(conf), secret: true, validate: `keepalived -t -f "$NEW"`,
      }, after(check));
      const ka = serviceEnabled(`${p}-keepalived`, conn, "keepalived", after(kaFile));
      last = restartOnChange(`${p}-keepalived-reload`, conn, "systemctl reload keepalived", [contentHash(pulumi.secret(conf))], after(ka));
    }
    return { ready, last };
  }
}
