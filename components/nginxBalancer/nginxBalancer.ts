import { authRotationSteps, keepalivedValidateCommand } from "../keepalived";
import { CertPair, renderTrustCheck } from "../common/tls";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { HostSpec, SshAccess, connectionFor } from "../common/host";
import { contentHash } from "../common/hash";
import { installPackages, putFile, restartOnChange, runScript, serviceEnabled, waitFor } from "../common/remote";
import { invalid } from "../common/validate";
import { ResolvedNginxBalancerSettings, checkUpstreams } from "./args";
import {
  NGINX_PATHS, TRUST_RELOAD, Upstream, healthProbe, renderBalancerCheck, renderBalancerKeepalived, renderServedUpstreamCerts, renderSite, renderSiteCheck,
} from "./render";

/** A WorksPad node as another component reports it. */
export interface NginxUpstreamInput {
  readonly name: pulumi.Input<string>;
  readonly address: pulumi.Input<string>;
  readonly port: pulumi.Input<number>;
}

/** Server certificate and key of one balancer node (the key is secret). */
export type NginxNodeTls = CertPair;

export interface NginxBalancerArgs {
  /** Output of resolveNginxBalancerSettings. */
  readonly settings: ResolvedNginxBalancerSettings;
  readonly ssh: SshAccess;
  /** The WorksPad nodes (HTTPS, usually port 4430). */
  readonly upstreams: pulumi.Input<pulumi.Input<NginxUpstreamInput>[]>;
  /** Server certificate per balancer node, keyed by node name. */
  readonly tls: Readonly<Record<string, NginxNodeTls>>;
  /**
   * CA(s) of the WorksPad certificates, one or more in one PEM: when given, nginx verifies the upstreams with them;
   * passed through as an output. Several while a CA rotation is under way (README "Rotating the CA").
   */
  readonly caCertPem?: pulumi.Input<string>;
  /**
   * The upstreams' addresses as known from settings (no wait for their health): a new CA bundle is refused while one of
   * them serves a certificate it would not trust. @default none (nothing checked)
   */
  readonly upstreamTargets?: readonly { address: string; port: number }[];
  /** VRRP shared secret; required with 2 nodes. */
  readonly keepalivedAuthPass?: pulumi.Input<string>;
}

/** nginx HTTPS balancer (ip_hash, passive health checks, websockets), optionally two nodes behind a keepalived VIP. */
export class NginxBalancer extends pulumi.ComponentResource {
  /** `https://<vip or node address>:<port>`, known once every node answers HTTPS. */
  public readonly endpoint: pulumi.Output<string>;
  /** The upstream CA as given (undefined when none). */
  public readonly caCertPem: pulumi.Output<string | undefined>;
  /**
   * Per node, the step after which nginx runs with the current CA bundle. It waits for nothing upstream, so the WorksPad
   * nodes can wait for it before they change certificates: trust is widened before any certificate changes.
   */
  public readonly trustApplied: pulumi.Resource[] = [];
  /**
   * Per node, the step after which nginx serves with the current upstream list (reloaded and answering): nothing sends
   * a removed WorksPad node new requests after these, so what cuts it off (other hosts' firewall tables) waits for them.
   */
  public readonly serving: pulumi.Resource[] = [];

  constructor(name: string, args: NginxBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:edge:NginxBalancer", name, {}, opts);
    const s = args.settings;
    for (const n of s.nodes) {
      if (!args.tls[n.name]) invalid(`tls.${n.name}`, undefined, `a {certPem, keyPem} for balancer node ${n.name}`);
    }
    if (s.vip && args.keepalivedAuthPass === undefined) invalid("keepalivedAuthPass", undefined, "a secret when the balancer has a vip");

    const upstreams = pulumi.output(args.upstreams).apply((list) => {
      checkUpstreams(list);
      return list as Upstream[];
    });
    const files = { cert: NGINX_PATHS.cert, key: NGINX_PATHS.key, upstreamCa: args.caCertPem ? NGINX_PATHS.upstreamCa : undefined };
    const site = upstreams.apply((u) => renderSite(s, u, files));

    const healthy: command.remote.Command[] = [];
    const deployed = s.nodes.map((host) => {
      const r = this.deployNode(name, host, args, site);
      healthy.push(r.health);
      this.serving.push(r.health);
      if (r.trust) this.trustApplied.push(r.trust);
      return r;
    });

    if (s.vip) {
      const keepalivedSteps = this.deployKeepalived(name, args, deployed);
      healthy.push(waitFor(`${name}-vip-health`, connectionFor(s.nodes[0], args.ssh), `curl -sk -o /dev/null --max-time 3 https://${s.vip}:${s.listenPort}/`,
        120, { parent: this, dependsOn: [...healthy, ...keepalivedSteps] }));
    }

    const url = `https://${s.vip ?? s.nodes[0].address}:${s.listenPort}`;
    this.endpoint = pulumi.all(healthy.map((h) => h.stdout)).apply(() => url);
    this.caCertPem = pulumi.output(args.caCertPem);
    this.registerOutputs({ endpoint: this.endpoint, caCertPem: this.caCertPem });
  }

  /** copy certs → copy+validate+swap site → enable site → nginx → reload on hash → health (→ the VIP's check). */
  private deployNode(name: string, host: HostSpec, args: NginxBalancerArgs, site: pulumi.Output<string>) {
    const s = args.settings;
    const conn = connectionFor(host, args.ssh);
    const p = `${name}-${host.name}`;
    const tls = args.tls[host.name];
    const after = (...deps: pulumi.Resource[]): pulumi.CustomResourceOptions => ({ parent: this, dependsOn: deps });

    const packages = installPackages(`${p}-packages`, conn, ["nginx", "curl", "openssl", ...(s.vip ? ["keepalived"] : [])], after());
    const cert = putFile(`${p}-cert`, {
      connection: conn, path: NGINX_PATHS.cert, content: tls.certPem,
      validate: `openssl x509 -in "$NEW" -noout`,
    }, after(packages));
    // the key must parse and belong to the certificate just written
    const key = putFile(`${p}-key`, {
      connection: conn, path: NGINX_PATHS.key, content: pulumi.secret(tls.keyPem), secret: true,
      validate: `[ "$(openssl pkey -in "$NEW" -pubout)" = "$(openssl x509 -in ${NGINX_PATHS.cert} -noout -pubkey)" ]`,
    }, after(cert));
    // a bundle that would not trust what an upstream serves now is refused before it replaces the old one
    const ca = args.caCertPem === undefined ? undefined : putFile(`${p}-ca`, {
      connection: conn, path: NGINX_PATHS.upstreamCa, content: args.caCertPem,
      validate: renderTrustCheck(renderServedUpstreamCerts(args.upstreamTargets ?? [], s.upstreamTlsName),
        "hastack:certificates (caCertPem and extraTrustedCaPem)"),
    }, after(key));
    // the new bundle in force at once, not only at the reload after the upstreams' health (those may be the very
    // nodes about to serve certificates only the new bundle trusts)
    const trust = ca === undefined ? undefined
      : restartOnChange(`${p}-trust-reload`, conn, TRUST_RELOAD, [contentHash(args.caCertPem!)], after(ca));
    const siteFile = putFile(`${p}-site`, {
      connection: conn, path: NGINX_PATHS.site, content: site, validate: renderSiteCheck(),
    }, after(trust ?? key));
    const enable = runScript(`${p}-enable-site`, {
      connection: conn,
      create: [
        `ln -sfn ${NGINX_PATHS.site} ${NGINX_PATHS.siteLink}`,
        // the packaged default site also claims port 80 as default_server
        `rm -f ${NGINX_PATHS.defaultSiteLink}`,
        "nginx -t",
      ].join("\n"),
      delete: `rm -f ${NGINX_PATHS.siteLink}; nginx -t >/dev/null 2>&1 && systemctl reload nginx || true`,
    }, after(siteFile));
    const service = serviceEnabled(`${p}-nginx`, conn, "nginx", after(enable));
    const hashes = [contentHash(site), contentHash(tls.certPem), contentHash(pulumi.secret(tls.keyPem)),
      contentHash(args.caCertPem ?? "")];
    const reload = restartOnChange(`${p}-reload`, conn, "nginx -t && systemctl reload nginx", hashes, after(service));
    const health = waitFor(`${p}-health`, conn, healthProbe(s.listenPort), 60, after(reload), hashes);

    const check = s.vip === undefined ? undefined : putFile(`${p}-keepalived-check`, {
      connection: conn, path: NGINX_PATHS.keepalivedCheck, mode: "0700", validate: `sh -n "$NEW"`,
      content: renderBalancerCheck({ listenPort: s.listenPort, serverName: s.serverName, path: s.checkPath, timeoutSeconds: s.checkTimeoutSeconds }),
    }, after(health));
    return { host, conn, health, trust, check };
  }

  /**
   * keepalived on both nodes, once both serve and have their check. VRRPv2 adverts carry auth_pass: a changed one
   * stops the backup before either file changes and starts it once the holder reloaded on it
   * (components/keepalived/authRotationSteps.ts), so the VIP is never on two nodes; no-ops otherwise (and with VRRPv3).
   */
  private deployKeepalived(name: string, args: NginxBalancerArgs,
    nodes: { host: HostSpec; conn: command.types.input.remote.ConnectionArgs; check?: command.remote.Command }[]): command.remote.Command[] {
    const s = args.settings;
    const after = (...deps: pulumi.Resource[]): pulumi.CustomResourceOptions => ({ parent: this, dependsOn: deps });
    const confs = nodes.map((_, index) => pulumi.all([args.keepalivedAuthPass!]).apply(([pw]) => renderBalancerKeepalived(s, index, pw)));
    const checks = nodes.map((x) => x.check!);
    const { enabled, resumed } = authRotationSteps({
      nodes: nodes.map((x, i) => ({ prefix: `${name}-${x.host.name}`, connection: x.conn, conf: pulumi.secret(confs[i]), after: checks })),
      params: { unit: "keepalived", confPath: NGINX_PATHS.keepalived, vip: s.vip! }, parent: this,
    }, (i, quiesced) => {
      const p = `${name}-${nodes[i].host.name}`;
      const kaFile = putFile(`${p}-keepalived-conf`, {
        connection: nodes[i].conn, path: NGINX_PATHS.keepalived, content: pulumi.secret(confs[i]), secret: true,
        validate: keepalivedValidateCommand(),
      }, after(checks[i], ...quiesced));
      return serviceEnabled(`${p}-keepalived`, nodes[i].conn, "keepalived", after(kaFile));
    });
    return nodes.map((x, i) => restartOnChange(`${name}-${x.host.name}-keepalived-reload`, x.conn, "systemctl reload keepalived",
      [contentHash(pulumi.secret(confs[i]))], after(enabled[i], resumed[i])));
  }
}
