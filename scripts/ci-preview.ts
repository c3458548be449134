// The merge-request pipeline's preview (scripts/ci-preview.sh runs it; .gitlab-ci.yml runs that):
// `pulumi preview --diff` of one stack of this project against the stack's shared state, through the
// Automation API (the only way the CLI runs this program where no Node.js language host exists, and
// the same with a normal Pulumi installation). Writes, in OUT_DIR:
//   preview-STACK.txt  the whole `--diff` text, as the CLI prints it (secrets shown as [secret])
//   preview-STACK.md   the note for the merge request: counts and the changed resources, never a value
//
//   ts-node scripts/ci-preview.ts --stack NAME [--out-dir DIR]
//   PULUMI_BACKEND_URL            the stack's shared backend (required: no silent fall-back to a local one)
//   PULUMI_CONFIG_PASSPHRASE_FILE secrets passphrase (or PULUMI_CONFIG_PASSPHRASE), and the backend's credentials
//   HASTACK_PROJECT_DIR           where Pulumi.yaml and Pulumi.NAME.yaml are (default: this repo)
import * as fs from "fs";
import * as path from "path";
import { EngineEvent, LocalWorkspace, PulumiCommand } from "@pulumi/pulumi/automation";
import { changes, enginePaths, pulumiRoot, REPO, withPolicyPack } from "../engine/automation";

/** Rows of the note before the rest is only counted; a reviewer reads the whole diff in the artifact. */
export const NOTE_MAX_ROWS = 30;

export interface PlannedStep {
  readonly op: string;
  readonly urn: string;
  readonly type: string;
  /** Top-level inputs that change (names only). */
  readonly diffs?: readonly string[];
}

// a replacement is reported as three steps; the note shows it once, as "replace"
const HIDDEN_OPS = new Set(["same", "read", "create-replacement", "delete-replaced", "discard-replaced"]);
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** The merge-request note: what changes, by resource and input name. Pure; holds no input value. */
export function renderNote(stack: string, summary: Record<string, number>, steps: readonly PlannedStep[], fullFile: string): string {
  const counts = Object.entries(summary).map(([op, n]) => `${n} to ${op}`).join(", ");
  const lines = [`#### \`pulumi preview --diff\` of stack \`${stack}\`: ${counts || "no changes"}`, ""];
  const shown = steps.filter((s) => !HIDDEN_OPS.has(s.op));
  if (shown.length) {
    // changes to what exists first: those are what a reviewer must weigh; creates are grouped when many
    const existing = shown.filter((s) => s.op !== "create");
    const creates = shown.filter((s) => s.op === "create");
    const rows = existing.map((s) => `| ${s.op} | \`${cell(s.urn.split("::").pop()!)}\` | ${cell(s.type)} | ${cell((s.diffs ?? []).join(", "))} |`);
    if (existing.length + creates.length <= NOTE_MAX_ROWS) {
      rows.push(...creates.map((s) => `| create | \`${cell(s.urn.split("::").pop()!)}\` | ${cell(s.type)} | |`));
    } else {
      const byType = new Map<string, number>();
      for (const s of creates) byType.set(s.type, (byType.get(s.type) ?? 0) + 1);
      rows.push(...[...byType].sort((a, b) => b[1] - a[1]).map(([type, n]) => `| create | ${n} resource${n === 1 ? "" : "s"} | ${cell(type)} | |`));
    }
    lines.push("| op | resource | type | changed inputs |", "| --- | --- | --- | --- |", ...rows.slice(0, NOTE_MAX_ROWS));
    if (rows.length > NOTE_MAX_ROWS) lines.push("", `… and ${rows.length - NOTE_MAX_ROWS} more rows.`);
    lines.push("");
  }
  lines.push(`Every property of every change: job artifact \`${fullFile}\`.`);
  return lines.join("\n") + "\n";
}

export interface CiPreviewResult { readonly fullFile: string; readonly noteFile: string; readonly note: string }

export async function ciPreview(stackName: string, outDir: string, workDir = process.env.HASTACK_PROJECT_DIR || REPO): Promise<CiPreviewResult> {
  if (!process.env.PULUMI_BACKEND_URL) {
    throw new Error("PULUMI_BACKEND_URL is not set: the preview must read the stack's shared state (e.g. s3://bucket?region=…), see README \"Sharing state\"");
  }
  const pulumiCommand = await PulumiCommand.get({ root: pulumiRoot() });
  const envVars = { PATH: [...enginePaths(), process.env.PATH].join(":"), PULUMI_SKIP_UPDATE_CHECK: "true" };
  const program = async () => (await import("../stacks/program")).program();
  // select, never create: a preview must not add a stack to the team's backend
  // the policy pack checks this preview as it checks every up (README "Policies")
  const stack = withPolicyPack(await LocalWorkspace.selectStack({ stackName, projectName: "hastack", program }, { workDir, pulumiCommand, envVars }));
  let text = "";
  const steps: PlannedStep[] = [];
  const pv = await stack.preview({
    diff: true, color: "never",
    onOutput: (s) => { text += s; },
    onEvent: (ev: EngineEvent) => {
      const m = ev.resourcePreEvent?.metadata;
      if (m) steps.push({ op: m.op, urn: m.urn, type: m.type, diffs: m.diffs });
    },
  });
  fs.mkdirSync(outDir, { recursive: true });
  const fullFile = path.join(outDir, `preview-${stackName}.txt`), noteFile = path.join(outDir, `preview-${stackName}.md`);
  fs.writeFileSync(fullFile, text || pv.stdout);
  const note = renderNote(stackName, changes(pv.changeSummary), steps, path.basename(fullFile));
  fs.writeFileSync(noteFile, note);
  return { fullFile, noteFile, note };
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const stack = arg("--stack");
  if (!stack || argv.length % 2) throw new Error("usage: ci-preview.ts --stack NAME [--out-dir DIR]");
  const r = await ciPreview(stack, path.resolve(arg("--out-dir") ?? "preview"));
  process.stdout.write(r.note);
  console.error(`ci-preview: wrote ${r.fullFile} and ${r.noteFile}`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    const msg = err instanceof Error ? err.message : String(err);
    // a failed `pulumi preview` prints its own output in the message; it holds no secret value (the CLI masks them)
    console.error(`ci-preview: FAILED: ${msg}`);
    process.exitCode = 1;
  });
}
