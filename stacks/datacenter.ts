import * as pulumi from "@pulumi/pulumi";
import { PatroniCluster, resolvePatroniClusterSettings } from "../components/patroniCluster";
import { PgBouncerVipPair, resolvePgBouncerVipPairSettings } from "../components/pgBouncerVipPair";
import { WorksPadNode, resolveWorksPadNodeSettings } from "../components/worksPadNode";
import { NginxBalancer, resolveNginxBalancerSettings } from "../components/nginxBalancer";
import { RedisSentinelGroup, resolveRedisSentinelGroupSettings } from "../components/redisSentinelGroup";
import { StackConfig } from "./config";
import { password } from "./secrets";
import { StackPki } from "./pki";
import { checkTopology, rawAddresses } from "./topology";

/** Every setting of a datacenter resolved and cross-checked: pure, throws before any resource. */
export function resolveDatacenter(cfg: StackConfig) {
  const s = cfg.subnet;
  const everyHost = [cfg.postgres, cfg.proxy, cfg.workspad, cfg.nginx, cfg.redis].flatMap(rawAddresses);
  const postgres = resolvePatroniClusterSettings(cfg.postgres, s);
  const proxy = resolvePgBouncerVipPairSettings(cfg.proxy, s, everyHost, [
    { name: "hastack:postgres.pgPort", port: postgres.pgPort }, { name: "hastack:postgres.restApiPort", port: postgres.restApiPort },
  ]);
  const workspad = resolveWorksPadNodeSettings(cfg.workspad, s);
  const nginx = resolveNginxBalancerSettings(cfg.nginx, s, everyHost);
  const redis = resolveRedisSentinelGroupSettings(cfg.redis, s, everyHost);
  const HAPROXY = "/etc/haproxy/haproxy.cfg", KEEPALIVED = "/etc/keepalived/keepalived.conf";
  checkTopology([
    { section: "hastack:postgres", nodes: postgres.nodes, files: ["/etc/patroni/config.yml", "/etc/default/etcd"], ports: [
      { setting: "pgPort", port: postgres.pgPort }, { setting: "restApiPort", port: postgres.restApiPort },
      { setting: "etcdClientPort", port: postgres.etcdClientPort }, { setting: "etcdPeerPort", port: postgres.etcdPeerPort }] },
    { section: "hastack:proxy", nodes: proxy.nodes, files: [HAPROXY, KEEPALIVED], ports: [
      { setting: "port", port: proxy.port }, { setting: "haproxyPort", port: proxy.haproxyPort }] },
    { section: "hastack:workspad", nodes: workspad.nodes, files: [workspad.appSettingsPath], ports: [{ setting: "port", port: workspad.port }] },
    { section: "hastack:nginx", nodes: nginx.nodes, files: nginx.vip ? [KEEPALIVED] : [], ports: [
      { setting: "listenPort", port: nginx.listenPort }, ...(nginx.httpRedirect ? [{ setting: "httpRedirect", port: 80 }] : [])] },
    ...(redis ? [{ section: "hastack:redis", nodes: redis.nodes, files: [HAPROXY, ...(redis.vip ? [KEEPALIVED] : [])], ports: [
      { setting: "port", port: redis.port }, { setting: "sentinelPort", port: redis.sentinelPort }, { setting: "haproxyPort", port: redis.haproxyPort }] }] : []),
  ]);
  return { postgres, proxy, workspad, nginx, redis };
}

/**
 * One datacenter: PatroniCluster ← PgBouncerVipPair ← WorksPadNode×n ← NginxBalancer, and an
 * independent RedisSentinelGroup when enabled. Each layer waits for the health of the one below.
 */
export class Datacenter extends pulumi.ComponentResource {
  readonly db: PatroniCluster;
  readonly proxy: PgBouncerVipPair;
  readonly apps: WorksPadNode[];
  readonly balancer: NginxBalancer;
  readonly redis?: RedisSentinelGroup;
  readonly caCertPem: pulumi.Output<string>;

  constructor(name: string, cfg: StackConfig, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:stack:Datacenter", name, {}, opts);
    const r = resolveDatacenter(cfg);
    const child = { parent: this };
    const pw = (n: Parameters<typeof password>[0]) => password(n, cfg.passwords, name, child);
    const pki = new StackPki(name, cfg.certificates, [...r.workspad.nodes, ...r.nginx.nodes].map((h) => h.name), child);
    this.caCertPem = pki.caCertPem;

    this.db = new PatroniCluster(`${name}-db`, {
      settings: r.postgres, ssh: cfg.ssh,
      superuserPassword: pw("postgresSuperuser"), replicationPassword: pw("postgresReplication"),
      rewindPassword: pw("postgresRewind"), appPassword: pw("postgresApp"),
    }, child);

    this.proxy = new PgBouncerVipPair(`${name}-proxy`, {
      settings: r.proxy, ssh: cfg.ssh,
      patroniMembers: r.postgres.nodes, pgPort: r.postgres.pgPort, restApiPort: r.postgres.restApiPort,
      database: this.db.database, appUser: this.db.appUser, appPassword: this.db.appPassword,
      keepalivedAuthPass: pw("proxyKeepalived"),
    }, { parent: this, dependsOn: [this.db] });

    // WorksPad certificates also carry the upstream name nginx verifies them by
    const tls = Object.fromEntries([
      ...r.workspad.nodes.map((h) => [h.name, pki.server(h.name, h.address, [r.nginx.upstreamTlsName])]),
      ...r.nginx.nodes.map((h) => [h.name, pki.server(h.name, h.address)]),
    ]);
    const dataProtection = pki.dataProtection();
    this.apps = r.workspad.nodes.map((n) => new WorksPadNode(`${name}-app-${n.name}`, {
      settings: r.workspad, nodeName: n.name, ssh: cfg.ssh,
      dbHost: this.proxy.vip, dbPort: this.proxy.port, database: this.db.database, dbUser: this.db.appUser,
      dbPassword: this.db.appPassword, tls, dataProtection, caCertPem: pki.caCertPem,
    }, { parent: this, dependsOn: [this.proxy] }));

    this.balancer = new NginxBalancer(`${name}-edge`, {
      settings: r.nginx, ssh: cfg.ssh,
      upstreams: this.apps.map((a) => ({ name: a.name, address: a.address, port: a.port })),
      tls, caCertPem: pki.caCertPem,
      keepalivedAuthPass: r.nginx.vip ? pw("nginxKeepalived") : undefined,
    }, child);

    if (r.redis) {
      this.redis = new RedisSentinelGroup(`${name}-cache`, {
        settings: r.redis, ssh: cfg.ssh, password: pw("redis"),
        keepalivedAuthPass: r.redis.vip ? pw("redisKeepalived") : undefined,
      }, child);
    }
    this.registerOutputs({});
  }

  /** Stack outputs: what users and a second datacenter's stack (via StackReference) need. */
  exports(): Record<string, unknown> {
    return {
      endpoint: this.balancer.endpoint,
      caCertPem: this.caCertPem,
      postgres: {
        members: this.db.memberAddresses,
        leaderName: this.db.leaderName,
        leaderAddress: this.db.leaderAddress,
        replicationEndpoint: this.db.replicationEndpoint,
      },
      replicationPassword: this.db.replicationPassword,
      dbVip: this.proxy.vip,
      dbPort: this.proxy.port,
      dbConnectionString: this.proxy.connectionString,
      workspadNodes: this.apps.map((a) => pulumi.interpolate`${a.address}:${a.port}`),
      ...(this.redis ? {
        redis: { vip: this.redis.vip, port: this.redis.port, masterName: this.redis.masterName, sentinels: this.redis.sentinelAddresses },
        redisPassword: this.redis.password,
      } : {}),
    };
  }
}
