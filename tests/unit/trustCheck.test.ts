// The check a new CA bundle passes before it replaces the old one, run by sh with real certificates and, for nginx's
// view of its upstreams, a real TLS server (openssl s_server) on loopback.
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { certFixtures } from "./certFixtures";
import { freePort } from "../support/ports";
import { renderTrustCheck } from "../../components/common/tls";
import { renderServedUpstreamCerts } from "../../components/nginxBalancer/render";

const c = certFixtures();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-trustcheck-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const write = (n: string, text: string) => { fs.writeFileSync(path.join(dir, n), text); return path.join(dir, n); };

/** The check as putFile runs it: with $NEW set, in a subshell of a `set -eu` script; stderr and the status returned. */
function check(bundle: string, served: string): { code: number; stderr: string } {
  const NEW = write("new.pem", bundle);
  try {
    execFileSync("sh", ["-c", `set -eu\nexport NEW=${JSON.stringify(NEW)}\n( ${renderTrustCheck(served, "hastack:certificates (caCertPem and extraTrustedCaPem)")} ) >&2`],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    return { code: 0, stderr: "" };
  } catch (e: any) {
    return { code: e.status, stderr: String(e.stderr) };
  }
}

describe("a trust bundle is refused while a certificate in use would lose its trust", () => {
  const served = `printf '%s\\n%s\\n' 'this WorksPad node' ${JSON.stringify(write("tls.crt", c.serverCertPem))}`;

  it("accepts a bundle holding the CA that issued what is served, alone or with the new CA (rotation step 1)", () => {
    expect(check(c.caCertPem, served)).toEqual({ code: 0, stderr: "" });
    expect(check(c.ca2CertPem + c.caCertPem, served)).toEqual({ code: 0, stderr: "" });
  });
  it("fails if the bundle drops the CA of the certificate served now (a one-up rotation), explaining the three ups", () => {
    const r = check(c.ca2CertPem, served);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("refused: this WorksPad node serves a certificate issued by CN = test CA, which hastack:certificates (caCertPem and extraTrustedCaPem) would no longer trust;");
    expect(r.stderr).toContain("1) add the new CA as hastack:certificates.extraTrustedCaPem; 2) make it caCertPem");
  });
  it("accepts anything parseable when nothing is served yet (a first deploy)", () => {
    expect(check(c.ca2CertPem, `printf '%s\\n%s\\n' 'this WorksPad node' ${JSON.stringify(path.join(dir, "absent.crt"))}`).code).toBe(0);
  });
  it("fails if a block of the bundle is not a certificate, or there is none", () => {
    expect(check(c.caCertPem + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", ":")).toEqual({ code: 1, stderr: "a block of the trust bundle is not a certificate\n" });
    expect(check("", ":")).toEqual({ code: 1, stderr: "no certificate in the trust bundle\n" });
  });

  describe("nginx's view: what its upstreams serve, fetched over TLS", () => {
    let server: ChildProcess;
    let port: number;
    beforeAll(async () => {
      port = await freePort();
      server = spawn("openssl", ["s_server", "-quiet", "-accept", `127.0.0.1:${port}`, "-cert", write("s.crt", c.serverCertPem), "-key", write("s.key", c.serverKeyPem)],
        { stdio: "ignore" });
      for (let i = 0; i < 50; i++) {
        try { execFileSync("sh", ["-c", `openssl s_client -connect 127.0.0.1:${port} </dev/null >/dev/null 2>&1`]); break; } catch { await new Promise((r) => setTimeout(r, 100)); }
      }
    });
    afterAll(() => server?.kill());

    it("accepts old+new, refuses new alone naming the upstream, and skips an upstream that does not answer", async () => {
      const down = await freePort();
      const targets = [{ address: "127.0.0.1", port: down }, { address: "127.0.0.1", port }];
      expect(check(c.caCertPem + c.ca2CertPem, renderServedUpstreamCerts(targets, "workspad")).code).toBe(0);
      const r = check(c.ca2CertPem, renderServedUpstreamCerts(targets, "workspad"));
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`refused: upstream 127.0.0.1:${port} serves a certificate issued by CN = test CA`);
      expect(check(c.ca2CertPem, renderServedUpstreamCerts([{ address: "127.0.0.1", port: down }], "workspad")).code).toBe(0);
    });
  });
});
