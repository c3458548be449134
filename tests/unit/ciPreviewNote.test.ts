// The merge-request note of the pipeline's preview job (scripts/ci-preview.ts renderNote): what a
// reviewer reads first, so it stays short, names what changes and never shows a value.
import { NOTE_MAX_ROWS, PlannedStep, renderNote } from "../../scripts/ci-preview";

const urn = (name: string, type = "command:remote:Command") => `urn:pulumi:dc1::hastack::hastack:stack:Datacenter$${type}::${name}`;
const step = (op: string, name: string, diffs?: string[], type = "command:remote:Command"): PlannedStep => ({ op, urn: urn(name, type), type, diffs });

describe("the preview note on a merge request", () => {
  it("lists an update with the names of the inputs that change, and the counts in its title", () => {
    const note = renderNote("dc1", { update: 1 }, [step("same", "dc-db-pg1-packages"), step("update", "dc-db-pg1-patroni-cfg", ["create", "triggers"])], "preview-dc1.txt");
    expect(note.split("\n")[0]).toBe("#### `pulumi preview --diff` of stack `dc1`: 1 to update");
    expect(note).toContain("| update | `dc-db-pg1-patroni-cfg` | command:remote:Command | create, triggers |");
    expect(note).not.toContain("dc-db-pg1-packages");
    expect(note).toContain("job artifact `preview-dc1.txt`");
  });

  it("shows a replacement once, not as its three engine steps", () => {
    const steps = ["create-replacement", "replace", "delete-replaced"].map((op) => step(op, "dc-app-wp1-site", ["triggers"]));
    const rows = renderNote("dc1", { replace: 1 }, steps, "f").split("\n").filter((l) => l.includes("dc-app-wp1-site"));
    expect(rows).toEqual(["| replace | `dc-app-wp1-site` | command:remote:Command | triggers |"]);
  });

  it("says no changes, with no table, when nothing changes", () => {
    const note = renderNote("dc2", {}, [step("same", "a"), step("read", "b", undefined, "pulumi:pulumi:StackReference")], "f");
    expect(note).toContain("of stack `dc2`: no changes");
    expect(note).not.toContain("| op |");
  });

  it("groups many creates by type but keeps every change to what exists, first", () => {
    const creates = Array.from({ length: 200 }, (_, i) => step("create", `c${i}`, undefined, i % 2 ? "command:remote:Command" : "hastack:net:HostFirewall"));
    const note = renderNote("prod", { create: 200, delete: 1 }, [...creates, step("delete", "dc-old-step")], "f");
    const rows = note.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| op") && !l.startsWith("| ---"));
    expect(rows).toEqual([
      "| delete | `dc-old-step` | command:remote:Command |  |",
      "| create | 100 resources | hastack:net:HostFirewall | |",
      "| create | 100 resources | command:remote:Command | |",
    ]);
  });

  it("stops at NOTE_MAX_ROWS rows and says how many more there are", () => {
    const updates = Array.from({ length: NOTE_MAX_ROWS + 5 }, (_, i) => step("update", `u${i}`, ["create"]));
    const note = renderNote("prod", { update: updates.length }, updates, "f");
    expect(note.split("\n").filter((l) => l.startsWith("| update |"))).toHaveLength(NOTE_MAX_ROWS);
    expect(note).toContain("… and 5 more rows.");
  });

  it("escapes a pipe in a name so the table keeps its columns", () => {
    expect(renderNote("dc1", { update: 1 }, [step("update", "a|b", ["x"])], "f")).toContain("| update | `a\\|b` |");
  });
});
