// Rotation of the PostgreSQL system roles' passwords (superuser, replication, rewind) through `pulumi up`
// (pure rendering). Patroni sets them only at bootstrap, so the leader's roles change first (the shipped
// `role-passwords.py`), and every member's new Patroni config is written only after that step.
import * as fs from "fs";
import * as path from "path";
import { shq } from "../common";
import { ResolvedPatroniClusterSettings } from "./args";
import { PATRONI_CONFIG_PATH, SOCKET_DIR } from "./render";

export interface SystemPasswords { readonly superuser: string; readonly replication: string; readonly rewind: string }

/** The step's stdin: role names and their passwords (a secret; JSON, read by the script, never in argv). */
export function rolePasswordsStdin(s: ResolvedPatroniClusterSettings, pw: SystemPasswords): string {
  const roles = [[s.superuser, pw.superuser], [s.replicationUser, pw.replication], [s.rewindUser, pw.rewind]]
    .map(([name, password]) => ({ name, password }));
  return JSON.stringify({ superuser: s.superuser, roles });
}

const HEREDOC_END = "HASTACK_ROLE_PASSWORDS_PY";

export function rolePasswordsPython(): string {
  return fs.readFileSync(path.join(__dirname, "role-passwords.py"), "utf8");
}

/**
 * The command on one member: only the read-write leader (its REST API answers 200 on /primary) acts; on any
 * other member, and before Patroni first runs (first deploy: bootstrap sets the passwords), it does nothing.
 * The script travels as python's argument from a quoted here-document; stdin stays free for the passwords.
 * Patroni's config is postgres's own 0600 file, which the script reads for the password in use now.
 */
export function rolePasswordsCommand(rest: string, pgPort: number, configPath: string = PATRONI_CONFIG_PATH, socketDir: string = SOCKET_DIR): string {
  const py = rolePasswordsPython();
  if (py.split("\n").includes(HEREDOC_END)) throw new Error("render: the role-passwords script contains its here-document delimiter");
  return [
    `code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 ${shq(`${rest}/primary`)} || true)`,
    `if [ "$code" != 200 ]; then cat >/dev/null; echo "not the read-write leader ($code): nothing to do"; exit 0; fi`,
    // as postgres: pg_hba lets the postgres superuser in over the socket by peer only; another superuser by password
    "cd /tmp",
    `exec runuser -u postgres -- /usr/bin/python3 -c "$(cat <<'${HEREDOC_END}'`,
    py.trimEnd(),
    HEREDOC_END,
    `)" ${shq(configPath)} ${shq(socketDir)} ${pgPort}`,
  ].join("\n");
}
