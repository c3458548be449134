import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

/** Names of the passwords a datacenter uses; each may be supplied under `hastack:passwords.<name>`. */
export const PASSWORD_NAMES = [
  "postgresSuperuser", "postgresReplication", "postgresRewind", "postgresApp",
  "proxyKeepalived", "nginxKeepalived", "redis", "redisSentinel", "redisKeepalived", "patroniRest", "etcdRoot", "etcdPatroni",
  // the pgBackRest repository's encryption passphrase; generated (and used) only when hastack:backup is set
  "pgbackrestCipher",
] as const;
export type PasswordName = (typeof PASSWORD_NAMES)[number];

/**
 * Passwords only ever supplied, never generated: the application's previous Redis password, accepted beside
 * hastack:passwords.redis while clients move to a rotated one (removed in a later up).
 */
export const OPTIONAL_PASSWORD_NAMES = ["redisPrevious"] as const;
/** A named Redis group's counterpart, under hastack:passwords.redisGroups.<group>. */
export const REDIS_GROUP_OPTIONAL_KINDS = ["appPrevious"] as const;

/** The passwords of one named Redis group (list form of hastack:redis): the application's, hastack's own (Sentinel, replication), VRRP's. */
export const REDIS_GROUP_PASSWORD_KINDS = ["app", "sentinel", "keepalived"] as const;
export type RedisGroupPasswordKind = (typeof REDIS_GROUP_PASSWORD_KINDS)[number];

/** keepalived reads only the first 8 characters of auth_pass, so its passwords are exactly 8. */
const KEEPALIVED: ReadonlySet<PasswordName> = new Set(["proxyKeepalived", "nginxKeepalived", "redisKeepalived"]);

/**
 * A password from stack config when given, otherwise a RandomPassword. Either way a secret.
 * Generated database passwords include characters that break naive quoting (/ = ' " $), so
 * every consumer is exercised with them; no backslash, because debconf (the WorksPad preseed)
 * cannot carry a trailing one. Supplied passwords may contain any printable character.
 */
export function password(name: PasswordName, supplied: Partial<Record<PasswordName, string>> | undefined,
  prefix: string, opts: pulumi.CustomResourceOptions): pulumi.Output<string> {
  const given = supplied?.[name];
  if (given !== undefined) return pulumi.secret(given);
  const keepalived = KEEPALIVED.has(name);
  const pw = new random.RandomPassword(`${prefix}-${name}`, keepalived
    ? { length: 8, special: false }
    : { length: 32, special: true, overrideSpecial: "/='\"$-_.!" }, opts);
  return pulumi.secret(pw.result);
}

/** The application's previous Redis password of the single group (`redisPrevious`) or of a named one (`redisGroups.<g>.appPrevious`), when given. */
export function previousRedisPassword(supplied: unknown, group?: string): pulumi.Output<string> | undefined {
  const p = supplied as { redisPrevious?: unknown; redisGroups?: Record<string, Record<string, unknown>> } | undefined;
  const given = group === undefined ? p?.redisPrevious : p?.redisGroups?.[group]?.appPrevious;
  return typeof given === "string" ? pulumi.secret(given) : undefined;
}

/**
 * A named Redis group's password: `hastack:passwords.redisGroups.<group>.<kind>` when given, otherwise a
 * RandomPassword of the group's own, so no two groups share a login and a group added later changes no other.
 */
export function redisGroupPassword(group: string, kind: RedisGroupPasswordKind, supplied: unknown, prefix: string,
  opts: pulumi.CustomResourceOptions): pulumi.Output<string> {
  const given = (supplied as { redisGroups?: Record<string, Record<string, unknown>> } | undefined)?.redisGroups?.[group]?.[kind];
  if (typeof given === "string") return pulumi.secret(given);
  const pw = new random.RandomPassword(`${prefix}-redis-${group}-${kind}`, kind === "keepalived"
    ? { length: 8, special: false }
    : { length: 32, special: true, overrideSpecial: "/='\"$-_.!" }, opts);
  return pulumi.secret(pw.result);
}
