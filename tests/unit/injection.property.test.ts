// Issue 7 §4 "Injection and bad input", as properties: random text — quotes, backslashes, line
// breaks, `$(…)`, backticks, NUL, non-ASCII — either survives every renderer that takes user text
// (read back by the consumer's own rules, or by the real sh / PyYAML) or is refused at preview with
// a ConfigError naming the key. Readers below follow each consumer's documented grammar.
import { execFileSync } from "child_process";
import * as fc from "fast-check";
import * as yaml from "js-yaml";
import { ConfigError, shq } from "../../components/common";
import { renderConnectionString, renderDebconfSelections, renderHealthProbe, renderRestartScript } from "../../components/worksPadNode/render";
import { resolveWorksPadNodeSettings, WorksPadNodeDefaults } from "../../components/worksPadNode/args";
import { pgpassLine, userlistLine } from "../../components/pgBouncerVipPair/render";
import { psqlQuote, pgpassField } from "../../components/patroniCluster/render";
import { redisQuote, respAuthHex } from "../../components/redisSentinelGroup/render";
import { resolvePatroniClusterSettings } from "../../components/patroniCluster/args";
import { resolveRedisSentinelGroupSettings } from "../../components/redisSentinelGroup/args";
import { resolveNginxBalancerSettings } from "../../components/nginxBalancer/args";
import { resolvePgBouncerVipPairSettings } from "../../components/pgBouncerVipPair/args";
import { checkSuppliedPasswords } from "../../stacks/secretRules";

const RUNS = 120;

/** Text built from the characters that break naive quoting, mixed with any Unicode. */
const nasty = fc.array(fc.oneof(
  fc.constantFrom("'", '"', "\\", "\n", "\r", "\t", "\0", "$(", ")", "`", "$", "${IFS}", ";", "|", "&", "*", "?", "~", "#", "!", " ", ":", "=", "%", "{", "}", "[", "]", "-", "/", ".."),
  fc.fullUnicode(),
  fc.char(),
), { maxLength: 24 }).map((parts) => parts.join(""));

/** Run a script with sh and return its stdout (bytes as UTF-8). */
const sh = (script: string) => execFileSync("sh", ["-c", script], { encoding: "utf8" });

function refused(f: () => unknown): boolean {
  try { f(); return false; } catch (e) {
    if (e instanceof ConfigError) return true;
    throw e;
  }
}

describe("shq: one quoting function for every value that reaches a shell", () => {
  it("prints exactly the value back through a real sh, or refuses NUL", () => {
    fc.assert(fc.property(nasty, (s) => {
      if (s.includes("\0")) return expect(() => shq(s)).toThrow("NUL");
      expect(sh(`printf %s ${shq(s)}`)).toBe(s);
    }), { numRuns: RUNS });
  });

  it("keeps a health path one curl argument in the WorksPad probe", () => {
    // curl is stubbed: it reports its last argument and answers 200
    const stub = `curl() { for a; do last=$a; done; printf %s "$last" >&2; echo 200; }\n`;
    fc.assert(fc.property(nasty, (p) => {
      const path = `/${p}`;
      if (path.includes("\0")) return;
      // the probe exits 0 (the stub's 200 passes `test`) and stderr carried exactly the URL
      const out = execFileSync("sh", ["-c", `${stub}{ ${renderHealthProbe(4430, path)}; } 2>&1`], { encoding: "utf8" });
      // nothing after the probe ran: only the URL came back, so no part of the path was executed
      expect(out).toBe(`https://127.0.0.1:4430${path}`);
    }), { numRuns: 60 });
  });

  it("restarts exactly the units given, one argument each", () => {
    fc.assert(fc.property(fc.array(nasty.filter((u) => !u.includes("\0")), { minLength: 1, maxLength: 3 }), (units) => {
      const out = sh(`systemctl() { printf '%s\\0' "$@"; }\n${renderRestartScript(units)}`);
      expect(out.split("\0").slice(0, -1)).toEqual(["restart", ...units]);
    }), { numRuns: 40 });
  });
});

// --- readers, each following its consumer's grammar -------------------------------------------

/** PgBouncer auth_file: `"user" "password"`, `""` inside quotes is one `"`. */
function readUserlist(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === " ") { i++; continue; }
    expect(line[i]).toBe('"');
    let v = "";
    for (i++; ; i++) {
      if (i >= line.length) throw new Error("unterminated");
      if (line[i] === '"') { if (line[i + 1] === '"') { v += '"'; i++; continue; } i++; break; }
      v += line[i];
    }
    out.push(v);
  }
  return out;
}

/** libpq .pgpass: fields split on `:`, a backslash escapes the next character. */
function readPgpass(line: string): string[] {
  const out = [""];
  for (let i = 0; i < line.length; i++) {
    if (line[i] === "\\" && i + 1 < line.length) out[out.length - 1] += line[++i];
    else if (line[i] === ":") out.push("");
    else out[out.length - 1] += line[i];
  }
  return out;
}

/** psql backslash-command argument in single quotes: `''` is a quote; \n \t \b \r \f, octal, \x hex, else the next character. */
function readPsqlQuoted(arg: string): string {
  expect(arg.startsWith("'") && arg.endsWith("'")).toBe(true);
  const s = arg.slice(1, -1);
  let v = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "'") { expect(s[i + 1]).toBe("'"); v += "'"; i++; continue; }
    if (c !== "\\") { v += c; continue; }
    const n = s[++i];
    const simple: Record<string, string> = { n: "\n", t: "\t", b: "\b", r: "\r", f: "\f" };
    if (n in simple) v += simple[n];
    else if (/[0-7]/.test(n) || n === "x") throw new Error(`psqlQuote left an escape psql would decode: \\${n}`);
    else v += n;
  }
  return v;
}

/** Redis config (sdssplitargs): inside "…", \xHH, \n \r \t \b \a, and \<c> for any other c. */
function readRedisQuoted(arg: string): string {
  expect(arg.startsWith('"') && arg.endsWith('"')).toBe(true);
  const s = arg.slice(1, -1);
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '"') throw new Error("unescaped quote ends the argument early");
    if (s[i] !== "\\") { bytes.push(...Buffer.from(s[i], "utf8")); continue; }
    const n = s[++i];
    if (n === "x") { bytes.push(parseInt(s.slice(i + 1, i + 3), 16)); i += 2; continue; }
    const simple: Record<string, number> = { n: 10, r: 13, t: 9, b: 8, a: 7 };
    bytes.push(n in simple ? simple[n] : n.charCodeAt(0));
  }
  return Buffer.from(bytes).toString("utf8");
}

/** An ADO.NET connection string (DbConnectionStringBuilder): `k=v;` with "…" values, `""` inside. */
function readConnectionString(cs: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < cs.length) {
    const eq = cs.indexOf("=", i);
    const key = cs.slice(i, eq);
    i = eq + 1;
    let v = "";
    if (cs[i] === '"') {
      for (i++; ; i++) {
        if (cs[i] === '"') { if (cs[i + 1] === '"') { v += '"'; i++; continue; } i++; break; }
        v += cs[i];
      }
    } else {
      const end = cs.indexOf(";", i);
      v = cs.slice(i, end < 0 ? cs.length : end);
      i = end < 0 ? cs.length : end;
    }
    out[key] = v;
    if (cs[i] === ";") i++;
  }
  return out;
}

/** debconf-set-selections: a line ending in `\` continues; then owner, question, type, one blank, value. */
function readDebconf(text: string): string[] {
  const lines = text.split("\n");
  const values: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    let l = lines[i].replace(/\r$/, "");
    while (l.endsWith("\\") && i + 1 < lines.length) l = l.slice(0, -1) + lines[++i].replace(/\r$/, "");
    if (/^\s*$/.test(l)) continue;
    const m = /^\s*(\S+)\s+(\S+)\s+(\S+)(?:\s(.*))?/.exec(l)!;
    values.push(m[4] ?? "");
  }
  return values;
}

describe("passwords: refused at preview, or read back intact by every file that holds them", () => {
  const yamlDocs: { pw: string; doc: string }[] = [];

  it("round-trips through userlist, pgpass, psql, Npgsql, debconf, redis.conf, RESP and YAML", () => {
    fc.assert(fc.property(nasty, (pw) => {
      if (refused(() => checkSuppliedPasswords({ postgresApp: pw, postgresSuperuser: pw, redis: pw }))) return;
      expect(readUserlist(userlistLine("workspad", pw))).toEqual(["workspad", pw]);
      expect(readPgpass(pgpassLine("*", 6432, "pgbouncer", "hastack_check", pw))).toEqual(["*", "6432", "pgbouncer", "hastack_check", pw]);
      expect(readPgpass(`*:*:*:${pgpassField("postgres")}:${pgpassField(pw)}`)[4]).toBe(pw);
      expect(readPsqlQuoted(psqlQuote(pw))).toBe(pw);
      const db = { host: "10.0.0.50", port: 6432, database: "workspad", user: "workspad", password: pw };
      expect(readConnectionString(renderConnectionString(db))).toEqual({ Host: "10.0.0.50", Port: "6432", Database: "workspad", Username: "workspad", Password: pw });
      expect(readDebconf(renderDebconfSelections("workspad", WorksPadNodeDefaults.debconfQuestions, db))[3]).toBe(pw);
      expect(readRedisQuoted(redisQuote(pw))).toBe(pw);
      const resp = Buffer.from(respAuthHex(pw), "hex");
      expect(resp.toString("utf8")).toBe(`*2\r\n$4\r\nAUTH\r\n$${Buffer.byteLength(pw)}\r\n${pw}\r\n`);
      const doc = yaml.dump({ authentication: { superuser: { password: pw } } }, { lineWidth: -1, noRefs: true, quotingType: '"' });
      expect((yaml.load(doc) as any).authentication.superuser.password).toBe(pw);
      yamlDocs.push({ pw, doc });
    }), { numRuns: RUNS });
  });

  it("reads the same passwords back with PyYAML, the parser Patroni uses", () => {
    expect(yamlDocs.length).toBeGreaterThan(0);
    const py = "import json,sys,yaml\nprint(json.dumps([yaml.safe_load(d)['authentication']['superuser']['password'] for d in json.load(sys.stdin)]))";
    const got = JSON.parse(execFileSync("python3", ["-c", py], { input: JSON.stringify(yamlDocs.map((d) => d.doc)), encoding: "utf8" }));
    expect(got).toEqual(yamlDocs.map((d) => d.pw));
  });

  it("refuses at preview what a file cannot hold: NUL and line breaks anywhere, a final backslash for the preseed", () => {
    for (const pw of ["a\0b", "a\nb", "a\rb", "ab\\"]) expect(refused(() => checkSuppliedPasswords({ postgresApp: pw }))).toBe(true);
  });
});

describe("settings written unquoted: refused at preview unless inert", () => {
  // the characters no shell, ini, nginx, keepalived or Redis config gives a meaning to
  const INERT = /^[A-Za-z0-9._@-]*$/;
  const SUBNET = "10.213.7.0/24";
  const pg = { nodes: [11, 12, 13].map((n) => ({ name: `pg${n}`, address: `10.213.7.${n}` })) };
  const redis = { enabled: true, nodes: [41, 42, 43].map((n) => ({ name: `r${n}`, address: `10.213.7.${n}` })) };
  const proxy = { nodes: [{ name: "px1", address: "10.213.7.21" }], vip: "10.213.7.50" };
  const cases: [string, (v: string) => unknown][] = [
    ["hastack:postgres.clusterName", (v) => resolvePatroniClusterSettings({ ...pg, clusterName: v }, SUBNET)],
    ["hastack:postgres.database", (v) => resolvePatroniClusterSettings({ ...pg, database: v }, SUBNET)],
    ["hastack:postgres.appUser", (v) => resolvePatroniClusterSettings({ ...pg, appUser: v }, SUBNET)],
    ["hastack:postgres.nodes[0].name", (v) => resolvePatroniClusterSettings({ nodes: [{ ...pg.nodes[0], name: v }, ...pg.nodes.slice(1)] }, SUBNET)],
    ["hastack:redis.masterName", (v) => resolveRedisSentinelGroupSettings({ ...redis, masterName: v }, SUBNET)],
    ["hastack:redis.interface", (v) => resolveRedisSentinelGroupSettings({ ...redis, interface: v }, SUBNET)],
    ["hastack:proxy.interface", (v) => resolvePgBouncerVipPairSettings({ ...proxy, interface: v }, SUBNET)],
    ["hastack:nginx.upstreamTlsName", (v) => resolveNginxBalancerSettings({ nodes: [{ name: "n1", address: "10.213.7.31" }], upstreamTlsName: v }, SUBNET)],
  ];
  it.each(cases)("%s: a ConfigError naming the key, or inert characters only", (key, resolveWith) => {
    fc.assert(fc.property(nasty, (v) => {
      try {
        resolveWith(v);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as ConfigError).field).toBe(key);
        return;
      }
      expect(v).toMatch(INERT);
    }), { numRuns: 80 });
  });

  it("hastack:workspad path and unit settings: refused, or free of what would end a line or a word", () => {
    const deb = __filename; // any existing file
    const nodes = [{ name: "wp1", address: "10.213.7.31" }];
    fc.assert(fc.property(fc.constantFrom("installDir", "appSettingsPath", "healthPath", "services"), nasty, (k, v) => {
      const value = k === "services" ? [v] : k === "healthPath" ? `/${v}` : k === "installDir" ? `/opt/${v}` : `/opt/wp/${v}.json`;
      try {
        resolveWorksPadNodeSettings({ nodes, packagePath: deb, [k]: value }, SUBNET);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as ConfigError).field).toMatch(new RegExp(`^hastack:workspad\\.${k}`));
        return;
      }
      for (const x of [value].flat()) expect(x).not.toMatch(/[\0\n\r'"`\\\s]/);
    }), { numRuns: RUNS });
  });
});
