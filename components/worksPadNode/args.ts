import * as fs from "fs";
import { MICROSOFT_KEY_PATH } from "./render";
import {
  FOREIGN_DIRS, HostSpec, SYSTEM_DIRS, VOLATILE_DIRS, checkHosts, checkRules, inSubnet, invalid, isPort, pathInside, pathsOverlap, Rule,
} from "../common";

const KEY = "hastack:workspad";

/** Debconf question names the vendor installer asks (the vendor does not publish them, so they are configurable). */
export interface WorksPadDebconfQuestions {
  /** "host:port" of the database (the PgBouncer VIP). @default "workspad/db_host" */
  readonly host: string;
  /** @default "workspad/db_name" */
  readonly database: string;
  /** @default "workspad/db_user" */
  readonly user: string;
  /** Asked as type `password`; preseeded over stdin only. @default "workspad/db_password" */
  readonly password: string;
}

/** Stack config `hastack:workspad`, as written in the stack file. */
export interface WorksPadNodeSettings {
  /** The WorksPad application VMs; the stack creates one WorksPadNode per entry. */
  readonly nodes: HostSpec[];
  /** HTTPS port the vendor server listens on (its Kestrel URL); used by the health gate and the balancer. @default 4430 */
  readonly port?: number;
  /** Path of the vendor .deb on the machine running Pulumi; read (and hashed) at preview. */
  readonly packagePath: string;
  /** Debian package name inside the .deb. @default "workspad" */
  readonly packageName?: string;
  /**
   * Debian packages the vendor server needs, installed before the .deb. The component adds the tools
   * its own steps use (python3, curl, openssl) to this list.
   * @default ["ca-certificates", "libicu72", "libssl3"]
   */
  readonly prerequisites?: string[];
  /**
   * Add the Microsoft packages apt repository (for vendor builds that depend on packages from it):
   * writes `microsoftRepoKey` to /usr/share/keyrings/microsoft-prod.asc and `microsoftRepoSource` to
   * /etc/apt/sources.list.d/microsoft-prod.list before the prerequisites are installed.
   * @default false
   */
  readonly microsoftRepo?: boolean;
  /** ASCII-armoured signing key of the Microsoft repository; required when `microsoftRepo` is true. @default "" */
  readonly microsoftRepoKey?: string;
  /**
   * The apt source line: https, `signed-by=` the key above, none of the options that turn off apt's checks
   * (`trusted=yes`, `allow-insecure`, `check-valid-until=no`, …).
   * @default "deb [arch=amd64 signed-by=/usr/share/keyrings/microsoft-prod.asc] https://packages.microsoft.com/debian/12/prod bookworm main"
   */
  readonly microsoftRepoSource?: string;
  /** @default {host: "workspad/db_host", database: "workspad/db_name", user: "workspad/db_user", password: "workspad/db_password"} */
  readonly debconfQuestions?: Partial<WorksPadDebconfQuestions>;
  /** Where the vendor package installs the server: its own directory, clear of system and other daemons' directories. @default "/opt/workspad" */
  readonly installDir?: string;
  /** The server's settings file holding `ConnectionStrings.WorksPadDatabase`. @default "<installDir>/appsettings.json" */
  readonly appSettingsPath?: string;
  /**
   * systemd service units of the server, enabled, restarted and on destroy disabled by the component; never a
   * unit the host or another section needs (ssh, systemd-*, postgresql*, patroni, etcd, pgbouncer, haproxy, …).
   * @default ["workspad"]
   */
  readonly services?: string[];
  /** HTTPS path that answers 200 when the node and its database are up. @default "/health" */
  readonly healthPath?: string;
  /** How long the health gate waits after a (re)start. @default 120 */
  readonly healthTimeoutSeconds?: number;
}

export type ResolvedWorksPadNodeSettings = Required<Omit<WorksPadNodeSettings, "debconfQuestions">> & {
  readonly debconfQuestions: WorksPadDebconfQuestions;
};

export const WorksPadNodeDefaults = {
  port: 4430,
  packageName: "workspad",
  prerequisites: ["ca-certificates", "libicu72", "libssl3"],
  microsoftRepo: false,
  microsoftRepoKey: "",
  microsoftRepoSource:
    "deb [arch=amd64 signed-by=/usr/share/keyrings/microsoft-prod.asc] https://packages.microsoft.com/debian/12/prod bookworm main",
  debconfQuestions: {
    host: "workspad/db_host",
    database: "workspad/db_name",
    user: "workspad/db_user",
    password: "workspad/db_password",
  } as WorksPadDebconfQuestions,
  installDir: "/opt/workspad",
  /** `appSettingsPath` defaults to this file name inside `installDir`. */
  appSettingsFile: "appsettings.json",
  services: ["workspad"],
  healthPath: "/health",
  healthTimeoutSeconds: 120,
} as const;

const KNOWN = ["nodes", "port", "packagePath", "packageName", "prerequisites", "microsoftRepo", "microsoftRepoKey",
  "microsoftRepoSource", "debconfQuestions", "installDir", "appSettingsPath", "services", "healthPath", "healthTimeoutSeconds"];
const QUESTION_KEYS = ["host", "database", "user", "password"] as const;

const DEB_PACKAGE = /^[a-z0-9][a-z0-9+.-]+$/;
const DEBCONF_QUESTION = /^[a-z0-9][a-z0-9+.-]*\/[A-Za-z0-9_.+-]+$/;
const ABS_PATH = /^\/[A-Za-z0-9._+@-]+(\/[A-Za-z0-9._+@-]+)*$/;
/** A service unit: a name (optionally a template instance `name@x`) with or without `.service`; other unit types are not restarted. */
const UNIT = /^(?!.*\.(target|socket|mount|automount|timer|path|slice|scope|swap|device)$)[A-Za-z0-9][A-Za-z0-9_.-]*(@[A-Za-z0-9_.-]+)?(\.service)?$/;
/**
 * Units the component must never restart or disable (it does both to `services`): the ones other
 * sections of the stack run, and those the host needs to stay reachable. Matched on the name without
 * `.service` and any `@instance`; an entry ending in `*` is a prefix.
 */
export const FOREIGN_UNITS = [
  "ssh", "sshd", "systemd-*", "dbus", "networking", "NetworkManager", "ifup", "cron", "rsyslog", "getty", "serial-getty",
  "user", "apt-daily*", "unattended-upgrades", "postgresql*", "patroni", "etcd", "pgbouncer", "haproxy", "keepalived", "nginx",
  "redis*", "nftables", "iptables", "netfilter-persistent", "ufw", "firewalld", "chrony", "ntp", "systemd",
] as const;

export function isForeignUnit(unit: string): boolean {
  const bare = unit.replace(/\.service$/, "").replace(/@.*$/, "");
  return FOREIGN_UNITS.some((f) => (f.endsWith("*") ? bare.startsWith(f.slice(0, -1)) : bare === f));
}

/**
 * apt options that turn off signature or freshness checks (sources.list(5)): a repository added for
 * root-run package installs must be verified against its key.
 */
const INSECURE_APT_OPTION = /(^|[\s\[])(trusted|allow-insecure|allow-weak|allow-downgrade-to-insecure)=(yes|true|1)\b|(^|[\s\[])(check-valid-until|check-date)=(no|false|0)\b/i;
const URL_PATH = /^\/[A-Za-z0-9._~!$&()*+,;=:@%/?-]*$/;

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Apply defaults and validate `hastack:workspad`; throws ConfigError before any resource exists. */
export function resolveWorksPadNodeSettings(raw: unknown, subnet: string): ResolvedWorksPadNodeSettings {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) invalid(KEY, raw, "an object with at least nodes and packagePath");
  const r = raw as Record<string, any>;
  const unknown = Object.keys(r).filter((k) => !KNOWN.includes(k));
  if (unknown.length > 0) invalid(`${KEY}.${unknown[0]}`, r[unknown[0]], `no such setting (known: ${KNOWN.join(", ")})`);

  checkHosts(`${KEY}.nodes`, r.nodes, 1);
  const nodes: HostSpec[] = r.nodes.map((h: HostSpec) => ({ name: h.name, address: h.address }));
  nodes.forEach((h, i) => checkRules([{ field: `${KEY}.nodes[${i}].address`, given: h.address, ok: inSubnet(h.address, subnet), accepted: `an address inside ${subnet}` }]));
  nodes.forEach((h, i) => {
    if (nodes.findIndex((o) => o.name === h.name) !== i) invalid(`${KEY}.nodes[${i}].name`, h.name, "a name no other node uses");
    if (nodes.findIndex((o) => o.address === h.address) !== i) invalid(`${KEY}.nodes[${i}].address`, h.address, "an address no other node uses");
  });

  const d = WorksPadNodeDefaults;
  const q = r.debconfQuestions ?? {};
  if (typeof q !== "object" || q === null || Array.isArray(q)) invalid(`${KEY}.debconfQuestions`, q, "an object {host, database, user, password} of debconf question names");
  const unknownQ = Object.keys(q).filter((k) => !(QUESTION_KEYS as readonly string[]).includes(k));
  if (unknownQ.length > 0) invalid(`${KEY}.debconfQuestions.${unknownQ[0]}`, q[unknownQ[0]], "no such question (known: host, database, user, password)");
  const questions: WorksPadDebconfQuestions = { ...d.debconfQuestions, ...q };

  const installDir = r.installDir ?? d.installDir;
  const s: ResolvedWorksPadNodeSettings = {
    nodes,
    port: r.port ?? d.port,
    packagePath: r.packagePath,
    packageName: r.packageName ?? d.packageName,
    prerequisites: r.prerequisites ?? [...d.prerequisites],
    microsoftRepo: r.microsoftRepo ?? d.microsoftRepo,
    microsoftRepoKey: r.microsoftRepoKey ?? d.microsoftRepoKey,
    microsoftRepoSource: r.microsoftRepoSource ?? d.microsoftRepoSource,
    debconfQuestions: questions,
    installDir,
    appSettingsPath: r.appSettingsPath ?? (typeof installDir === "string" ? `${installDir.replace(/\/+$/, "")}/${d.appSettingsFile}` : undefined),
    services: r.services ?? [...d.services],
    healthPath: r.healthPath ?? d.healthPath,
    healthTimeoutSeconds: r.healthTimeoutSeconds ?? d.healthTimeoutSeconds,
  };

  const rules: Rule[] = [
    { field: `${KEY}.port`, given: s.port, ok: isPort(s.port), accepted: "a TCP port number 1-65535" },
    { field: `${KEY}.packagePath`, given: s.packagePath, ok: typeof s.packagePath === "string" && s.packagePath.length > 0, accepted: "the path of the vendor .deb on the machine running Pulumi" },
    { field: `${KEY}.packagePath`, given: s.packagePath, ok: isFile(s.packagePath), accepted: `an existing file; no file at ${JSON.stringify(s.packagePath)} on the machine running Pulumi` },
    { field: `${KEY}.packageName`, given: s.packageName, ok: typeof s.packageName === "string" && DEB_PACKAGE.test(s.packageName), accepted: "a Debian package name such as \"workspad\"" },
    { field: `${KEY}.prerequisites`, given: s.prerequisites, ok: Array.isArray(s.prerequisites) && s.prerequisites.every((p) => typeof p === "string" && DEB_PACKAGE.test(p)), accepted: "a list of Debian package names" },
    { field: `${KEY}.microsoftRepo`, given: s.microsoftRepo, ok: typeof s.microsoftRepo === "boolean", accepted: "true or false" },
    { field: `${KEY}.microsoftRepoKey`, given: s.microsoftRepoKey, ok: typeof s.microsoftRepoKey === "string" && (!s.microsoftRepo || s.microsoftRepoKey.includes("-----BEGIN PGP PUBLIC KEY BLOCK-----")), accepted: "an ASCII-armoured PGP public key (required when microsoftRepo is true)" },
    { field: `${KEY}.microsoftRepoSource`, given: s.microsoftRepoSource, ok: typeof s.microsoftRepoSource === "string" && /^deb (\[[^\]\n]*\] )?https?:\/\/\S+ \S+( \S+)+$/.test(s.microsoftRepoSource), accepted: "one apt source line: deb [options] URL SUITE COMPONENT..." },
    { field: `${KEY}.microsoftRepoSource`, given: s.microsoftRepoSource, ok: () => !INSECURE_APT_OPTION.test(s.microsoftRepoSource),
      accepted: "a source whose signatures apt checks: no trusted=yes, allow-insecure, allow-weak, allow-downgrade-to-insecure, check-valid-until=no or check-date=no" },
    { field: `${KEY}.microsoftRepoSource`, given: s.microsoftRepoSource, ok: () => / https:\/\//.test(s.microsoftRepoSource),
      accepted: "an https:// repository URL (plain http:// lets anyone on the path withhold updates or replay old package lists)" },
    { field: `${KEY}.microsoftRepoSource`, given: s.microsoftRepoSource, ok: () => s.microsoftRepoSource.includes(`signed-by=${MICROSOFT_KEY_PATH}`),
      accepted: `a source with [signed-by=${MICROSOFT_KEY_PATH}], the key microsoftRepoKey is written to, so no other trusted key can sign it` },
    ...QUESTION_KEYS.map((k): Rule => ({ field: `${KEY}.debconfQuestions.${k}`, given: questions[k], ok: typeof questions[k] === "string" && DEBCONF_QUESTION.test(questions[k]), accepted: "a debconf question name such as \"workspad/db_host\"" })),
    { field: `${KEY}.installDir`, given: s.installDir, ok: typeof s.installDir === "string" && ABS_PATH.test(s.installDir), accepted: "an absolute directory path of letters, digits and ._+@-, not \"/\"" },
    { field: `${KEY}.installDir`, given: s.installDir, ok: () => !s.installDir.split("/").includes("..") && !SYSTEM_DIRS.some((d) => pathInside(d, s.installDir)),
      accepted: "a directory of the server's own, such as /opt/workspad: not a system directory like /opt, /usr or /etc, no '..'" },
    { field: `${KEY}.installDir`, given: s.installDir, ok: () => !VOLATILE_DIRS.some((d) => pathInside(s.installDir, d)) && !FOREIGN_DIRS.some((d) => pathsOverlap(s.installDir, d)),
      accepted: () => `a directory clear of ${[...VOLATILE_DIRS, ...FOREIGN_DIRS].find((d) => pathsOverlap(s.installDir, d))} (volatile, or another daemon's files)` },
    { field: `${KEY}.appSettingsPath`, given: s.appSettingsPath, ok: typeof s.appSettingsPath === "string" && ABS_PATH.test(s.appSettingsPath) && s.appSettingsPath.endsWith(".json"), accepted: "an absolute path of a .json file" },
    { field: `${KEY}.appSettingsPath`, given: s.appSettingsPath, ok: () => !s.appSettingsPath.split("/").includes("..") && ![...VOLATILE_DIRS, ...FOREIGN_DIRS].some((d) => pathInside(s.appSettingsPath, d)),
      accepted: () => `a file outside ${[...VOLATILE_DIRS, ...FOREIGN_DIRS].find((d) => pathInside(s.appSettingsPath, d)) ?? "'..'"} (volatile, or another daemon's files)` },
    { field: `${KEY}.services`, given: s.services, ok: Array.isArray(s.services) && s.services.length > 0 && s.services.every((u) => typeof u === "string" && UNIT.test(u)), accepted: "a non-empty list of systemd service names (name, name@instance or name.service)" },
    ...(Array.isArray(s.services) ? s.services : []).map((u, i): Rule => ({ field: `${KEY}.services[${i}]`, given: u, ok: () => !isForeignUnit(u),
      accepted: `the WorksPad server's own unit: the component restarts and on destroy disables it, so not one of ${FOREIGN_UNITS.join(", ")}` })),
    { field: `${KEY}.healthPath`, given: s.healthPath, ok: typeof s.healthPath === "string" && URL_PATH.test(s.healthPath), accepted: "a URL path starting with \"/\", without spaces or quotes" },
    { field: `${KEY}.healthTimeoutSeconds`, given: s.healthTimeoutSeconds, ok: Number.isInteger(s.healthTimeoutSeconds) && s.healthTimeoutSeconds >= 1 && s.healthTimeoutSeconds <= 3600, accepted: "a whole number of seconds 1-3600" },
  ];
  checkRules(rules);
  return s;
}
