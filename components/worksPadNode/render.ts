import { shq } from "../common";
import { WorksPadDebconfQuestions } from "./args";

/** Where the .deb is copied on each host. */
export const PACKAGE_CACHE_DIR = "/var/cache/hastack";
/**
 * The .deb's name on the host: fixed, never the local file's name, so a `packagePath` whose file
 * name holds quotes or `$(…)` cannot reach a root shell on the app nodes.
 */
export const REMOTE_DEB = `${PACKAGE_CACHE_DIR}/workspad.deb`;
/** Records the sha256 of the .deb last installed, so an identical re-run is a no-op. */
export const INSTALLED_HASH_DIR = "/var/lib/hastack";
export const MICROSOFT_KEY_PATH = "/usr/share/keyrings/microsoft-prod.asc";
export const MICROSOFT_SOURCE_PATH = "/etc/apt/sources.list.d/microsoft-prod.list";
/** Commands the component's own steps run on the host, installed with the prerequisites. */
export const TOOL_PACKAGES = ["curl", "openssl", "python3"];

/** The database the server connects to, as plain (resolved) values. */
export interface DatabaseTarget {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
}

/**
 * One value of an Npgsql (ADO.NET) connection string. Values with `;`, `=`, quotes, surrounding
 * whitespace, or empty ones are double-quoted with `"` doubled, as DbConnectionStringBuilder parses them.
 * https://learn.microsoft.com/en-us/dotnet/framework/data/adonet/connection-string-syntax
 */
export function npgsqlValue(v: string): string {
  if (v === "" || v !== v.trim() || /[;="']/.test(v)) return `"${v.replace(/"/g, '""')}"`;
  return v;
}

/** `Host=…;Port=…;Database=…;Username=…;Password=…` for `ConnectionStrings.WorksPadDatabase`. */
export function renderConnectionString(db: DatabaseTarget): string {
  const parts: [string, string][] = [
    ["Host", db.host], ["Port", String(db.port)], ["Database", db.database], ["Username", db.user], ["Password", db.password],
  ];
  return parts.map(([k, v]) => `${k}=${npgsqlValue(v)}`).join(";");
}

/**
 * `debconf-set-selections` input answering the vendor installer's questions. A value is the rest of
 * its line and a trailing backslash continues the line, so neither a line break nor a final `\` can be
 * represented: such a value is refused rather than silently changed.
 */
export function renderDebconfSelections(packageName: string, q: WorksPadDebconfQuestions, db: DatabaseTarget): string {
  const answers: [string, string, string, string][] = [
    ["host", q.host, "string", `${db.host}:${db.port}`],
    ["database", q.database, "string", db.database],
    ["user", q.user, "string", db.user],
    ["password", q.password, "password", db.password],
  ];
  return answers.map(([what, question, type, value]) => {
    if (/[\r\n\0]/.test(value) || value.endsWith("\\")) {
      throw new Error(`The WorksPad database ${what} cannot be preseeded with debconf: it contains a line break or ends with "\\".`);
    }
    return `${packageName} ${question} ${type} ${value}\n`;
  }).join("");
}

/** Preseed script: the selections arrive on stdin (they hold the password). */
export function renderPreseedScript(): string {
  return [
    "command -v debconf-set-selections >/dev/null || { echo 'debconf-set-selections is missing' >&2; exit 1; }",
    "debconf-set-selections",
    "echo preseeded",
  ].join("\n");
}

/** Apt source and key for the Microsoft repository (only when `microsoftRepo` is on). */
export function renderMicrosoftSource(sourceLine: string): string {
  return `# written by hastack (WorksPadNode): packages.microsoft.com\n${sourceLine}\n`;
}

/**
 * Installs the copied .deb non-interactively with its dependencies. Skips when this very file
 * (by sha256) is already installed at its version; otherwise (re)installs, keeping changed config files.
 */
export function renderInstallScript(remoteDeb: string, packageName: string): string {
  const deb = shq(remoteDeb);
  const stamp = shq(`${INSTALLED_HASH_DIR}/${packageName}.deb.sha256`);
  return [
    "export DEBIAN_FRONTEND=noninteractive",
    `want_hash=$(sha256sum ${deb} | cut -d' ' -f1)`,
    `want_version=$(dpkg-deb -f ${deb} Version)`,
    `[ "$(dpkg-deb -f ${deb} Package)" = ${shq(packageName)} ] || { echo ${shq(`${remoteDeb} is not the package ${packageName}`)} >&2; exit 1; }`,
    `have_version=$(dpkg-query -W -f='\${Status} \${Version}' ${shq(packageName)} 2>/dev/null | sed -n 's/^install ok installed //p')`,
    `if [ "$have_version" = "$want_version" ] && [ "$(cat ${stamp} 2>/dev/null)" = "$want_hash" ]; then echo ${shq(`already installed: ${packageName}`)} "$want_version"; exit 0; fi`,
    `install="apt-get install -y -qq -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"`,
    // dependencies may need package lists the host does not have yet
    `$install ${deb} || { apt-get update -qq && $install ${deb}; }`,
    `mkdir -p ${shq(INSTALLED_HASH_DIR)}`,
    `echo "$want_hash" > ${stamp}`,
    `echo ${shq(`installed: ${packageName}`)} "$want_version"`,
  ].join("\n");
}

/**
 * Sets `ConnectionStrings.WorksPadDatabase` with a JSON parser; the connection string arrives on stdin.
 * The file is swapped atomically, keeps its owner and loses any group-write/world bits (it now holds a password).
 */
export function renderSetConnectionStringScript(appSettingsPath: string): string {
  const py = [
    'import json,os,sys,tempfile',
    'p=sys.argv[1];cs=sys.stdin.read()',
    'd=json.load(open(p,encoding="utf-8-sig"))',
    'c=d.get("ConnectionStrings")',
    'c=c if isinstance(c,dict) else {}',
    'd["ConnectionStrings"]=c',
    'st=os.stat(p);m=st.st_mode&0o640',
    'same=c.get("WorksPadDatabase")==cs and (st.st_mode&0o777)==m',
    'c["WorksPadDatabase"]=cs',
    'fd,t=tempfile.mkstemp(dir=os.path.dirname(p),prefix=".hastack.")',
    'f=os.fdopen(fd,"w",encoding="utf-8");json.dump(d,f,indent=2);f.write(chr(10));f.close()',
    'os.chmod(t,m);os.chown(t,st.st_uid,st.st_gid)',
    'os.unlink(t) if same else os.replace(t,p)',
    'print("unchanged" if same else "written")',
  ].join("\n");
  const p = shq(appSettingsPath);
  return [
    `[ -f ${p} ] || { echo ${shq(`${appSettingsPath} is missing: is the package installed?`)} >&2; exit 1; }`,
    `python3 -c ${shq(py)} ${p}`,
  ].join("\n");
}

/** Restart every unit of the server (run only when a content hash changed). */
export function renderRestartScript(services: readonly string[]): string {
  return `systemctl restart ${services.map(shq).join(" ")}`;
}

/** The health probe: exactly HTTP 200 from the node itself (its certificate is not for 127.0.0.1). */
export function renderHealthProbe(port: number, healthPath: string): string {
  return `test "$(curl -sk -o /dev/null -m 5 -w '%{http_code}' ${shq(`https://127.0.0.1:${port}${healthPath}`)})" = 200`;
}

/** Reject a file that is not a PEM certificate (run by putFile with $NEW). */
export const VALIDATE_CERT = `openssl x509 -noout -in "$NEW"`;
/** Reject a file that is not a PEM private key (run by putFile with $NEW). */
export const VALIDATE_KEY = `openssl pkey -noout -in "$NEW"`;
