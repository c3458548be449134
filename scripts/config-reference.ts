// Prints the configuration reference (one table per stack config key) from the Settings
// interfaces' JSDoc, so the README cannot drift from the code: `npx ts-node scripts/config-reference.ts`.
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";

const SECTIONS: [key: string, file: string, iface: string][] = [
  ["hastack:postgres", "components/patroniCluster/args.ts", "PatroniClusterSettings"],
  ["hastack:proxy", "components/pgBouncerVipPair/args.ts", "PgBouncerVipPairSettings"],
  ["hastack:workspad", "components/worksPadNode/args.ts", "WorksPadNodeSettings"],
  ["hastack:nginx", "components/nginxBalancer/args.ts", "NginxBalancerSettings"],
  ["hastack:redis", "components/redisSentinelGroup/args.ts", "RedisSentinelGroupSettings"],
  // the list form: each entry takes the settings above but `enabled`, plus these
  ["hastack:redis[]", "components/redisSentinelGroup/args.ts", "RedisGroupSettings"],
  ["hastack:redis[].nodes[]", "components/redisSentinelGroup/args.ts", "RedisNodeSpec"],
  ["hastack:firewall", "components/firewall/args.ts", "FirewallSettings"],
  ["hastack:backup", "components/pgBackRest/args.ts", "PgBackRestSettings"],
  ["hastack:policy", "policy/settings.ts", "PolicySettings"],
];

const clean = (s: string) => s.replace(/\s+/g, " ").replace(/\|/g, "\\|").trim();

export function configReference(repo = path.resolve(__dirname, "..")): string {
  const out: string[] = [];
  for (const [key, file, iface] of SECTIONS) {
    const src = ts.createSourceFile(file, fs.readFileSync(path.join(repo, file), "utf8"), ts.ScriptTarget.ES2020, true);
    const decl = src.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === iface);
    if (!decl) throw new Error(`${iface} not found in ${file}`);
    out.push(`#### \`${key}\``, "", "| setting | default | meaning |", "| --- | --- | --- |");
    for (const m of decl.members) {
      if (!ts.isPropertySignature(m) || !m.name) continue;
      const docs = ts.getJSDocCommentsAndTags(m).filter(ts.isJSDoc);
      const text = docs.map((j) => ts.getTextOfJSDocComment(j.comment) ?? "").join(" ");
      const def = docs.flatMap((j) => j.tags ?? []).find((t) => t.tagName.text === "default");
      const defText = def ? clean(ts.getTextOfJSDocComment(def.comment) ?? "") : m.questionToken ? "(none)" : "**required**";
      out.push(`| \`${m.name.getText(src)}\` | ${defText} | ${clean(text)} |`);
    }
    out.push("");
  }
  return out.join("\n");
}

if (require.main === module) process.stdout.write(configReference());
