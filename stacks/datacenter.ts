import * as pulumi from "@pulumi/pulumi";
import { PatroniCluster, resolvePatroniClusterSettings } from "../components/patroniCluster";
import { PgBouncerVipPair, resolvePgBouncerVipPairSettings } from "../components/pgBouncerVipPair";
import { WorksPadNode, resolveWorksPadNodeSettings } from "../components/worksPadNode";
import { NginxBalancer, resolveNginxBalancerSettings } from "../components/nginxBalancer";
import { RedisSentinelGroup, ResolvedRedisSentinelGroupSettings, redisLayout, resolveRedisGroups } from "../components/redisSentinelGroup";
import { SshAccess, invalid, inSubnet, rolling } from "../components/common";
import { StackConfig } from "./config";
import { RedisGroupPasswordKind, password, previousRedisPassword, redisGroupPassword } from "./secrets";
import { StackPki } from "./pki";
import { checkAcrossSections, checkTopology, rawAddresses } from "./topology";
import { hostKeysFor } from "./hostKeys";
import { CheckedPeers, LEADER_RULE, SHARED_DB_PASSWORDS, SiteContract, SiteSecrets, siteOutputs } from "./contract";
import { ResolvedSite, resolveSiteSettings, standbySlotName } from "./site";
import { HostFirewall } from "../components/firewall";
import { firewallPlan } from "./firewall";
import { stackVms } from "../inventory/vmmanager/stack";
import { CONFIG_PATH as PGBACKREST_CONFIG, PgBackRest, patroniArchive, resolvePgBackRestSettings } from "../components/pgBackRest";
import { SOCKET_DIR } from "../components/patroniCluster/render";

/** Every setting of a datacenter resolved and cross-checked: pure, throws before any resource. */
export function resolveDatacenter(cfg: StackConfig) {
  const s = cfg.subnet;
  // hastack:redis is one object (one group, the packaged units) or a list of named groups
  const redisList = Array.isArray(cfg.redis);
  const everyHost = [cfg.postgres, cfg.proxy, cfg.workspad, cfg.nginx, ...(redisList ? cfg.redis as unknown[] : [cfg.redis])].flatMap(rawAddresses);
  const pg = resolvePatroniClusterSettings(cfg.postgres, s);
  // Pulumi.yaml gives the optional sections a default of {} (a key without a default is required): {} = absent
  const absent = (v: unknown) => v === undefined || (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);
  const backup = resolvePgBackRestSettings(absent(cfg.backup) ? undefined : cfg.backup, { clusterName: pg.clusterName, dbHosts: pg.nodes,
    dbPorts: [{ name: "hastack:postgres.pgPort", port: pg.pgPort }, { name: "hastack:postgres.restApiPort", port: pg.restApiPort },
      { name: "hastack:postgres.etcdClientPort", port: pg.etcdClientPort }, { name: "hastack:postgres.etcdPeerPort", port: pg.etcdPeerPort }] });
  // pgBackRest reaches PostgreSQL over the socket as OS user postgres, which pg_hba maps (peer) to the role postgres only
  if (backup && pg.superuser !== "postgres") invalid("hastack:postgres.superuser", pg.superuser, "\"postgres\" when hastack:backup is set (pgBackRest logs in over the socket by peer authentication as postgres)");
  // archiving only with backups: without hastack:backup the Patroni settings are exactly those of before
  const postgres = backup ? { ...pg, archive: patroniArchive(backup.stanza) } : pg;
  const proxy = resolvePgBouncerVipPairSettings(cfg.proxy, s, everyHost, [
    { name: "hastack:postgres.pgPort", port: postgres.pgPort }, { name: "hastack:postgres.restApiPort", port: postgres.restApiPort },
  ]);
  const site = resolveSiteSettings(absent(cfg.site) ? undefined : cfg.site);
  site?.remoteSubnets.forEach((rs, i) => {
    if (inSubnet(s.split("/")[0], rs) || inSubnet(rs.split("/")[0], s)) invalid(`hastack:site.remoteSubnets[${i}]`, rs, `a subnet of another site, not overlapping this stack's hastack:subnet ${s}`);
  });
  // a site may run only the database layers (its app tier can live elsewhere); one datacenter keeps them required
  const withApps = !(site && absent(cfg.workspad));
  if (!withApps && !absent(cfg.nginx)) invalid("hastack:nginx", cfg.nginx, "nothing when hastack:workspad is absent (nginx balances the WorksPad nodes)");
  const workspad = withApps ? resolveWorksPadNodeSettings(cfg.workspad, s) : undefined;
  const nginx = withApps ? resolveNginxBalancerSettings(cfg.nginx, s, everyHost) : undefined;
  const resolvedRedis = resolveRedisGroups(cfg.redis, s, everyHost);
  const redis = redisList ? undefined : resolvedRedis[0];
  const redisGroups = redisList ? resolvedRedis : [];
  const HAPROXY = "/etc/haproxy/haproxy.cfg", KEEPALIVED = "/etc/keepalived/keepalived.conf";
  checkTopology([
    { section: "hastack:postgres", nodes: postgres.nodes, files: ["/etc/patroni/config.yml", "/etc/default/etcd"], ports: [
      { setting: "pgPort", port: postgres.pgPort }, { setting: "restApiPort", port: postgres.restApiPort },
      { setting: "etcdClientPort", port: postgres.etcdClientPort }, { setting: "etcdPeerPort", port: postgres.etcdPeerPort },
      ...(backup ? [{ setting: "backup tlsPort", port: backup.tlsPort }] : [])] },
    ...(backup ? [{ section: "hastack:backup", nodes: [backup.repoHost], files: [PGBACKREST_CONFIG], ports: [{ setting: "tlsPort", port: backup.tlsPort }] }] : []),
    { section: "hastack:proxy", nodes: proxy.nodes, files: [HAPROXY, KEEPALIVED], ports: [
      { setting: "port", port: proxy.port }, { setting: "haproxyPort", port: proxy.haproxyPort }] },
    ...(workspad ? [{ section: "hastack:workspad", nodes: workspad.nodes, files: [workspad.appSettingsPath], ports: [{ setting: "port", port: workspad.port }] }] : []),
    ...(nginx ? [{ section: "hastack:nginx", nodes: nginx.nodes, files: nginx.vip ? [KEEPALIVED] : [], ports: [
      { setting: "listenPort", port: nginx.listenPort }, ...(nginx.httpRedirect ? [{ setting: "httpRedirect", port: 80 }] : [])] }] : []),
    ...(redis ? [{ section: "hastack:redis", nodes: redis.nodes, files: [HAPROXY, ...(redis.vip ? [KEEPALIVED] : [])], ports: [
      { setting: "port", port: redis.port }, { setting: "sentinelPort", port: redis.sentinelPort }, { setting: "haproxyPort", port: redis.haproxyPort }] }] : []),
    // each named group is a section of its own: its ports may not meet another group's or section's on a host
    ...redisGroups.map((g, i) => {
      const P = redisLayout(g.group).paths;
      return { section: `hastack:redis[${i}]`, nodes: g.nodes, files: [P.haproxy, ...(g.vip ? [P.keepalived] : [])], ports: [
        { setting: "port", port: g.port }, { setting: "sentinelPort", port: g.sentinelPort }, { setting: "haproxyPort", port: g.haproxyPort }] };
    }),
  ]);
  // the PgBouncer and nginx hosts' firewall tables admit VRRP only from their own peers, and Debian's HAProxy and
  // keepalived there are theirs: a named group keeps to hosts of its own (or of other groups)
  redisGroups.forEach((g, i) => g.nodes.forEach((n, k) => {
    const other = ([["hastack:proxy", proxy.nodes], ["hastack:nginx", nginx?.nodes ?? []]] as const).find(([, ns]) => ns.some((o) => o.name === n.name));
    if (other) invalid(`hastack:redis[${i}].nodes[${k}]`, n.name, `a host that is not also in ${other[0]} (its HAProxy, keepalived and VRRP filter are that section's)`);
  }));
  checkAcrossSections({ postgres, proxy, workspad, nginx, redis, redisGroups, pgBackRestHosts: backup ? [...postgres.nodes, backup.repoHost] : [] }, { passwords: cfg.passwords, certificates: cfg.certificates });
  // the sites share one database: its role passwords cannot be generated per stack (readPeers compares them)
  if (site) {
    for (const [key] of SHARED_DB_PASSWORDS) {
      if (cfg.passwords[key] === undefined) invalid(`hastack:passwords.${key}`, "(not set)", "a password set in this stack's config when hastack:site is set: every site's stack sets the same value (the sites share one database)");
    }
  }
  return { postgres, proxy, workspad, nginx, redis, redisGroups, site, backup };
}

/**
 * One datacenter: PatroniCluster ← PgBouncerVipPair ← WorksPadNode×n ← NginxBalancer, and an
 * independent RedisSentinelGroup when enabled. Each layer waits for the health of the one below.
 */
export class Datacenter extends pulumi.ComponentResource {
  readonly db: PatroniCluster;
  readonly proxy: PgBouncerVipPair;
  readonly apps: WorksPadNode[];
  readonly balancer?: NginxBalancer;
  readonly redis?: RedisSentinelGroup;
  /** The named groups of the list form of hastack:redis (empty in the single-object form). */
  readonly redisGroups: RedisSentinelGroup[] = [];
  /** pgBackRest with its repository host, when hastack:backup is set. */
  readonly backup?: PgBackRest;
  readonly caCertPem: pulumi.Output<string>;
  /** `hastack:site` resolved; a stack without it is a one-site primary named after its stack, at epoch 0. */
  private readonly site: ResolvedSite;
  private readonly subnet: string;
  private readonly clusterName: string;
  private readonly replicationUser: string;

  /** `peers`: the other sites' contracts, read and checked by readPeers (stacks/contract.ts) first. */
  constructor(name: string, cfg: StackConfig, opts?: pulumi.ComponentResourceOptions, peers: CheckedPeers = {}) {
    super("hastack:stack:Datacenter", name, {}, opts);
    const r = resolveDatacenter(cfg);
    const child = { parent: this };
    const appHosts = [...(r.workspad?.nodes ?? []), ...(r.nginx?.nodes ?? [])];
    // VMmanager VMs of the `vm: true` hosts: every connection to one dials the VM's address output, so it waits for the VM
    const vm = stackVms(name, cfg.vmmanager, { postgres: cfg.postgres, proxy: cfg.proxy, workspad: r.workspad && cfg.workspad, nginx: r.nginx && cfg.nginx, redis: r.redis ? cfg.redis : redisVmSection(cfg.redis) }, cfg.ssh, child);
    const ssh = hostKeysFor(name, vm.ssh, [r.postgres, r.proxy, ...(r.redis ? [r.redis] : []), ...r.redisGroups].flatMap((x) => x.nodes).concat(appHosts, r.backup ? [r.backup.repoHost] : []), { ...child, dependsOn: vm.ready });
    const pw = (n: Parameters<typeof password>[0]) => password(n, cfg.passwords, name, child);
    const pgBackRestHosts = r.backup ? [...r.postgres.nodes, r.backup.repoHost] : [];
    const pki = new StackPki(name, cfg.certificates, [...appHosts.map((h) => h.name), ...pgBackRestHosts.map((h) => `${h.name}-pgbackrest`)], child);
    this.caCertPem = pki.caCertPem;
    this.site = r.site ?? { name: pulumi.getStack(), peers: [], primarySite: pulumi.getStack(), epoch: 0, remoteSubnets: [], role: "primary" };
    this.subnet = cfg.subnet;
    this.clusterName = r.postgres.clusterName;
    this.replicationUser = r.postgres.replicationUser;

    // `peers` were read and checked against this site by readPeers before this component (program.ts)
    const site = this.site;
    const standby = site.role === "standby";
    if (standby && !peers.primary) invalid("hastack:site.primarySite", site.primarySite, "a peer whose contract was read (readPeers) before the datacenter is built");
    // one database, one set of roles: every site sets the same role passwords (checked against the peers by readPeers)
    const dbPw = { superuser: pw("postgresSuperuser"), replication: pw("postgresReplication"), rewind: pw("postgresRewind"), app: pw("postgresApp") };
    const primaryMembers = peers.primary?.postgres.members ?? [];
    const otherMembers = (peers.others ?? []).flatMap((c) => c.postgres.members);

    this.db = new PatroniCluster(`${name}-db`, {
      settings: r.postgres, ssh,
      superuserPassword: dbPw.superuser, replicationPassword: dbPw.replication,
      rewindPassword: dbPw.rewind, appPassword: dbPw.app, restApiPassword: pw("patroniRest"),
      etcdRootPassword: pw("etcdRoot"), etcdPatroniPassword: pw("etcdPatroni"),
      site: r.site === undefined ? undefined : {
        standby: standby ? { hosts: primaryMembers.map((m) => m.address), port: primaryMembers[0].pgPort, slotName: standbySlotName(site.name) } : undefined,
        permanentSlots: standby ? [] : site.peers.map(standbySlotName),
        remoteSubnets: site.remoteSubnets,
        otherSiteMembers: otherMembers.map((m) => ({ address: m.address, pgPort: m.pgPort, restApiPort: m.restApiPort })),
        slotName: standbySlotName(site.name),
      },
      access: { proxies: r.proxy.nodes.map((h) => h.address), admin: cfg.firewall.adminSources },
    }, child);

    this.proxy = new PgBouncerVipPair(`${name}-proxy`, {
      settings: r.proxy, ssh,
      patroniMembers: r.postgres.nodes, pgPort: r.postgres.pgPort, restApiPort: r.postgres.restApiPort,
      // every site's clients write through their own VIP to whichever site leads (local members first), so a
      // change of the leading site needs no HAProxy change anywhere
      remoteMembers: r.site ? otherMembers : undefined,
      database: this.db.database, appUser: this.db.appUser, appPassword: this.db.appPassword,
      keepalivedAuthPass: pw("proxyKeepalived"),
    }, { parent: this, dependsOn: [this.db] });

    // WorksPad certificates also carry the upstream name nginx verifies them by
    const tls = Object.fromEntries([
      ...(r.workspad?.nodes ?? []).map((h) => [h.name, pki.server(h.name, h.address, [r.nginx!.upstreamTlsName])]),
      ...(r.nginx?.nodes ?? []).map((h) => [h.name, pki.server(h.name, h.address)]),
    ]);
    const workspad = r.workspad, nginx = r.nginx;
    let firewallBuilt: (of: (node: string) => pulumi.Resource[]) => void = () => undefined;
    let firewallFirst: Promise<(node: string) => pulumi.Resource[]> = Promise.resolve(() => []);
    if (workspad && nginx) {
      const dataProtection = pki.dataProtection();
      // CA rotation (README "Rotating the CA"): no node serves a new certificate before nginx and every node trust the
      // CA bundle in force; nginx is built after the nodes (it waits for their health), so its steps come by promise
      let trustBuilt: (steps: pulumi.Resource[]) => void = () => undefined;
      const trustFirst = new Promise<pulumi.Resource[]>((resolve) => (trustBuilt = resolve));
      // scale out (README "Scaling the app tier out and in"): a node starts once the PgBouncer and Redis tables admit
      // it and its own table guards its port; those are built last, so they come by promise too
      firewallFirst = new Promise<(node: string) => pulumi.Resource[]>((resolve) => (firewallBuilt = resolve));
      // a change every node sees (password, certificates, package) restarts them one at a time behind nginx; a first
      // deploy chains too (only restart + health + settle are serial, packages and files go in parallel)
      this.apps = rolling(workspad.nodes, (n, previousGate) => new WorksPadNode(`${name}-app-${n.name}`, {
        settings: workspad, nodeName: n.name, ssh,
        dbHost: this.proxy.vip, dbPort: this.proxy.port, database: this.db.database, dbUser: this.db.appUser,
        dbPassword: this.db.appPassword, tls, dataProtection, caCertPem: pki.trustedCaPem, trustFirst,
        restartAfter: previousGate, settleSeconds: nginx.failTimeoutSeconds, startAfter: firewallFirst.then((of) => of(n.name)),
      }, { parent: this, dependsOn: [this.proxy] }), (app) => app.healthGate);

      this.balancer = new NginxBalancer(`${name}-edge`, {
        settings: nginx, ssh,
        upstreams: this.apps.map((a) => ({ name: a.name, address: a.address, port: a.port })),
        tls, caCertPem: pki.trustedCaPem, upstreamTargets: workspad.nodes.map((n) => ({ address: n.address, port: workspad.port })),
        keepalivedAuthPass: nginx.vip ? pw("nginxKeepalived") : undefined,
      }, child);
      trustBuilt([...this.balancer.trustApplied, ...this.apps.flatMap((a) => (a.trustApplied ? [a.trustApplied] : []))]);
    } else {
      this.apps = [];
    }

    if (r.redis) {
      this.redis = new RedisSentinelGroup(`${name}-cache`, {
        settings: r.redis, ssh, password: pw("redis"), sentinelPassword: pw("redisSentinel"),
        keepalivedAuthPass: r.redis.vip ? pw("redisKeepalived") : undefined, previousPassword: previousRedisPassword(cfg.passwords),
      }, child);
    }
    this.redisGroups.push(...redisGroupComponents(name, r.redisGroups, ssh, cfg.passwords, child));
    if (r.backup) {
      const b = r.backup;
      this.backup = new PgBackRest(`${name}-backup`, {
        settings: b, ssh, dbHosts: r.postgres.nodes, dataDir: r.postgres.dataDir, pgPort: r.postgres.pgPort, socketDir: SOCKET_DIR,
        cipherPass: pw("pgbackrestCipher"), caCertPem: pki.trustedCaPem,
        certs: Object.fromEntries(pgBackRestHosts.map((h) => [h.name, pki.peer(h.name, h.address)])),
        after: [this.db], restApiPort: r.postgres.restApiPort,
      }, child);
    }
    // one table per component and host, each guarding only that component's ports
    const caches = new Map<string, RedisSentinelGroup>([...(this.redis ? [["cache", this.redis] as const] : []),
      ...this.redisGroups.map((g) => [`cache-${g.group}`, g] as const)]);
    const admitted: pulumi.Resource[] = [];
    const appTables = new Map<string, pulumi.Resource>();
    for (const t of firewallPlan({ ...r, firewall: cfg.firewall, sshPort: cfg.ssh.port, remoteMembers: site.remoteSubnets })) {
      // a layer's new rules only once a leader or master the stack removes has handed over (the membership.ts files)
      const cache = caches.get(t.layer);
      // the tables that admit the WorksPad nodes (PgBouncer, Redis) drop a removed node only once nginx serves without it,
      // and admit an added one at once (its health gate reaches the database before nginx may take it)
      const admitsApps = this.balancer !== undefined && (t.layer === "proxy" || cache !== undefined);
      const fw = new HostFirewall(`${name}-${t.layer}-${t.host.name}-firewall`, { host: t.host, ssh, table: t.table,
        after: t.layer === "db" ? [this.db.handOver] : cache ? [cache.handOver] : [],
        narrowAfter: admitsApps ? this.balancer!.serving : undefined }, child);
      if (admitsApps) admitted.push(fw.admitted!);
      if (t.layer === "app") appTables.set(t.host.name, fw.loaded);
    }
    firewallBuilt((node) => [...admitted, ...(appTables.has(node) ? [appTables.get(node)!] : [])]);
    this.registerOutputs({});
  }

  /** Stack outputs: what users and a second datacenter's stack (via StackReference) need. */
  exports(): Record<string, unknown> {
    const s = this.site;
    // the CA certificate is public; it is secret here only when it came from secret config
    const contract: pulumi.Output<SiteContract> = pulumi.all([this.db.members, pulumi.unsecret(this.caCertPem), this.proxy.vip, this.proxy.port,
      this.redis?.vip ?? pulumi.output(""), this.redis?.port ?? pulumi.output(0)]).apply(([members, ca, vip, port, rvip, rport]) => ({
      version: 1 as const, site: s.name, role: s.role, primarySite: s.primarySite, epoch: s.epoch, subnet: this.subnet,
      postgres: { clusterName: this.clusterName, members, leaderRule: LEADER_RULE, replicationUser: this.replicationUser },
      caCertPem: ca,
      vips: { db: { address: vip, port }, ...(rvip && rport ? { redis: { address: rvip, port: rport } } : {}) },
    }));
    const secrets: pulumi.Output<SiteSecrets> = pulumi.all([this.db.replicationPassword, this.db.superuserPassword, this.db.rewindPassword, this.db.appPassword])
      .apply(([replicationPassword, superuserPassword, rewindPassword, appPassword]) => ({ replicationPassword, superuserPassword, rewindPassword, appPassword }));
    return {
      // the contract peers read (stacks/contract.ts); `postgres` below is its short form for people
      ...siteOutputs(contract, secrets),
      ...(this.balancer ? { endpoint: this.balancer.endpoint } : {}),
      caCertPem: this.caCertPem,
      postgres: { members: this.db.members, leaderRule: LEADER_RULE },
      dbVip: this.proxy.vip,
      dbPort: this.proxy.port,
      dbConnectionString: this.proxy.connectionString,
      workspadNodes: this.apps.map((a) => pulumi.interpolate`${a.address}:${a.port}`),
      ...(this.redis ? {
        redis: { vip: this.redis.vip, port: this.redis.port, masterName: this.redis.masterName, sentinels: this.redis.sentinelAddresses },
        redisUser: this.redis.user,
        redisPassword: this.redis.password,
      } : {}),
      ...(this.redisGroups.length ? {
        redisGroups: Object.fromEntries(this.redisGroups.map((g) => [g.group,
          { vip: g.vip, port: g.port, masterName: g.masterName, sentinels: g.sentinelAddresses, user: g.user }])),
        redisGroupPasswords: pulumi.secret(pulumi.all(Object.fromEntries(this.redisGroups.map((g) => [g.group, g.password])))),
      } : {}),
    };
  }
}

/** The Redis hosts of the list form as one section for the VMmanager plan (a host in several groups is one VM). */
function redisVmSection(raw: unknown): unknown {
  if (!Array.isArray(raw)) return undefined;
  const byName = new Map<string, unknown>();
  for (const g of raw) for (const n of ((g as { nodes?: unknown })?.nodes as { name?: string }[] | undefined) ?? []) if (!byName.has(String(n?.name))) byName.set(String(n?.name), n);
  return { nodes: [...byName.values()] };
}

/**
 * The named groups of the list form: resources, units and passwords of their own (`<stack>-cache-<group>`), so adding
 * or removing one group leaves the others be. Also the end-to-end test's program (tests/e2e/redisGroups.test.ts).
 */
export function redisGroupComponents(name: string, groups: readonly ResolvedRedisSentinelGroupSettings[], ssh: SshAccess,
  passwords: unknown, opts: pulumi.ComponentResourceOptions): RedisSentinelGroup[] {
  return groups.map((g) => {
    const gpw = (kind: RedisGroupPasswordKind) => redisGroupPassword(g.group!, kind, passwords, name, opts);
    return new RedisSentinelGroup(`${name}-cache-${g.group}`, {
      settings: g, ssh, password: gpw("app"), sentinelPassword: gpw("sentinel"),
      keepalivedAuthPass: g.vip ? gpw("keepalived") : undefined, previousPassword: previousRedisPassword(passwords, g.group),
    }, opts);
  });
}
