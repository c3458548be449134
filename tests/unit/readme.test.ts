import * as fs from "fs";
import * as path from "path";
import { renderReadme } from "../../scripts/update-readme";

describe("README", () => {
  it("documents every setting exactly as the code defines it (run scripts/update-readme.ts after a change)", () => {
    const current = fs.readFileSync(path.resolve(__dirname, "..", "..", "README.md"), "utf8");
    expect(renderReadme(current)).toBe(current);
  });
});
