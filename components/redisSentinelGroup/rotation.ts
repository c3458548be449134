// Rotation of a Redis group's passwords through `pulumi up` (pure rendering): hastack's own password
// (hastack:passwords.redisSentinel or a group's `sentinel`: Redis' `default` user, replication's masterauth,
// Sentinel's requirepass, and the seed of Sentinel's and HAProxy's check logins) and the application's.
//
// Written as files alone, a new password would reach each node's Redis at its rolling restart while the other
// nodes' replicas, Sentinels and HAProxy checks still log in with the old one: replication breaks, Sentinels see
// a restarted master as down and fail over, HAProxy marks it down. Redis 7.0 lets an ACL user hold several
// passwords, and so does Sentinel's `default` user (Sentinel 7.0 has ACL SETUSER, not CONFIG SET), so one up runs
//   1. add (every node, before anything else): each user accepts its new password as well as the old one;
//   2. switch (every node, once every node accepts both): replicas' masterauth, Sentinel's auth-pass to Redis and
//      the password Sentinels log in to each other with (sentinel-pass) take the new values at runtime;
//   then the files are written as before (HAProxy reloads with its new check login before any Redis restarts),
//   the Redis restart one at a time on the new files;
//   3. drop (every node, after the group is healthy): each user keeps its new password only.
// Sentinel-to-Sentinel logins use a password derived from hastack's own (sentinelPeerPass): Sentinel writes
// `sentinel-pass` back to sentinel.conf unquoted, and its requirepass (which it would use otherwise) cannot
// change at runtime. The commands reach redis-cli on its stdin (never argv); passwords are sha256 hashes there,
// but masterauth, which Redis needs in clear, and the derived hex logins.
import { createHash, createHmac } from "crypto";
import { shq } from "../common/shell";
import { CHECK_USER, SENTINEL_USER, appPasswordHashes, checkAuthPass, redisQuote, sentinelAuthPass } from "./render";

/** The password Sentinels log in to each other with once a rotation ran (hex: written unquoted by Sentinel). */
export function sentinelPeerPass(internalPassword: string): string {
  return createHmac("sha256", internalPassword).update("hastack-sentinel-peer").digest("hex");
}

export type RotationPhase = "add" | "switch" | "drop";

export interface RotationParams {
  readonly appUser: string;
  readonly masterName: string;
}

const hashOf = (v: string) => `#${createHash("sha256").update(v).digest("hex")}`;

/**
 * The step's stdin for one phase: `redis <command>` and `sentinel <command>` lines for the local daemons, and
 * `new <password>` (the login to try when the password file's is refused: a re-run after the files changed).
 * A secret: the caller passes it as a secret stdin.
 */
export function rotationStdin(phase: RotationPhase, p: RotationParams, internal: string, app: string, appPrevious?: string): string {
  // the application's previous password, when given, stays accepted through the drop (clients move at their own pace)
  const users: [string, string][] = [["default", hashOf(internal)], [p.appUser, appPasswordHashes(app, appPrevious)], [SENTINEL_USER, hashOf(sentinelAuthPass(internal))],
    [CHECK_USER, hashOf(checkAuthPass(internal))]];
  // Sentinel's default user: hastack's scripts log in with the password itself, other Sentinels with the derived one
  const sentinelDefault = `${hashOf(internal)} ${hashOf(sentinelPeerPass(internal))}`;
  const lines = phase === "add" ? [
    ...users.map(([u, hashes]) => `redis ACL SETUSER ${u} ${hashes}`),
    `sentinel ACL SETUSER default ${sentinelDefault}`,
    // persisted now: a Sentinel restarted before the drop must still accept both
    "sentinel SENTINEL FLUSHCONFIG",
  ] : phase === "switch" ? [
    `redis CONFIG SET masterauth ${redisQuote(internal)}`,
    `sentinel SENTINEL SET ${p.masterName} auth-pass ${sentinelAuthPass(internal)}`,
    `sentinel SENTINEL CONFIG SET sentinel-pass ${sentinelPeerPass(internal)}`,
  ] : [
    ...users.map(([u, hashes]) => `redis ACL SETUSER ${u} resetpass ${hashes}`),
    `sentinel ACL SETUSER default resetpass ${sentinelDefault}`,
    "sentinel SENTINEL FLUSHCONFIG",
  ];
  if (/[\r\n]/.test(internal)) throw new Error("render: a Redis password cannot hold a line break");
  return [...lines, `new ${internal}`, ""].join("\n");
}

/**
 * The command on one node, the same for every phase: the stdin's `redis` lines go to the local Redis, its
 * `sentinel` lines to the local Sentinel, each logged in as `default` with the password file's password (or the
 * new one). Every reply must be OK. A node with no password file yet (a first deploy, a node being added) or a
 * daemon that does not run is left alone: it starts later on the new files. Replies are not echoed (an error
 * can quote its command).
 */
export function rotationScript(port: number, sentinelPort: number, passFile: string, host = "127.0.0.1"): string {
  return [
    `if [ ! -s ${shq(passFile)} ]; then cat >/dev/null; echo 'no password file yet: nothing to rotate here'; exit 0; fi`,
    "T=$(mktemp -d /tmp/hastack-redis-rotate.XXXXXX)",
    "trap 'rm -rf \"$T\"' EXIT",
    "cat > \"$T/in\"",
    "sed -n 's/^new //p' \"$T/in\" > \"$T/new\"",
    // $1 port, $2 section, $3 what: log in with the current password, else the new one, then send the section
    "apply() {",
    "  sed -n \"s/^$2 //p\" \"$T/in\" > \"$T/cmds\"",
    "  [ -s \"$T/cmds\" ] || return 0",
    "  running=''",
    `  for f in ${shq(passFile)} "$T/new"; do`,
    "    REDISCLI_AUTH=$(cat \"$f\"); export REDISCLI_AUTH",
    `    pong=$(timeout 5 redis-cli -h ${host} -p "$1" PING 2>/dev/null | tr -d '\\r') || pong=''`,
    "    [ -n \"$pong\" ] && running=yes",
    "    [ \"$pong\" = PONG ] && break",
    "  done",
    "  if [ -z \"$running\" ]; then echo \"$3 does not run: it starts on the new files\"; return 0; fi",
    "  [ \"$pong\" = PONG ] || { echo \"$3 refuses both the current and the new password\" >&2; exit 1; }",
    `  out=$(timeout 30 redis-cli -h ${host} -p "$1" < "$T/cmds" 2>/dev/null | tr -d '\\r') || true`,
    "  n=$(wc -l < \"$T/cmds\"); ok=$(printf '%s\\n' \"$out\" | grep -cx OK || true)",
    "  [ \"$ok\" -eq \"$n\" ] || { echo \"$3 accepted $ok of $n rotation commands\" >&2; exit 1; }",
    "  echo \"$3: $n commands applied\"",
    "}",
    `apply ${port} redis Redis`,
    `apply ${sentinelPort} sentinel Sentinel`,
  ].join("\n");
}
