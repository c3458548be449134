// The WorksPad double's server against a real throwaway PostgreSQL, over HTTPS on loopback.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import {
  PG_BIN, PYTHON, SERVER_SCRIPT, SPECIAL_PASSWORD, RunningDouble, TempPostgres, freePort, makeHome, removeTempPostgres, request,
  requireBinaries, requirePsycopg2, requireRoot, startDouble, startTempPostgres,
} from "../workspad-double/testkit";

describe("workspad test double server (needs root: PostgreSQL runs as user postgres)", () => {
  let pg: TempPostgres | undefined;
  let home: ReturnType<typeof makeHome> | undefined;
  let server: RunningDouble | undefined;
  let port = 0;

  beforeAll(async () => {
    requireRoot();
    requireBinaries(PYTHON, `${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, `${PG_BIN}/psql`, "/usr/bin/openssl");
    requirePsycopg2();
    pg = await startTempPostgres({ user: "workspad", password: SPECIAL_PASSWORD, database: "workspad" });
    port = await freePort();
    home = makeHome(port);
    // the connection string is written by the same code the package's postinst runs
    execFileSync(PYTHON, [SERVER_SCRIPT, "--configure-if-empty"], {
      stdio: "pipe",
      env: { ...process.env, WORKSPAD_HOME: home.home, WORKSPAD_DB_HOST: `127.0.0.1:${pg.port}`, WORKSPAD_DB_NAME: "workspad", WORKSPAD_DB_USER: "workspad", WORKSPAD_DB_PASSWORD: SPECIAL_PASSWORD },
    });
    server = await startDouble(home.home, port);
  });

  afterAll(async () => {
    await server?.stop();
    removeTempPostgres(pg);
    if (home) fs.rmSync(home.home, { recursive: true, force: true });
  });

  test("health answers 200 with the node name and the data-protection fingerprint, and sets the stickiness cookie", async () => {
    const r = await request(port, "GET", "/health");
    expect(r.status).toBe(200);
    const der = new crypto.X509Certificate(fs.readFileSync(path.join(home!.certs, "dataprotection.crt"))).raw;
    expect(r.body).toEqual({
      status: "ok", db: "ok", node: execFileSync("hostname", { encoding: "utf8" }).trim(),
      dataProtectionFingerprint: crypto.createHash("sha256").update(der).digest("hex"),
    });
    expect(String(r.headers["set-cookie"])).toBe(`wpnode=${r.body.node}; Path=/`);
  });

  test("a posted note (logged in with a password full of quotes) reads back by id", async () => {
    const text = `note "one"; é ${Date.now()}`;
    const created = await request(port, "POST", "/api/notes", text);
    expect(created.status).toBe(201);
    expect(typeof created.body.id).toBe("number");
    const got = await request(port, "GET", `/api/notes/${created.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ id: created.body.id, body: text, node: expect.any(String), created_at: expect.any(String) });
    expect((await request(port, "GET", "/api/notes/999999")).status).toBe(404);
  });

  test("a wrong password in appsettings turns health into 503 with the reason (read on each request)", async () => {
    const file = home!.appsettings;
    const good = fs.readFileSync(file, "utf8");
    const settings = JSON.parse(good);
    settings.ConnectionStrings.WorksPadDatabase = settings.ConnectionStrings.WorksPadDatabase.replace(/Password=.*$/, "Password=wrong");
    fs.writeFileSync(file, JSON.stringify(settings));
    try {
      const r = await request(port, "GET", "/health");
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ status: "degraded", db: "error", reason: expect.stringMatching(/password authentication failed/) });
    } finally {
      fs.writeFileSync(file, good);
    }
    expect((await request(port, "GET", "/health")).status).toBe(200);
  });

  test("when the database stops, health says 503 within the connect timeout", async () => {
    pg!.stop();
    const started = Date.now();
    const r = await request(port, "GET", "/health");
    expect(r.status).toBe(503);
    expect(r.body.db).toBe("error");
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
