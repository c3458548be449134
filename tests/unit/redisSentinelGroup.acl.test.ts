import * as fc from "fast-check";
import { aclAllows, aclRuleProblem, grantedAdminCommands } from "../../components/redisSentinelGroup/acl";
import { ADMIN_COMMANDS, REDIS_COMMANDS } from "../../components/redisSentinelGroup/commands";

describe("the application user's ACL rules (pure model; tests/daemons compares it with ACL DRYRUN)", () => {
  it("the default rules grant no admin command and keep GET, SET, PUBLISH, SUBSCRIBE", () => {
    const rules = ["+@all", "-@dangerous", "+info"];
    expect(grantedAdminCommands(rules)).toEqual([]);
    for (const c of ["get", "set", "publish", "subscribe", "info"]) expect([c, aclAllows(rules, c, [])]).toEqual([c, true]);
  });
  it("a container rule covers its subcommands, and a later subcommand rule overrides it", () => {
    expect(aclAllows(["+config"], "config|set", ADMIN_COMMANDS["config|set"])).toBe(true);
    expect(aclAllows(["+config", "-config|set"], "config|set", ADMIN_COMMANDS["config|set"])).toBe(false);
    expect(aclAllows(["+config", "-config|set"], "config|get", ADMIN_COMMANDS["config|get"])).toBe(true);
    expect(aclAllows(["-@all", "+@admin", "-config"], "config|rewrite", ADMIN_COMMANDS["config|rewrite"])).toBe(false);
  });
  it("+@all grants every admin command; nocommands takes them back", () => {
    expect(grantedAdminCommands(["+@all"])).toEqual(Object.keys(ADMIN_COMMANDS));
    expect(grantedAdminCommands(["+@all", "nocommands", "+get"])).toEqual([]);
  });
  it("every admin command is a name Redis knows", () => {
    for (const c of Object.keys(ADMIN_COMMANDS)) expect([c, REDIS_COMMANDS.has(c)]).toEqual([c, true]);
  });
  it("accepts exactly the rule shapes Redis' ACL SETUSER reads for commands", () => {
    for (const ok of ["+@all", "-@dangerous", "+get", "-client|kill", "+client|setname", "allcommands", "nocommands"]) expect([ok, aclRuleProblem(ok)]).toEqual([ok, undefined]);
    for (const bad of ["+@nope", "+nope", "get", "+GET", "~*", "&*", "on", ">pw", "+get ~*", "", "+config|nope"]) expect([bad, aclRuleProblem(bad)]).not.toEqual([bad, undefined]);
    fc.assert(fc.property(fc.string(), (r) => {
      // whatever is accepted is one word Redis reads as a command rule, nothing to split or quote
      if (aclRuleProblem(r) === undefined) expect(r).toMatch(/^(allcommands|nocommands|[+-]@?[a-z][a-z0-9_|-]*)$/);
    }));
  });
});
