// hastack:passwords and hastack:certificates are checked at preview: what each daemon would refuse
// fails with the config path, and never shows a password or key.
import { ConfigError } from "../../components/common/validate";
import { checkSuppliedCertificates, checkSuppliedPasswords } from "../../stacks/secretRules";
import { certFixtures, expiredNow } from "./certFixtures";

const NASTY = `jhYg/=\\F'"$`;

describe("hastack:passwords", () => {
  it("accepts passwords with every character naive quoting breaks on", () => {
    expect(() => checkSuppliedPasswords({ postgresApp: NASTY, redis: NASTY, postgresSuperuser: "a:b\\c", proxyKeepalived: "a#b!{c}$" })).not.toThrow();
    expect(() => checkSuppliedPasswords(undefined)).not.toThrow();
  });
  it.each(["postgresSuperuser", "postgresApp", "redis", "nginxKeepalived"])("fails if %s is empty", (name) => {
    expect(() => checkSuppliedPasswords({ [name]: "" })).toThrow(ConfigError);
    expect(() => checkSuppliedPasswords({ [name]: "" })).toThrow(
      `Invalid hastack:passwords.${name}: got "<secret of 0 characters>"; expected a non-empty password.`);
  });
  it("fails if a password spans lines or holds NUL, without showing it", () => {
    for (const pw of ["first\nsecond", "cr\r", "nul\0"]) {
      const msg = (() => { try { checkSuppliedPasswords({ redis: pw }); } catch (e) { return (e as Error).message; } return ""; })();
      expect(msg).toBe(`Invalid hastack:passwords.redis: got "<secret of ${pw.length} characters>"; expected a password on one line, without NUL, CR or LF.`);
      expect(msg).not.toContain(pw);
    }
  });
  it.each(["etcdRoot", "etcdPatroni"])("fails if %s holds a space or tab (etcdctl reads a password from stdin as one word)", (name) => {
    expect(() => checkSuppliedPasswords({ [name]: NASTY })).not.toThrow();
    for (const pw of ["two words", "tab\there"]) {
      expect(() => checkSuppliedPasswords({ [name]: pw })).toThrow(
        `Invalid hastack:passwords.${name}: got "<secret of ${pw.length} characters>"; expected a password without spaces or tabs (etcdctl reads it as one word).`);
    }
  });
  it("fails if a password is not a string", () => {
    expect(() => checkSuppliedPasswords({ redis: 12345678 })).toThrow(`Invalid hastack:passwords.redis: got "<number>"; expected a string.`);
  });
  it("fails if postgresApp is longer than PgBouncer 1.18 reads from its auth_file (2047 bytes)", () => {
    expect(() => checkSuppliedPasswords({ postgresApp: "p".repeat(2047) })).not.toThrow();
    expect(() => checkSuppliedPasswords({ postgresApp: "p".repeat(2048) })).toThrow(
      `Invalid hastack:passwords.postgresApp: got "<secret of 2048 characters>"; expected at most 2047 bytes (UTF-8), the longest password PgBouncer 1.18 reads from its auth_file.`);
    expect(() => checkSuppliedPasswords({ postgresApp: "я".repeat(1024) })).toThrow("expected at most 2047 bytes");
  });
  it("fails if postgresApp ends with a backslash (debconf joins the next line)", () => {
    expect(() => checkSuppliedPasswords({ postgresApp: "abc\\" })).toThrow(
      `Invalid hastack:passwords.postgresApp: got "<secret of 4 characters>"; expected a password that does not end with a backslash`);
  });
  it("fails if proxyKeepalived is more than keepalived's 8 characters or holds what it cannot quote", () => {
    for (const pw of ["123456789", 'ab"c', "ab\\c", "ab c"]) {
      expect(() => checkSuppliedPasswords({ proxyKeepalived: pw })).toThrow(
        `Invalid hastack:passwords.proxyKeepalived: got "<secret of ${pw.length} characters>"; expected 1..8 printable ASCII characters`);
    }
    // nginx and Redis hash their VRRP secret to 8 hex characters, so any length works there
    expect(() => checkSuppliedPasswords({ nginxKeepalived: "a long passphrase" })).not.toThrow();
  });
  it("fails if a password name is unknown (a typo would silently generate a new password)", () => {
    expect(() => checkSuppliedPasswords({ postgresapp: "x" })).toThrow(`Invalid hastack:passwords.postgresapp: got "<secret of 1 characters>"; expected no such password; known names are postgresSuperuser`);
  });
  it("fails if hastack:passwords is not an object", () => {
    expect(() => checkSuppliedPasswords("hunter2")).toThrow(`Invalid hastack:passwords: got "<secret of 7 characters>"; expected an object of passwords by name`);
  });
});

describe("hastack:certificates", () => {
  const c = certFixtures();
  const HOSTS = ["wp1", "wp2", "ngx1"];
  const check = (v: unknown, now?: Date) => () => checkSuppliedCertificates(v, HOSTS, now);

  it("accepts a CA with its key, a server certificate it issued and a data-protection pair", () => {
    expect(check({ caCertPem: c.caCertPem, caKeyPem: c.caKeyPem, servers: { wp1: { certPem: c.serverCertPem, keyPem: c.serverKeyPem } },
      dataProtection: { certPem: c.leafCertPem, keyPem: c.leafKeyPem } })).not.toThrow();
  });
  it("fails if caCertPem does not parse", () => {
    expect(check({ caCertPem: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n" })).toThrow(
      `Invalid hastack:certificates.caCertPem: got "<56 characters, not shown>"; expected a PEM X.509 certificate (-----BEGIN CERTIFICATE-----).`);
  });
  it("fails if caCertPem is not a CA", () => {
    expect(check({ caCertPem: c.leafCertPem })).toThrow("Invalid hastack:certificates.caCertPem: got \"<");
    expect(check({ caCertPem: c.leafCertPem })).toThrow("expected a CA certificate (basicConstraints CA:TRUE); CN=not a CA is not one.");
  });
  it("fails if caKeyPem is not the CA's key, without showing it", () => {
    expect(check({ caCertPem: c.caCertPem, caKeyPem: c.otherKeyPem })).toThrow(
      `Invalid hastack:certificates.caKeyPem: got "<a private key, not shown>"; expected the private key of hastack:certificates.caCertPem (CN=test CA).`);
  });
  it("fails if caKeyPem is given without caCertPem", () => {
    expect(check({ caKeyPem: c.caKeyPem })).toThrow("expected nothing unless hastack:certificates.caCertPem is given too");
  });
  it("fails if caKeyPem does not parse", () => {
    expect(check({ caCertPem: c.caCertPem, caKeyPem: "not a key" })).toThrow("Invalid hastack:certificates.caKeyPem: got \"<9 characters, not shown>\"; expected an unencrypted PEM private key");
  });
  it("fails if a server key does not match its certificate", () => {
    expect(check({ servers: { wp1: { certPem: c.serverCertPem, keyPem: c.otherKeyPem } } })).toThrow(
      "Invalid hastack:certificates.servers.wp1.keyPem: got \"<a private key, not shown>\"; expected the private key of hastack:certificates.servers.wp1.certPem (CN=wp1).");
  });
  it("fails if a server certificate was not issued by the supplied CA", () => {
    expect(check({ caCertPem: c.caCertPem, servers: { ngx1: { certPem: c.leafCertPem, keyPem: c.leafKeyPem } } })).toThrow(
      "Invalid hastack:certificates.servers.ngx1.certPem: got \"<");
    expect(check({ caCertPem: c.caCertPem, servers: { ngx1: { certPem: c.leafCertPem, keyPem: c.leafKeyPem } } })).toThrow(
      "expected a certificate issued by a CA nginx and the WorksPad nodes trust (hastack:certificates.caCertPem or extraTrustedCaPem: CN=test CA); this one is CN=not a CA, issued by CN=not a CA.");
  });
  it("fails if a server certificate does not parse", () => {
    expect(check({ servers: { wp2: { certPem: "garbage", keyPem: c.serverKeyPem } } })).toThrow(
      `Invalid hastack:certificates.servers.wp2.certPem: got "<7 characters, not shown>"; expected a PEM X.509 certificate`);
  });
  it("fails if a server certificate names a host that serves no TLS (a typo)", () => {
    expect(check({ servers: { wp9: { certPem: c.serverCertPem, keyPem: c.serverKeyPem } } })).toThrow(
      "Invalid hastack:certificates.servers.wp9: got \"<object>\"; expected the name of a host that serves TLS (hastack:workspad or hastack:nginx nodes: wp1, wp2, ngx1).");
  });
  it("fails if a certificate has expired", () => {
    expect(check({ dataProtection: { certPem: c.expiredCertPem, keyPem: c.expiredKeyPem } }, expiredNow())).toThrow(
      "Invalid hastack:certificates.dataProtection.certPem: got \"<");
    expect(check({ dataProtection: { certPem: c.expiredCertPem, keyPem: c.expiredKeyPem } }, expiredNow())).toThrow("expected a certificate valid now (this one, CN=expired, is valid from");
  });
  it("fails if the data-protection key does not match", () => {
    expect(check({ dataProtection: { certPem: c.leafCertPem, keyPem: c.serverKeyPem } })).toThrow("Invalid hastack:certificates.dataProtection.keyPem");
  });
  it("fails if an unknown key is given", () => {
    expect(check({ caCert: c.caCertPem })).toThrow("Invalid hastack:certificates.caCert: got \"<");
    expect(check({ dataProtection: { cert: c.leafCertPem, keyPem: c.leafKeyPem } })).toThrow("Invalid hastack:certificates.dataProtection.cert: got");
  });
});

// README "Rotating the CA": trust the new CA too, re-issue from it, drop the old one
describe("hastack:certificates.extraTrustedCaPem (CA rotation)", () => {
  const c = certFixtures();
  const HOSTS = ["wp1", "wp2", "ngx1"];
  const check = (v: unknown, now?: Date) => () => checkSuppliedCertificates(v, HOSTS, now);
  const oldPair = { certPem: c.serverCertPem, keyPem: c.serverKeyPem };
  const newPair = { certPem: c.server2CertPem, keyPem: c.server2KeyPem };

  it("accepts each of the three steps: old CA issuing and the new trusted; new CA issuing and the old trusted; new alone", () => {
    expect(check({ caCertPem: c.caCertPem, extraTrustedCaPem: c.ca2CertPem, servers: { wp1: oldPair } })).not.toThrow();
    expect(check({ caCertPem: c.ca2CertPem, extraTrustedCaPem: c.caCertPem, servers: { wp1: newPair } })).not.toThrow();
    expect(check({ caCertPem: c.ca2CertPem, servers: { wp1: newPair } })).not.toThrow();
  });
  it("accepts a server certificate issued by a CA that is only in extraTrustedCaPem, and several CAs in one PEM", () => {
    expect(check({ caCertPem: c.ca2CertPem, extraTrustedCaPem: c.caCertPem, servers: { wp1: oldPair } })).not.toThrow();
    expect(check({ caCertPem: c.ca2CertPem, extraTrustedCaPem: c.caCertPem + c.ca2CertPem, servers: { wp1: oldPair } })).not.toThrow();
  });
  it("fails if a server certificate was issued by no trusted CA (the old CA dropped too early), naming every trusted CA", () => {
    expect(check({ caCertPem: c.ca2CertPem, servers: { wp1: oldPair } })).toThrow(
      "Invalid hastack:certificates.servers.wp1.certPem: got \"<");
    expect(check({ caCertPem: c.ca2CertPem, servers: { wp1: oldPair } })).toThrow(
      "expected a certificate issued by a CA nginx and the WorksPad nodes trust (hastack:certificates.caCertPem or extraTrustedCaPem: CN=test CA 2); this one is CN=wp1, issued by CN=test CA.");
  });
  it("fails if extraTrustedCaPem holds something else than certificates", () => {
    expect(check({ caCertPem: c.caCertPem, extraTrustedCaPem: `${c.ca2CertPem}junk` })).toThrow(
      "Invalid hastack:certificates.extraTrustedCaPem: got \"<");
    expect(check({ caCertPem: c.caCertPem, extraTrustedCaPem: c.ca2KeyPem })).toThrow(
      "expected one or more PEM CA certificates (-----BEGIN CERTIFICATE----- blocks and nothing else).");
    expect(check({ caCertPem: c.caCertPem, extraTrustedCaPem: 42 })).toThrow("Invalid hastack:certificates.extraTrustedCaPem: got \"<number>\"");
  });
  it("fails if a certificate in extraTrustedCaPem is not a CA, naming which one", () => {
    expect(check({ caCertPem: c.caCertPem, extraTrustedCaPem: c.ca2CertPem + c.leafCertPem })).toThrow(
      "expected CA certificates only (basicConstraints CA:TRUE); CN=not a CA (certificate 2 of 2) is not one.");
  });
  it("fails if a certificate in extraTrustedCaPem does not parse", () => {
    expect(check({ caCertPem: c.caCertPem, extraTrustedCaPem: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n" })).toThrow(
      "expected a PEM X.509 certificate.");
  });
});
