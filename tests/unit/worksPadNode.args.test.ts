import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError } from "../../components/common";
import { WorksPadNodeDefaults, resolveWorksPadNodeSettings } from "../../components/worksPadNode";

const SUBNET = "10.213.7.0/24";
let dir: string;
let deb: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-wp-args-"));
  deb = path.join(dir, "workspad_1.0_all.deb");
  fs.writeFileSync(deb, "not really a deb");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const base = () => ({
  nodes: [{ name: "wp1", address: "10.213.7.31" }, { name: "wp2", address: "10.213.7.32" }],
  packagePath: deb,
});

function fails(raw: unknown, message: string): void {
  expect(() => resolveWorksPadNodeSettings(raw, SUBNET)).toThrow(ConfigError);
  expect(() => resolveWorksPadNodeSettings(raw, SUBNET)).toThrow(message);
}

describe("hastack:workspad settings", () => {
  test("applies every default", () => {
    expect(resolveWorksPadNodeSettings(base(), SUBNET)).toEqual({
      ...base(),
      port: 4430,
      packageName: "workspad",
      prerequisites: ["ca-certificates", "libicu72", "libssl3"],
      microsoftRepo: false,
      microsoftRepoKey: "",
      microsoftRepoSource: WorksPadNodeDefaults.microsoftRepoSource,
      debconfQuestions: { host: "workspad/db_host", database: "workspad/db_name", user: "workspad/db_user", password: "workspad/db_password" },
      installDir: "/opt/workspad",
      appSettingsPath: "/opt/workspad/appsettings.json",
      services: ["workspad"],
      healthPath: "/health",
      healthTimeoutSeconds: 120,
    });
  });

  test("appSettingsPath follows installDir, and one debconf question can be renamed alone", () => {
    const s = resolveWorksPadNodeSettings({ ...base(), installDir: "/srv/wp", debconfQuestions: { password: "wp-server/dbpass" } }, SUBNET);
    expect(s.appSettingsPath).toBe("/srv/wp/appsettings.json");
    expect(s.debconfQuestions).toEqual({ host: "workspad/db_host", database: "workspad/db_name", user: "workspad/db_user", password: "wp-server/dbpass" });
  });

  test("accepts the Microsoft repository with a key", () => {
    const key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n";
    expect(resolveWorksPadNodeSettings({ ...base(), microsoftRepo: true, microsoftRepoKey: key }, SUBNET).microsoftRepo).toBe(true);
  });

  test("fails if the settings are not an object", () =>
    fails("x", `Invalid hastack:workspad: got "x"; expected an object with at least nodes and packagePath.`));
  test("fails if a setting is unknown (a typo)", () =>
    fails({ ...base(), prot: 1 }, `Invalid hastack:workspad.prot: got 1; expected no such setting (known: nodes, port, packagePath, packageName, prerequisites, microsoftRepo, microsoftRepoKey, microsoftRepoSource, debconfQuestions, installDir, appSettingsPath, services, healthPath, healthTimeoutSeconds).`));
  test("fails if there are no nodes", () =>
    fails({ ...base(), nodes: [] }, `Invalid hastack:workspad.nodes: got []; expected a list of at least 1 {name, address} entries.`));
  test("fails if a node name is not a host name", () =>
    fails({ ...base(), nodes: [{ name: "WP 1", address: "10.213.7.31" }] }, `Invalid hastack:workspad.nodes[0].name: got "WP 1"; expected a lower-case name of letters, digits and '-', starting with a letter.`));
  test("fails if a node address is not IPv4", () =>
    fails({ ...base(), nodes: [{ name: "wp1", address: "10.213.7.300" }] }, `Invalid hastack:workspad.nodes[0].address: got "10.213.7.300"; expected an IPv4 address such as 192.168.1.130.`));
  test("fails if a node address is outside the subnet", () =>
    fails({ ...base(), nodes: [{ name: "wp1", address: "10.213.7.31" }, { name: "wp2", address: "10.0.0.2" }] }, `Invalid hastack:workspad.nodes[1].address: got "10.0.0.2"; expected an address inside 10.213.7.0/24.`));
  test("fails if two nodes share a name", () =>
    fails({ ...base(), nodes: [{ name: "wp1", address: "10.213.7.31" }, { name: "wp1", address: "10.213.7.32" }] }, `Invalid hastack:workspad.nodes[1].name: got "wp1"; expected a name no other node uses.`));
  test("fails if two nodes share an address", () =>
    fails({ ...base(), nodes: [{ name: "wp1", address: "10.213.7.31" }, { name: "wp2", address: "10.213.7.31" }] }, `Invalid hastack:workspad.nodes[1].address: got "10.213.7.31"; expected an address no other node uses.`));
  test("fails if the port is out of range", () =>
    fails({ ...base(), port: 70000 }, `Invalid hastack:workspad.port: got 70000; expected a TCP port number 1-65535.`));
  test("fails if packagePath is missing", () =>
    fails({ nodes: base().nodes }, `Invalid hastack:workspad.packagePath: got nothing; expected the path of the vendor .deb on the machine running Pulumi.`));
  test("fails if packagePath names no file on the machine running Pulumi", () =>
    fails({ ...base(), packagePath: "/nonexistent/workspad.deb" }, `Invalid hastack:workspad.packagePath: got "/nonexistent/workspad.deb"; expected an existing file; no file at "/nonexistent/workspad.deb" on the machine running Pulumi.`));
  test("fails if packageName is not a Debian package name", () =>
    fails({ ...base(), packageName: "Work Pad" }, `Invalid hastack:workspad.packageName: got "Work Pad"; expected a Debian package name such as "workspad".`));
  test("fails if a prerequisite is not a Debian package name", () =>
    fails({ ...base(), prerequisites: ["libicu72", "rm -rf /"] }, `Invalid hastack:workspad.prerequisites: got ["libicu72","rm -rf /"]; expected a list of Debian package names.`));
  test("fails if microsoftRepo is not a boolean", () =>
    fails({ ...base(), microsoftRepo: "yes" }, `Invalid hastack:workspad.microsoftRepo: got "yes"; expected true or false.`));
  test("fails if microsoftRepo is on without a key", () =>
    fails({ ...base(), microsoftRepo: true }, `Invalid hastack:workspad.microsoftRepoKey: got ""; expected an ASCII-armoured PGP public key (required when microsoftRepo is true).`));
  test("fails if microsoftRepoSource is not one apt source line", () =>
    fails({ ...base(), microsoftRepoSource: "https://packages.microsoft.com/debian/12/prod" }, `Invalid hastack:workspad.microsoftRepoSource: got "https://packages.microsoft.com/debian/12/prod"; expected one apt source line: deb [options] URL SUITE COMPONENT....`));
  test("fails if debconfQuestions is not an object", () =>
    fails({ ...base(), debconfQuestions: ["workspad/db_host"] }, `Invalid hastack:workspad.debconfQuestions: got ["workspad/db_host"]; expected an object {host, database, user, password} of debconf question names.`));
  test("fails if debconfQuestions names an unknown question", () =>
    fails({ ...base(), debconfQuestions: { port: "workspad/db_port" } }, `Invalid hastack:workspad.debconfQuestions.port: got "workspad/db_port"; expected no such question (known: host, database, user, password).`));
  test.each(["host", "database", "user", "password"])("fails if debconfQuestions.%s is not a debconf question name", (k) =>
    fails({ ...base(), debconfQuestions: { [k]: "db host" } }, `Invalid hastack:workspad.debconfQuestions.${k}: got "db host"; expected a debconf question name such as "workspad/db_host".`));
  test("fails if installDir is not an absolute path", () =>
    fails({ ...base(), installDir: "opt/workspad" }, `Invalid hastack:workspad.installDir: got "opt/workspad"; expected an absolute directory path of letters, digits and ._+@-, not "/".`));
  test("fails if appSettingsPath is not an absolute .json path", () =>
    fails({ ...base(), appSettingsPath: "/opt/workspad/appsettings.yml" }, `Invalid hastack:workspad.appSettingsPath: got "/opt/workspad/appsettings.yml"; expected an absolute path of a .json file.`));
  test("fails if services is empty", () =>
    fails({ ...base(), services: [] }, `Invalid hastack:workspad.services: got []; expected a non-empty list of systemd service names (name, name@instance or name.service).`));
  test("fails if healthPath does not start with /", () =>
    fails({ ...base(), healthPath: "health" }, `Invalid hastack:workspad.healthPath: got "health"; expected a URL path starting with "/", without spaces or quotes.`));
  test("fails if healthTimeoutSeconds is not a whole number of seconds", () =>
    fails({ ...base(), healthTimeoutSeconds: 0.5 }, `Invalid hastack:workspad.healthTimeoutSeconds: got 0.5; expected a whole number of seconds 1-3600.`));
});

describe("hastack:workspad units, apt sources and directories that are not the server's (issue 7 §4)", () => {
  const SERVICES = "the WorksPad server's own unit: the component restarts and on destroy disables it, so not one of ";
  test.each(["ssh", "ssh.service", "sshd", "systemd-networkd", "postgresql@15-main", "patroni", "etcd", "pgbouncer", "haproxy",
    "keepalived", "nginx.service", "redis-server", "redis-sentinel", "networking"])("fails if services names %s, a unit the host or the stack needs", (u) =>
    fails({ ...base(), services: ["workspad", u] }, `Invalid hastack:workspad.services[1]: got ${JSON.stringify(u)}; expected ${SERVICES}`));
  test("fails if services names a unit that is not a service (a target would stop the host)", () =>
    fails({ ...base(), services: ["multi-user.target"] }, `Invalid hastack:workspad.services: got ["multi-user.target"]`));
  test("accepts the server's own units, templated or with .service", () =>
    expect(resolveWorksPadNodeSettings({ ...base(), services: ["workspad", "workspad-worker@1", "workspad-push.service"] }, SUBNET).services).toHaveLength(3));

  const key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n";
  const SIGNED = "[arch=amd64 signed-by=/usr/share/keyrings/microsoft-prod.asc]";
  test.each(["trusted=yes", "allow-insecure=yes", "allow-weak=yes", "allow-downgrade-to-insecure=yes", "check-valid-until=no", "check-date=no"])(
    "fails if microsoftRepoSource turns off apt's checks with %s", (opt) =>
      fails({ ...base(), microsoftRepo: true, microsoftRepoKey: key,
        microsoftRepoSource: `deb [arch=amd64 ${opt} signed-by=/usr/share/keyrings/microsoft-prod.asc] https://packages.microsoft.com/debian/12/prod bookworm main` },
      `expected a source whose signatures apt checks: no trusted=yes, allow-insecure, allow-weak, allow-downgrade-to-insecure, check-valid-until=no or check-date=no.`));
  test("fails if microsoftRepoSource uses plain http://", () =>
    fails({ ...base(), microsoftRepoSource: `deb ${SIGNED} http://packages.microsoft.com/debian/12/prod bookworm main` },
      `Invalid hastack:workspad.microsoftRepoSource: got "deb ${SIGNED} http://packages.microsoft.com/debian/12/prod bookworm main"; expected an https:// repository URL`));
  test("fails if microsoftRepoSource is not signed by the key the component writes", () =>
    fails({ ...base(), microsoftRepoSource: "deb https://packages.microsoft.com/debian/12/prod bookworm main" },
      "expected a source with [signed-by=/usr/share/keyrings/microsoft-prod.asc], the key microsoftRepoKey is written to"));

  test.each(["/opt", "/usr", "/etc", "/var/lib"])("fails if installDir is the system directory %s", (d) =>
    fails({ ...base(), installDir: d }, `Invalid hastack:workspad.installDir: got "${d}"; expected a directory of the server's own, such as /opt/workspad`));
  test.each([["/etc/nginx/workspad", "/etc/nginx"], ["/var/lib/postgresql/workspad", "/var/lib/postgresql"], ["/tmp/workspad", "/tmp"], ["/etc/ssh", "/etc/ssh"]])(
    "fails if installDir %s overlaps %s", (d, other) =>
      fails({ ...base(), installDir: d }, `Invalid hastack:workspad.installDir: got "${d}"; expected a directory clear of ${other} (volatile, or another daemon's files).`));
  test("fails if appSettingsPath lies in another daemon's directory", () =>
    fails({ ...base(), appSettingsPath: "/etc/patroni/appsettings.json" }, `Invalid hastack:workspad.appSettingsPath: got "/etc/patroni/appsettings.json"; expected a file outside /etc/patroni`));
});
