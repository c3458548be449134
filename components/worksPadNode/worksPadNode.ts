import { CertPair } from "../common/tls";
import * as fs from "fs";
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import {
  HostSpec, SshAccess, connectionFor, contentHash, installPackages, putFile, restartOnChange, runScript, serviceEnabled, shq, waitFor,
} from "../common";
import { ResolvedWorksPadNodeSettings } from "./args";
import { renderTrustCheck } from "../common/tls";
import {
  MICROSOFT_KEY_PATH, MICROSOFT_SOURCE_PATH, PACKAGE_CACHE_DIR, REMOTE_DEB, TOOL_PACKAGES, VALIDATE_CERT, VALIDATE_KEY,
  renderConnectionString, renderDebconfSelections, renderHealthProbe, renderInstallScript, renderMicrosoftSource,
  renderPreseedScript, renderRestartScript, renderSetConnectionStringScript,
} from "./render";

/** A PEM certificate and its private key (the key is secret). */
export type CertAndKey = CertPair;

export interface WorksPadNodeArgs {
  /** Resolved `hastack:workspad` settings (resolveWorksPadNodeSettings). */
  readonly settings: ResolvedWorksPadNodeSettings;
  /** Which entry of `settings.nodes` this component manages (one component per node). */
  readonly nodeName: string;
  /** SSH access to the node. */
  readonly ssh: SshAccess;
  /** Database host the server connects to: the PgBouncer VIP. */
  readonly dbHost: pulumi.Input<string>;
  /** Database port: the PgBouncer port. */
  readonly dbPort: pulumi.Input<number>;
  /** Application database name. */
  readonly database: pulumi.Input<string>;
  /** Application database role. */
  readonly dbUser: pulumi.Input<string>;
  /** Application role's password (secret); reaches the host only over stdin. */
  readonly dbPassword: pulumi.Input<string>;
  /** HTTPS certificate and key per node name; this node's entry is required. */
  readonly tls: Readonly<Record<string, CertAndKey>>;
  /** The data-protection certificate and key, the same on every node so sessions survive a node change. */
  readonly dataProtection: CertAndKey;
  /** CA certificate(s), one or more in one PEM, added to the node's system trust store (the stack's trusted CAs). @default none */
  readonly caCertPem?: pulumi.Input<string>;
  /**
   * Steps that must be done before this node's TLS certificate changes: everything that verifies it (nginx's and the
   * other nodes' trust) has taken the new CA bundle by then. May resolve later (a promise), as those are built after
   * this node. @default none
   */
  readonly trustFirst?: Promise<pulumi.Resource[]>;
  /**
   * The services start (enable, restart, health gate) only once these are done: the firewall tables of the hosts the
   * node reaches (PgBouncer, Redis) admit it, and its own guards its port. May resolve later (a promise), as the tables
   * are built after the nodes. The delete runs in reverse: the node stops before its own table goes. @default none
   */
  readonly startAfter?: Promise<pulumi.Resource[]>;
  /** The restart waits for these (the previous node's `healthGate`), so the nodes restart one at a time. @default none */
  readonly restartAfter?: pulumi.Resource[];
  /**
   * Seconds the health gate holds after the node answers again: the balancer's passive check (nginx `fail_timeout`)
   * skips a node it saw fail for that long, so the next node may go down only once this one is taken again. @default 0
   */
  readonly settleSeconds?: number;
}

const CA_TRUST_PATH = "/usr/local/share/ca-certificates/hastack-ca.crt";

export interface SystemTrustArgs {
  readonly connection: command.types.input.remote.ConnectionArgs;
  /** The CA bundle. */
  readonly bundle: pulumi.Input<string>;
  /** Shell printing the certificates this host serves now (renderTrustCheck's `served`). */
  readonly served: string;
  /** @default the Debian trust store: CA_TRUST_PATH and update-ca-certificates (tests point both elsewhere) */
  readonly path?: string;
  readonly update?: string;
}

/**
 * The stack's CAs in the system trust store: the bundle file (refused while a certificate served here would lose its
 * trust), then the store rebuilt whenever the bundle changes. The rebuild step is replaced on a change; its delete
 * (remove the file, rebuild) acts on destroy only, not after its replacement's create (runScript's generation guard).
 */
export function systemTrust(name: string, args: SystemTrustArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
  const path = args.path ?? CA_TRUST_PATH;
  const update = args.update ?? "update-ca-certificates >/dev/null";
  const file = putFile(`${name}-ca-cert`, {
    connection: args.connection, path, content: args.bundle, validate: renderTrustCheck(args.served, "hastack:certificates (caCertPem and extraTrustedCaPem)"),
  }, opts);
  return runScript(`${name}-ca-trust`, {
    connection: args.connection, create: update, triggers: [contentHash(args.bundle)],
    delete: `rm -f ${shq(path)}; ${update} 2>&1 || true`,
  }, { ...opts, dependsOn: [file] });
}

/**
 * One WorksPad application node: prerequisites, the vendor .deb with preseeded installer answers,
 * the appsettings connection string, TLS and data-protection certificates, service restart on change
 * and a health gate. Destroy stops and disables the services and removes the certificate files;
 * the package, appsettings.json and all data stay on the host.
 */
export class WorksPadNode extends pulumi.ComponentResource {
  /** Node address; resolves after the health gate passed. */
  public readonly address: pulumi.Output<string>;
  /** HTTPS port of the server. */
  public readonly port: pulumi.Output<number>;
  /** Node name. */
  public readonly name: pulumi.Output<string>;
  /** Passes after every restart once the node serves again (and settleSeconds passed): the next node's `restartAfter`. */
  public readonly healthGate: pulumi.Resource;
  /** The step after which the node's trust store holds the current CA bundle (none without a CA). */
  public readonly trustApplied?: pulumi.Resource;

  constructor(name: string, args: WorksPadNodeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:app:WorksPadNode", name, {}, opts);
    const s = args.settings;
    const node: HostSpec | undefined = s.nodes.find((n) => n.name === args.nodeName);
    if (!node) throw new Error(`WorksPadNode ${name}: nodeName ${JSON.stringify(args.nodeName)} is not one of hastack:workspad.nodes (${s.nodes.map((n) => n.name).join(", ")}).`);
    const tls = args.tls[node.name];
    if (!tls) throw new Error(`WorksPadNode ${name}: no TLS certificate given for node ${JSON.stringify(node.name)}.`);

    const conn = connectionFor(node, args.ssh);
    const p = `${name}-${node.name}`;
    const child = (dependsOn: pulumi.Resource[] = []): pulumi.CustomResourceOptions => ({ parent: this, dependsOn });

    // hashed at preview: a new vendor build re-copies and reinstalls, the same file never does
    const debHash = crypto.createHash("sha256").update(fs.readFileSync(s.packagePath)).digest("hex");
    const remoteDeb = REMOTE_DEB;

    const db = pulumi.all([args.dbHost, args.dbPort, args.database, args.dbUser, pulumi.secret(args.dbPassword)])
      .apply(([host, port, database, user, password]) => ({ host, port, database, user, password }));
    const connectionString = pulumi.secret(db.apply(renderConnectionString));
    const selections = pulumi.secret(db.apply((d) => renderDebconfSelections(s.packageName, s.debconfQuestions, d)));

    // 1. apt repository (optional) and prerequisites
    const repo: pulumi.Resource[] = [];
    if (s.microsoftRepo) {
      const key = putFile(`${p}-msrepo-key`, { connection: conn, path: MICROSOFT_KEY_PATH, content: s.microsoftRepoKey }, child());
      repo.push(key, putFile(`${p}-msrepo-source`, {
        connection: conn, path: MICROSOFT_SOURCE_PATH, content: renderMicrosoftSource(s.microsoftRepoSource),
      }, child([key])));
    }
    const packages = [...new Set([...s.prerequisites, ...TOOL_PACKAGES])];
    const prereqs = installPackages(`${p}-prereqs`, conn, packages, child(repo));

    // 2. copy the .deb
    const cacheDir = runScript(`${p}-package-dir`, {
      connection: conn, create: `mkdir -p ${shq(PACKAGE_CACHE_DIR)} && chmod 0755 ${shq(PACKAGE_CACHE_DIR)}`,
    }, child([prereqs]));
    const copy = new command.remote.CopyToRemote(`${p}-package-copy`, {
      connection: conn, source: new pulumi.asset.FileAsset(s.packagePath), remotePath: remoteDeb, triggers: [debHash],
    }, child([cacheDir]));

    // 3. preseed the installer's answers (password over stdin only), 4. install
    const preseed = runScript(`${p}-preseed`, {
      connection: conn, create: renderPreseedScript(), stdin: selections, quiet: true,
    }, child([copy]));
    const install = runScript(`${p}-package-install`, {
      connection: conn, create: renderInstallScript(remoteDeb, s.packageName), triggers: [debHash],
    }, child([copy, preseed]));

    // 5. connection string into appsettings.json (again after every reinstall)
    const appSettings = runScript(`${p}-appsettings`, {
      connection: conn, create: renderSetConnectionStringScript(s.appSettingsPath), stdin: connectionString, quiet: true,
      triggers: [debHash],
    }, child([install]));

    // 6. certificates
    const certs = `${s.installDir}/certs`;
    const files: pulumi.Resource[] = [appSettings];
    // the trust store first: its bundle is checked against the certificate this node serves now, before that changes
    const hashes: pulumi.Input<string>[] = [debHash, contentHash(connectionString), contentHash(tls.certPem), contentHash(tls.keyPem),
      contentHash(args.dataProtection.certPem), contentHash(args.dataProtection.keyPem)];
    if (args.caCertPem !== undefined) {
      this.trustApplied = systemTrust(p, {
        connection: conn, bundle: args.caCertPem, served: `printf '%s\n%s\n' 'this WorksPad node' ${shq(`${certs}/tls.crt`)}`,
      }, child([prereqs]));
      files.push(this.trustApplied);
      hashes.push(contentHash(args.caCertPem));
    }
    // the TLS pair changes only once every verifier trusts the CA bundle in force (trustFirst) and this node does too
    const trusted = (args.trustFirst ?? Promise.resolve([])).then((t) => [install, ...(this.trustApplied ? [this.trustApplied] : []), ...t]);
    const pem = (step: string, file: string, content: pulumi.Input<string>, secret: boolean, after: pulumi.CustomResourceOptions["dependsOn"]) => {
      files.push(putFile(`${p}-${step}`, {
        connection: conn, path: `${certs}/${file}`, content, secret, mode: secret ? "0600" : "0644",
        validate: secret ? VALIDATE_KEY : VALIDATE_CERT,
      }, { parent: this, dependsOn: after }));
    };
    pem("tls-cert", "tls.crt", tls.certPem, false, trusted);
    pem("tls-key", "tls.key", pulumi.secret(tls.keyPem), true, trusted);
    pem("dp-cert", "dataprotection.crt", args.dataProtection.certPem, false, [install]);
    pem("dp-key", "dataprotection.key", pulumi.secret(args.dataProtection.keyPem), true, [install]);

    // 7. enable, 8. restart when any input changed, 9. health gate after every restart
    // a node the stack adds is admitted by the PgBouncer and Redis hosts before it starts (README "Scaling the app tier out and in")
    const reachable = (args.startAfter ?? Promise.resolve([])).then((t) => [...files, ...t]);
    const enabled = s.services.map((u) => serviceEnabled(`${p}-enable-${u}`, conn, u, { parent: this, dependsOn: reachable }));
    // rolling: this node restarts only after the previous node passed its gate (components/common/rolling.ts)
    const restart = restartOnChange(`${p}-restart`, conn, renderRestartScript(s.services), hashes, child([...enabled, ...(args.restartAfter ?? [])]));
    const health = waitFor(`${p}-health`, conn, renderHealthProbe(s.port, s.healthPath), s.healthTimeoutSeconds, child([restart]), hashes);
    const settle = args.settleSeconds ?? 0;
    this.healthGate = settle > 0
      ? runScript(`${p}-settle`, { connection: conn, create: `sleep ${Math.ceil(settle)}`, triggers: hashes }, child([health]))
      : health;

    this.address = health.stdout.apply(() => node.address);
    this.port = pulumi.output(s.port);
    this.name = pulumi.output(node.name);
    this.registerOutputs({ address: this.address, port: this.port, name: this.name });
  }
}
