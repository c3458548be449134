// The application user's command rules: what Redis 7.0's ACL SETUSER accepts, and which admin
// commands a list of rules ends up granting. Pure; the daemon test compares it with ACL DRYRUN.
import { ADMIN_COMMANDS, REDIS_ACL_CATEGORIES, REDIS_COMMANDS } from "./commands";

/** `+name`, `-name`, `+name|sub`, `+@category`, `-@category` (key and channel patterns are not command rules). */
const RULE = /^([+-])(@?)([a-z][a-z0-9_-]*(?:\|[a-z][a-z0-9_-]*)?)$/;

/** Why Redis would refuse this command rule (or why hastack does), or undefined when it is accepted. */
export function aclRuleProblem(rule: unknown): string | undefined {
  if (rule === "allcommands" || rule === "nocommands") return undefined;
  const m = typeof rule === "string" ? RULE.exec(rule) : null;
  if (!m) return "a command rule: +command, -command, +command|subcommand, +@category, -@category, allcommands or nocommands (keys and channels are always ~* and &*)";
  const [, , at, name] = m;
  if (at) return name === "all" || REDIS_ACL_CATEGORIES.includes(name) ? undefined : `a category Redis 7.0 knows (all, ${REDIS_ACL_CATEGORIES.join(", ")})`;
  // Redis 7.0 still reads `+select|0` as "first argument"; that form is deprecated, so only real subcommands pass
  return REDIS_COMMANDS.has(name) ? undefined : "a command or command|subcommand that Redis 7.0 knows (COMMAND LIST)";
}

/** Whether `rules`, applied in order to a user that starts with no commands, leave `command` (or `command|sub`) allowed. */
export function aclAllows(rules: readonly string[], command: string, categories: readonly string[]): boolean {
  let allowed = false;
  for (const r of rules) {
    if (r === "allcommands") { allowed = true; continue; }
    if (r === "nocommands") { allowed = false; continue; }
    const m = RULE.exec(r);
    if (!m) continue;
    const [, sign, at, name] = m;
    const hits = at ? name === "all" || categories.includes(name)
      // a container rule (+config) covers each of its subcommands
      : name === command || command.startsWith(`${name}|`);
    if (hits) allowed = sign === "+";
  }
  return allowed;
}

/** The admin commands (see ADMIN_COMMANDS) these rules grant, in table order. */
export function grantedAdminCommands(rules: readonly string[]): string[] {
  return Object.entries(ADMIN_COMMANDS).filter(([c, cats]) => aclAllows(rules, c, cats)).map(([c]) => c);
}
