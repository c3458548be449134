import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { CertPair } from "../components/common";
import { trustBundle } from "./trustBundle";

/** Certificates a stack may supply under `hastack:certificates` (a secret object). */
export interface SuppliedCertificates {
  readonly caCertPem?: string;
  readonly caKeyPem?: string;
  /** CA certificates trusted besides caCertPem while a rotation is under way (README "Rotating the CA"). */
  readonly extraTrustedCaPem?: string;
  readonly servers?: Readonly<Record<string, { certPem: string; keyPem: string }>>;
  readonly dataProtection?: { certPem: string; keyPem: string };
}

/**
 * The stack PKI: a CA (generated unless supplied) that signs one server certificate per host,
 * and one data-protection certificate shared by all WorksPad nodes. Supplied certificates
 * (corporate CA, vault-issued) always win; tls resources are created only for what is missing.
 */
export class StackPki {
  readonly caCertPem: pulumi.Output<string>;
  /** Every CA the stack's TLS clients trust (caCertPem and extraTrustedCaPem) as one bundle; "" when there is none. */
  readonly trustedCaPem: pulumi.Output<string>;
  private readonly caKeyPem?: pulumi.Output<string>;

  constructor(private readonly prefix: string, private readonly supplied: SuppliedCertificates,
    serverHosts: readonly string[], private readonly opts: pulumi.CustomResourceOptions) {
    // a CA is generated only when some host has no supplied certificate
    const needsCa = serverHosts.some((h) => !supplied.servers?.[h]);
    if (supplied.caCertPem) {
      this.caCertPem = pulumi.output(supplied.caCertPem);
      this.caKeyPem = supplied.caKeyPem ? pulumi.secret(supplied.caKeyPem) : undefined;
    } else if (needsCa) {
      const key = new tls.PrivateKey(`${prefix}-ca-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, opts);
      const cert = new tls.SelfSignedCert(`${prefix}-ca`, {
        privateKeyPem: key.privateKeyPem,
        isCaCertificate: true,
        validityPeriodHours: 24 * 365 * 10,
        allowedUses: ["cert_signing", "crl_signing"],
        subject: { commonName: `${prefix} stack CA`, organization: "hastack" },
      }, opts);
      this.caCertPem = cert.certPem;
      this.caKeyPem = pulumi.secret(key.privateKeyPem);
    } else {
      this.caCertPem = pulumi.output("");
    }
    this.trustedCaPem = this.caCertPem.apply((ca) => trustBundle(ca, supplied.extraTrustedCaPem));
  }

  /** Server certificate for a host: supplied under certificates.servers.<name>, else signed by the CA. */
  server(hostName: string, address: string, extraDnsNames: readonly string[] = []): CertPair {
    const s = this.supplied.servers?.[hostName];
    if (s) return { certPem: s.certPem, keyPem: pulumi.secret(s.keyPem) };
    if (!this.caKeyPem) {
      throw new Error(`Invalid hastack:certificates.servers.${hostName}: got nothing; expected a {certPem, keyPem} pair, because hastack:certificates.caCertPem is supplied without caKeyPem, so no certificate can be signed for ${hostName}.`);
    }
    const key = new tls.PrivateKey(`${this.prefix}-${hostName}-tls-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, this.opts);
    const csr = new tls.CertRequest(`${this.prefix}-${hostName}-tls-csr`, {
      privateKeyPem: key.privateKeyPem,
      subject: { commonName: hostName, organization: "hastack" },
      ipAddresses: [address],
      dnsNames: [hostName, ...extraDnsNames],
    }, this.opts);
    const cert = new tls.LocallySignedCert(`${this.prefix}-${hostName}-tls`, {
      certRequestPem: csr.certRequestPem,
      caCertPem: this.caCertPem,
      caPrivateKeyPem: this.caKeyPem,
      validityPeriodHours: 24 * 365 * 2,
      allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
    }, this.opts);
    return { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) };
  }

  /**
   * A pgBackRest host's certificate (hastack:backup): server and client at once (its TLS is mutual), CN = host name
   * (what tls-server-auth names), and the address also as a DNS name, since pgBackRest 2.45 matches the host it
   * dials against CN and DNS names only, never IP SANs (tests/daemons/pgBackRest.test.ts). Supplied under
   * certificates.servers.<name>-pgbackrest, else signed by the CA.
   */
  peer(hostName: string, address: string): CertPair {
    const s = this.supplied.servers?.[`${hostName}-pgbackrest`];
    if (s) return { certPem: s.certPem, keyPem: pulumi.secret(s.keyPem) };
    if (!this.caKeyPem) {
      throw new Error(`Invalid hastack:certificates.servers.${hostName}-pgbackrest: got nothing; expected a {certPem, keyPem} pair, because hastack:certificates.caCertPem is supplied without caKeyPem, so no certificate can be signed for ${hostName}'s pgBackRest.`);
    }
    const n = `${this.prefix}-${hostName}-pgbackrest-tls`;
    const key = new tls.PrivateKey(`${n}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, this.opts);
    const csr = new tls.CertRequest(`${n}-csr`, {
      privateKeyPem: key.privateKeyPem,
      subject: { commonName: hostName, organization: "hastack" },
      ipAddresses: [address],
      dnsNames: [hostName, address],
    }, this.opts);
    const cert = new tls.LocallySignedCert(n, {
      certRequestPem: csr.certRequestPem,
      caCertPem: this.caCertPem,
      caPrivateKeyPem: this.caKeyPem,
      validityPeriodHours: 24 * 365 * 2,
      allowedUses: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
    }, this.opts);
    return { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) };
  }

  /** The one data-protection certificate every WorksPad node shares (keys protecting cookies/tokens). */
  dataProtection(): CertPair {
    const s = this.supplied.dataProtection;
    if (s) return { certPem: s.certPem, keyPem: pulumi.secret(s.keyPem) };
    const key = new tls.PrivateKey(`${this.prefix}-dataprotection-key`, { algorithm: "RSA", rsaBits: 2048 }, this.opts);
    const cert = new tls.SelfSignedCert(`${this.prefix}-dataprotection`, {
      privateKeyPem: key.privateKeyPem,
      validityPeriodHours: 24 * 365 * 10,
      allowedUses: ["digital_signature", "key_encipherment", "data_encipherment"],
      subject: { commonName: "WorksPad data protection", organization: "hastack" },
    }, this.opts);
    return { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) };
  }
}
