// WorksPadNode's rendered files and scripts, run for real on loopback against the WorksPad double
// (the vendor server's stand-in) and a throwaway PostgreSQL whose password is jhYg/=\F'"$.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  DatabaseTarget, VALIDATE_CERT, VALIDATE_KEY, WorksPadNodeDefaults, renderConnectionString, renderDebconfSelections,
  renderHealthProbe, renderInstallScript, renderPreseedScript, renderRestartScript, renderSetConnectionStringScript,
} from "../../components/worksPadNode";
import {
  PG_BIN, PYTHON, SPECIAL_PASSWORD, RunningDouble, TempPostgres, freePort, makeHome, removeTempPostgres, request, requireBinaries,
  requirePsycopg2, requireRoot, startDouble, startTempPostgres,
} from "../workspad-double/testkit";

const sh = (script: string, input = "", env: Record<string, string> = {}) =>
  spawnSync("sh", ["-c", `set -eu\n${script}`], { input, encoding: "utf8", env: { ...process.env, ...env } });

describe("WorksPadNode files on the WorksPad double (needs root: PostgreSQL runs as user postgres)", () => {
  let pg: TempPostgres | undefined;
  let home: ReturnType<typeof makeHome> | undefined;
  let server: RunningDouble | undefined;
  let port = 0;
  let db: DatabaseTarget;

  beforeAll(async () => {
    requireRoot();
    requireBinaries(PYTHON, "/usr/bin/curl", "/usr/bin/openssl", "/usr/bin/debconf-set-selections", `${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, `${PG_BIN}/psql`);
    requirePsycopg2();
    pg = await startTempPostgres({ user: "workspad", password: SPECIAL_PASSWORD, database: "workspad" });
    db = { host: "127.0.0.1", port: pg.port, database: "workspad", user: "workspad", password: SPECIAL_PASSWORD };
    port = await freePort();
    home = makeHome(port);
  });

  afterAll(async () => {
    await server?.stop();
    removeTempPostgres(pg);
    if (home) fs.rmSync(home.home, { recursive: true, force: true });
  });

  test("the appsettings step writes the connection string with a JSON parser, 0640, and is a no-op the second time", () => {
    fs.chmodSync(home!.appsettings, 0o644);
    const script = renderSetConnectionStringScript(home!.appsettings);
    const cs = renderConnectionString(db);
    const first = sh(script, cs);
    expect([first.status, first.stdout, first.stderr]).toEqual([0, "written\n", ""]);
    const settings = JSON.parse(fs.readFileSync(home!.appsettings, "utf8"));
    expect(settings.ConnectionStrings.WorksPadDatabase).toBe(cs);
    expect(settings.Kestrel.Endpoints.Https.Url).toBe(`https://127.0.0.1:${port}`);
    expect(fs.statSync(home!.appsettings).mode & 0o777).toBe(0o640);
    expect(sh(script, cs).stdout).toBe("unchanged\n");
    expect(fs.readdirSync(home!.home).filter((f) => f.startsWith(".hastack."))).toEqual([]);
  });

  test("the double, reading that connection string, logs in with the special password and answers the rendered health probe", async () => {
    server = await startDouble(home!.home, port);
    const probe = sh(renderHealthProbe(port, WorksPadNodeDefaults.healthPath));
    expect([probe.status, probe.stderr]).toEqual([0, ""]);
    const note = await request(port, "POST", "/api/notes", "through the rendered connection string");
    expect(note.status).toBe(201);
    expect((await request(port, "GET", `/api/notes/${note.body.id}`)).body.body).toBe("through the rendered connection string");
  });

  test("the health probe fails on anything but 200", () => {
    expect(sh(renderHealthProbe(port, "/no-such-path")).status).not.toBe(0);
  });

  test.each([["a plain password", "s3cret"], ["the password jhYg/=\\F'\"$", SPECIAL_PASSWORD]])(
    "debconf-set-selections accepts the preseed answers with %s", (_what, password) => {
      const r = spawnSync("debconf-set-selections", ["--checkonly"], { input: renderDebconfSelections("workspad", WorksPadNodeDefaults.debconfQuestions, { ...db, password }), encoding: "utf8" });
      expect([r.status, r.stderr]).toEqual([0, ""]);
    });

  test("the certificate checks accept openssl's PEM files and refuse anything else", () => {
    const ok = (check: string, file: string) => sh(check, "", { NEW: file }).status === 0;
    expect(ok(VALIDATE_CERT, path.join(home!.certs, "tls.crt"))).toBe(true);
    expect(ok(VALIDATE_KEY, path.join(home!.certs, "tls.key"))).toBe(true);
    expect(ok(VALIDATE_CERT, path.join(home!.certs, "tls.key"))).toBe(false);
    expect(ok(VALIDATE_KEY, home!.appsettings)).toBe(false);
  });

  test("the remote scripts are valid sh", () => {
    for (const s of [renderPreseedScript(), renderInstallScript("/var/cache/hastack/workspad-double_1.0_all.deb", "workspad"),
      renderSetConnectionStringScript("/opt/workspad/appsettings.json"), renderRestartScript(["workspad"]), renderHealthProbe(4430, "/health")]) {
      expect(execFileSync("sh", ["-n", "-c", s], { encoding: "utf8" })).toBe("");
    }
  });
});
