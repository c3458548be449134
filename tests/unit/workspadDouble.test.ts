// The WorksPad test-double package: built offline, with the vendor's install contract.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PYTHON, SERVER_SCRIPT, SPECIAL_PASSWORD, buildDouble, parseWithDouble } from "../workspad-double/testkit";

let out: string;
let deb: string;

beforeAll(() => {
  out = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-wp-deb-"));
  deb = buildDouble(out);
});
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

const dpkgDeb = (...args: string[]) => execFileSync("dpkg-deb", args, { encoding: "utf8" });
const member = (file: string) =>
  execFileSync("sh", ["-c", `dpkg-deb --fsys-tarfile "$1" | tar -xOf - "$2"`, "sh", deb, file], { encoding: "utf8" });

describe("workspad test-double .deb", () => {
  test("is built as workspad-double_1.0_all.deb for the package workspad", () => {
    expect(path.basename(deb)).toBe("workspad-double_1.0_all.deb");
    expect(dpkgDeb("-f", deb, "Package", "Version", "Architecture")).toBe("Package: workspad\nVersion: 1.0\nArchitecture: all\n");
    expect(dpkgDeb("-f", deb, "Depends")).toMatch(/python3-psycopg2/);
  });

  test("building twice gives the same bytes, so its hash only changes with its sources", () => {
    const again = buildDouble(path.join(out, "again"));
    expect(fs.readFileSync(again).equals(fs.readFileSync(deb))).toBe(true);
  });

  test("asks the four database questions, the password as type password", () => {
    const templates = dpkgDeb("-I", deb, "templates");
    const types = Object.fromEntries([...templates.matchAll(/^Template: (\S+)\nType: (\S+)/gm)].map((m) => [m[1], m[2]]));
    expect(types).toEqual({
      "workspad/db_host": "string", "workspad/db_name": "string", "workspad/db_user": "string", "workspad/db_password": "password",
    });
    const config = dpkgDeb("-I", deb, "config");
    for (const q of Object.keys(types)) expect(config).toContain(q);
  });

  test("postinst reads the answers with debconf, forgets the password and does not start the service", () => {
    const postinst = dpkgDeb("-I", deb, "postinst");
    expect(postinst).toContain(". /usr/share/debconf/confmodule");
    for (const q of ["db_host", "db_name", "db_user", "db_password"]) expect(postinst).toContain(`db_get workspad/${q}`);
    expect(postinst).toMatch(/db_(set|reset) workspad\/db_password/);
    expect(postinst).not.toMatch(/systemctl (start|restart)|deb-systemd-invoke|invoke-rc\.d/);
    expect(postinst).not.toMatch(/\bsed\b/);
  });

  test("ships the server, the unit, an empty connection string and the Kestrel port 4430", () => {
    const files = dpkgDeb("-c", deb);
    for (const f of ["./opt/workspad/appsettings.json", "./opt/workspad/bin/workspad-server", "./opt/workspad/certs/", "./lib/systemd/system/workspad.service"]) {
      expect(files).toContain(f);
    }
    expect(files).toMatch(/-rwxr-xr-x root\/root .* \.\/opt\/workspad\/bin\/workspad-server/);
    expect(files).toMatch(/-rw-r----- root\/root .* \.\/opt\/workspad\/appsettings\.json/);
    const settings = JSON.parse(member("./opt/workspad/appsettings.json"));
    expect(settings.ConnectionStrings).toEqual({ WorksPadDatabase: "" });
    expect(settings.Kestrel.Endpoints.Https.Url).toBe("https://0.0.0.0:4430");
    const unit = member("./lib/systemd/system/workspad.service");
    expect(unit).toMatch(/^Restart=always$/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/python3 \/opt\/workspad\/bin\/workspad-server$/m);
  });
});

describe("workspad test-double connection strings", () => {
  test("parses quoted values with doubled quotes back to the password", () => {
    expect(parseWithDouble(`Host=10.0.0.5;Port=6432;Database=wp;Username=wp;Password="jhYg/=\\F'""$"`)).toEqual({
      host: "10.0.0.5", port: "6432", database: "wp", username: "wp", password: SPECIAL_PASSWORD,
    });
    expect(parseWithDouble(`Server=h; User ID='it''s'; Password=a b ;`)).toEqual({ host: "h", username: "it's", password: "a b" });
  });

  test("fails on an unterminated quoted value instead of guessing", () => {
    expect(() => execFileSync(PYTHON, [SERVER_SCRIPT, "--parse-connection-string"], { input: `Password="abc`, stdio: "pipe" })).toThrow(/unterminated/);
  });

  test("postinst's writer fills an empty connection string from the answers and keeps a set one", () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-wp-cfg-"));
    try {
      const file = path.join(home, "appsettings.json");
      fs.writeFileSync(file, JSON.stringify({ ConnectionStrings: { WorksPadDatabase: "" }, Kestrel: {} }), { mode: 0o644 });
      const env = { ...process.env, WORKSPAD_HOME: home, WORKSPAD_DB_HOST: "10.213.7.50:6432", WORKSPAD_DB_NAME: "workspad", WORKSPAD_DB_USER: "workspad", WORKSPAD_DB_PASSWORD: SPECIAL_PASSWORD };
      execFileSync(PYTHON, [SERVER_SCRIPT, "--configure-if-empty"], { env, stdio: "pipe" });
      const written = JSON.parse(fs.readFileSync(file, "utf8")).ConnectionStrings.WorksPadDatabase;
      expect(parseWithDouble(written)).toEqual({ host: "10.213.7.50", port: "6432", database: "workspad", username: "workspad", password: SPECIAL_PASSWORD });
      expect(fs.statSync(file).mode & 0o777).toBe(0o640);
      execFileSync(PYTHON, [SERVER_SCRIPT, "--configure-if-empty"], { env: { ...env, WORKSPAD_DB_PASSWORD: "other" }, stdio: "pipe" });
      expect(JSON.parse(fs.readFileSync(file, "utf8")).ConnectionStrings.WorksPadDatabase).toBe(written);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
