// Regenerates the generated parts of README.md: the configuration reference and the figures.
import * as fs from "fs";
import * as path from "path";
import { configReference } from "./config-reference";

const REPO = path.resolve(__dirname, "..");

export function withBlock(text: string, name: string, body: string): string {
  const re = new RegExp(`(<!-- ${name}:start -->)[\\s\\S]*?(<!-- ${name}:end -->)`);
  if (!re.test(text)) throw new Error(`README has no ${name} block`);
  return text.replace(re, `$1\n${body.trim()}\n$2`);
}

export function renderReadme(current: string): string {
  let t = withBlock(current, "config-reference", configReference(REPO));
  const figures = ["bench/results.md", "bench/setup-times.md"].map((f) => path.join(REPO, f)).filter(fs.existsSync)
    .map((f) => fs.readFileSync(f, "utf8").replace(/^# /gm, "### ")).join("\n");
  if (figures) t = withBlock(t, "figures", figures);
  return t;
}

if (require.main === module) {
  const f = path.join(REPO, "README.md");
  fs.writeFileSync(f, renderReadme(fs.readFileSync(f, "utf8")));
}
