// Preview-time checks of what `hastack:passwords` and `hastack:certificates` supply. Both are secret
// objects known at preview, so a bad value fails before any host is touched; messages never show a
// password or a key, only its length or what kind of value it is.
import * as crypto from "crypto";
import { Rule, checkRules, invalid } from "../components/common/validate";
import { PGBOUNCER_MAX_PASSWORD_BYTES } from "../components/pgBouncerVipPair/args";
import { OPTIONAL_PASSWORD_NAMES, PASSWORD_NAMES, REDIS_GROUP_OPTIONAL_KINDS, REDIS_GROUP_PASSWORD_KINDS } from "./secrets";
import { splitPemCertificates } from "./trustBundle";


/** keepalived reads auth_pass as one word and uses 8 characters; this one is written as given (PgBouncerVipPair). */
const RAW_KEEPALIVED = new Set(["proxyKeepalived"]);

const secretGiven = (v: unknown) => (typeof v === "string" ? `<secret of ${v.length} characters>` : v === undefined ? undefined : `<${typeof v}>`);

/** Rules for one supplied password; `key` is `hastack:passwords.<name>`. */
function passwordRules(name: string, v: unknown): Rule[] {
  const key = `hastack:passwords.${name}`;
  const given = secretGiven(v);
  const s = v as string;
  const rules: Rule[] = [
    { field: key, given, ok: typeof v === "string", accepted: "a string" },
    // an empty password is a login anyone can make (Redis' AUTH "" and PostgreSQL's password_encryption both take it)
    { field: key, given, ok: () => s.length > 0, accepted: "a non-empty password" },
    // files and protocols carry passwords line-wise (pgpass, userlist, debconf, REDISCLI_AUTH=$(cat …)); a shell variable cannot hold NUL
    { field: key, given, ok: () => !/[\r\n\0]/.test(s), accepted: "a password on one line, without NUL, CR or LF" },
  ];
  if (name === "etcdRoot" || name === "etcdPatroni") {
    // etcdctl reads a password from stdin as one word (PatroniCluster sets them that way, never in argv)
    rules.push({ field: key, given, ok: () => !/\s/.test(s), accepted: "a password without spaces or tabs (etcdctl reads it as one word)" });
  }
  if (name === "postgresApp") {
    rules.push(
      { field: key, given, ok: () => Buffer.byteLength(s, "utf8") <= PGBOUNCER_MAX_PASSWORD_BYTES,
        accepted: `at most ${PGBOUNCER_MAX_PASSWORD_BYTES} bytes (UTF-8), the longest password PgBouncer 1.18 reads from its auth_file` },
      // debconf-set-selections joins a line ending in a backslash with the next one (the WorksPad preseed)
      { field: key, given, ok: () => !s.endsWith("\\"), accepted: "a password that does not end with a backslash (debconf would read it as a line continuation)" },
    );
  }
  if (RAW_KEEPALIVED.has(name)) {
    rules.push({ field: key, given, ok: () => s.length <= 8 && /^[\x21-\x7e]+$/.test(s) && !/["\\]/.test(s),
      accepted: "1..8 printable ASCII characters without spaces, '\"' or '\\' (keepalived uses 8 and cannot quote the rest)" });
  }
  return rules;
}

/** Check `hastack:passwords`: known names only, each a usable password for every daemon that reads it. */
export function checkSuppliedPasswords(supplied: unknown): void {
  if (supplied === undefined) return;
  if (typeof supplied !== "object" || supplied === null || Array.isArray(supplied)) {
    invalid("hastack:passwords", secretGiven(supplied) ?? supplied, `an object of passwords by name (${PASSWORD_NAMES.join(", ")})`);
  }
  const known: readonly string[] = [...PASSWORD_NAMES, ...OPTIONAL_PASSWORD_NAMES, "redisGroups"];
  const r = supplied as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!known.includes(k)) invalid(`hastack:passwords.${k}`, secretGiven(r[k]), `no such password; known names are ${known.join(", ")}`);
  }
  checkRules(Object.entries(r).filter(([k]) => k !== "redisGroups").flatMap(([k, v]) => passwordRules(k, v)));
  checkRedisGroupPasswords(r.redisGroups);
  // the previous application password must not be hastack's own (a supplied one; a generated one cannot match)
  if (typeof r.redisPrevious === "string" && r.redisPrevious === r.redisSentinel) {
    invalid("hastack:passwords.redisPrevious", `${secretGiven(r.redisPrevious)}, the same as hastack:passwords.redisSentinel`,
      "the application's previous password, not hastack's own (the application must not log in as hastack)");
  }
}

/** `hastack:passwords.redisGroups`: {group: {app, sentinel, keepalived}}, each optional, each a usable password. */
function checkRedisGroupPasswords(v: unknown): void {
  if (v === undefined) return;
  const key = "hastack:passwords.redisGroups";
  const isObj = (o: unknown): o is Record<string, unknown> => typeof o === "object" && o !== null && !Array.isArray(o);
  if (!isObj(v)) invalid(key, secretGiven(v), `an object by group name of {${REDIS_GROUP_PASSWORD_KINDS.join(", ")}} passwords`);
  for (const [g, kinds] of Object.entries(v)) {
    if (!isObj(kinds)) invalid(`${key}.${g}`, secretGiven(kinds), `an object of passwords by kind (${REDIS_GROUP_PASSWORD_KINDS.join(", ")})`);
    const kindsKnown: readonly string[] = [...REDIS_GROUP_PASSWORD_KINDS, ...REDIS_GROUP_OPTIONAL_KINDS];
    for (const [k, pw] of Object.entries(kinds)) {
      if (!kindsKnown.includes(k)) {
        invalid(`${key}.${g}.${k}`, secretGiven(pw), `no such password; known kinds are ${kindsKnown.join(", ")}`);
      }
      // the same rules as the single group's redis / redisSentinel / redisKeepalived (renamed in the message)
      checkRules(passwordRules(`redisGroups.${g}.${k}`, pw));
    }
    if (typeof kinds.appPrevious === "string" && kinds.appPrevious === kinds.sentinel) {
      invalid(`${key}.${g}.appPrevious`, `${secretGiven(kinds.appPrevious)}, the same as ${key}.${g}.sentinel`,
        "the application's previous password, not hastack's own (the application must not log in as hastack)");
    }
    if (typeof kinds.app === "string" && kinds.app === kinds.sentinel) {
      invalid(`${key}.${g}.sentinel`, `${secretGiven(kinds.sentinel)}, the same as ${key}.${g}.app`,
        "a password other than the application's (it opens Sentinel and hastack's admin login)");
    }
  }
}

const CERT_KEYS = ["caCertPem", "caKeyPem", "extraTrustedCaPem", "servers", "dataProtection"];
const PAIR_KEYS = ["certPem", "keyPem"];

function parseCert(pem: unknown): crypto.X509Certificate | undefined {
  if (typeof pem !== "string") return undefined;
  try { return new crypto.X509Certificate(pem); } catch { return undefined; }
}

function parseKey(pem: unknown): crypto.KeyObject | undefined {
  if (typeof pem !== "string") return undefined;
  try { return crypto.createPrivateKey(pem); } catch { return undefined; }
}

const pemGiven = (v: unknown) => (typeof v === "string" ? `<${v.length} characters, not shown>` : v === undefined ? undefined : `<${typeof v}>`);
const subject = (c: crypto.X509Certificate) => c.subject.replace(/\n/g, ", ");

/**
 * Rules for one supplied certificate and key under `key` (e.g. `hastack:certificates.servers.wp1`):
 * both parse, the certificate is current, the key is the certificate's, and (given trusted CAs) one of them issued it.
 */
function pairRules(key: string, pair: unknown, trusted: readonly crypto.X509Certificate[], now: Date): Rule[] {
  const p = (pair ?? {}) as Record<string, unknown>;
  let cert: crypto.X509Certificate | undefined;
  let pk: crypto.KeyObject | undefined;
  return [
    { field: key, given: pemGiven(pair), ok: typeof pair === "object" && pair !== null && !Array.isArray(pair), accepted: "an object {certPem, keyPem}" },
    ...Object.keys(p).map((k): Rule => ({ field: `${key}.${k}`, given: pemGiven(p[k]), ok: PAIR_KEYS.includes(k), accepted: "no such key; known keys are certPem, keyPem" })),
    { field: `${key}.certPem`, given: pemGiven(p.certPem), ok: () => (cert = parseCert(p.certPem)) !== undefined, accepted: "a PEM X.509 certificate (-----BEGIN CERTIFICATE-----)" },
    { field: `${key}.certPem`, given: pemGiven(p.certPem), ok: () => new Date(cert!.validTo) > now && new Date(cert!.validFrom) <= now,
      accepted: () => `a certificate valid now (this one, ${subject(cert!)}, is valid from ${cert!.validFrom} to ${cert!.validTo})` },
    { field: `${key}.keyPem`, given: pemGiven(p.keyPem), ok: () => (pk = parseKey(p.keyPem)) !== undefined, accepted: "an unencrypted PEM private key (-----BEGIN … PRIVATE KEY-----)" },
    { field: `${key}.keyPem`, given: "<a private key, not shown>", ok: () => cert!.checkPrivateKey(pk!), accepted: () => `the private key of ${key}.certPem (${subject(cert!)})` },
    ...(trusted.length ? [{ field: `${key}.certPem`, given: pemGiven(p.certPem), ok: () => trusted.some((t) => cert!.checkIssued(t) && cert!.verify(t.publicKey)),
      accepted: () => `a certificate issued by a CA nginx and the WorksPad nodes trust (hastack:certificates.caCertPem or extraTrustedCaPem: `
        + `${trusted.map(subject).join("; ")}); this one is ${subject(cert!)}, issued by ${cert!.issuer.replace(/\n/g, ", ")}` }] : []),
  ];
}

/**
 * Check `hastack:certificates`: every PEM parses, a CA is a CA and current, each key belongs to its
 * certificate, server certificates name hosts that serve TLS (`serverHosts`) and were issued by a trusted CA
 * (caCertPem or one in extraTrustedCaPem). Errors name the config path; keys are never shown.
 */
export function checkSuppliedCertificates(supplied: unknown, serverHosts: readonly string[], now = new Date()): void {
  const K = "hastack:certificates";
  if (supplied === undefined) return;
  if (typeof supplied !== "object" || supplied === null || Array.isArray(supplied)) invalid(K, pemGiven(supplied), "an object {caCertPem, caKeyPem, extraTrustedCaPem, servers, dataProtection}");
  const c = supplied as Record<string, unknown>;
  for (const k of Object.keys(c)) if (!CERT_KEYS.includes(k)) invalid(`${K}.${k}`, pemGiven(c[k]), `no such key; known keys are ${CERT_KEYS.join(", ")}`);

  let ca: crypto.X509Certificate | undefined;
  if (c.caCertPem !== undefined) {
    checkRules([
      { field: `${K}.caCertPem`, given: pemGiven(c.caCertPem), ok: () => (ca = parseCert(c.caCertPem)) !== undefined, accepted: "a PEM X.509 certificate (-----BEGIN CERTIFICATE-----)" },
      { field: `${K}.caCertPem`, given: pemGiven(c.caCertPem), ok: () => ca!.ca, accepted: () => `a CA certificate (basicConstraints CA:TRUE); ${subject(ca!)} is not one` },
      { field: `${K}.caCertPem`, given: pemGiven(c.caCertPem), ok: () => new Date(ca!.validTo) > now && new Date(ca!.validFrom) <= now,
        accepted: () => `a CA certificate valid now (${subject(ca!)} is valid from ${ca!.validFrom} to ${ca!.validTo})` },
    ]);
  }
  if (c.caKeyPem !== undefined) {
    let key: crypto.KeyObject | undefined;
    checkRules([
      { field: `${K}.caKeyPem`, given: "<a private key, not shown>", ok: ca !== undefined, accepted: `nothing unless ${K}.caCertPem is given too` },
      { field: `${K}.caKeyPem`, given: pemGiven(c.caKeyPem), ok: () => (key = parseKey(c.caKeyPem)) !== undefined, accepted: "an unencrypted PEM private key (-----BEGIN … PRIVATE KEY-----)" },
      { field: `${K}.caKeyPem`, given: "<a private key, not shown>", ok: () => ca!.checkPrivateKey(key!), accepted: () => `the private key of ${K}.caCertPem (${subject(ca!)})` },
    ]);
  }
  // the CAs trusted besides caCertPem during a rotation (README "Rotating the CA"): one or more CA certificates in one PEM
  const extra: crypto.X509Certificate[] = [];
  if (c.extraTrustedCaPem !== undefined) {
    const E = `${K}.extraTrustedCaPem`;
    let blocks: string[] | undefined;
    checkRules([
      { field: E, given: pemGiven(c.extraTrustedCaPem), ok: () => typeof c.extraTrustedCaPem === "string" && (blocks = splitPemCertificates(c.extraTrustedCaPem)) !== undefined && blocks.length > 0,
        accepted: "one or more PEM CA certificates (-----BEGIN CERTIFICATE----- blocks and nothing else)" },
    ]);
    checkRules(blocks!.flatMap((b, i): Rule[] => {
      let x: crypto.X509Certificate | undefined;
      const which = blocks!.length > 1 ? ` (certificate ${i + 1} of ${blocks!.length})` : "";
      return [
        { field: E, given: pemGiven(c.extraTrustedCaPem), ok: () => (x = parseCert(b)) !== undefined, accepted: `a PEM X.509 certificate${which}` },
        { field: E, given: pemGiven(c.extraTrustedCaPem), ok: () => x!.ca, accepted: () => `CA certificates only (basicConstraints CA:TRUE); ${subject(x!)}${which} is not one` },
        { field: E, given: pemGiven(c.extraTrustedCaPem), ok: () => new Date(x!.validTo) > now && new Date(x!.validFrom) <= now,
          accepted: () => `CA certificates valid now (${subject(x!)}${which} is valid from ${x!.validFrom} to ${x!.validTo})` },
      ];
    }));
    extra.push(...blocks!.map((b) => parseCert(b)!));
  }
  const trusted = [...(ca ? [ca] : []), ...extra];
  if (c.servers !== undefined) {
    if (typeof c.servers !== "object" || c.servers === null || Array.isArray(c.servers)) invalid(`${K}.servers`, pemGiven(c.servers), "an object of {certPem, keyPem} by host name");
    const servers = c.servers as Record<string, unknown>;
    checkRules(Object.entries(servers).flatMap(([host, pair]) => [
      { field: `${K}.servers.${host}`, given: pemGiven(pair), ok: serverHosts.includes(host),
        accepted: `the name of a host that serves TLS (hastack:workspad or hastack:nginx nodes: ${serverHosts.join(", ")})` },
      ...pairRules(`${K}.servers.${host}`, pair, trusted, now),
    ]));
  }
  if (c.dataProtection !== undefined) checkRules(pairRules(`${K}.dataProtection`, c.dataProtection, [], now));
}
