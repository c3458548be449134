// The trusted CAs as one bundle: the rotation's middle step must leave it byte for byte the same.
import * as crypto from "crypto";
import { certFixtures } from "./certFixtures";
import { splitPemCertificates, trustBundle } from "../../stacks/trustBundle";

describe("trustBundle", () => {
  const c = certFixtures();
  const subjects = (pem: string) => splitPemCertificates(pem)!.map((b) => new crypto.X509Certificate(b).subject);

  it("holds every distinct CA once", () => {
    expect(subjects(trustBundle(c.caCertPem, c.ca2CertPem)).sort()).toEqual(["CN=test CA", "CN=test CA 2"]);
    expect(subjects(trustBundle(c.caCertPem, c.caCertPem + c.caCertPem))).toEqual(["CN=test CA"]);
    expect(subjects(trustBundle(c.ca2CertPem, undefined))).toEqual(["CN=test CA 2"]);
  });
  it("does not depend on which CA issues (caCertPem) and which is extra, nor on line endings", () => {
    expect(trustBundle(c.ca2CertPem, c.caCertPem)).toBe(trustBundle(c.caCertPem, c.ca2CertPem));
    expect(trustBundle(c.caCertPem.replace(/\n/g, "\r\n"))).toBe(trustBundle(c.caCertPem));
  });
  it("splitPemCertificates refuses text around the certificates", () => {
    expect(splitPemCertificates(`${c.caCertPem}x`)).toBeUndefined();
    expect(splitPemCertificates(`\n${c.caCertPem}\n${c.ca2CertPem}`)).toHaveLength(2);
    expect(splitPemCertificates("")).toEqual([]);
  });
});
