// Host identity on the host: steps claim it under the host's name, deletes act only while it keeps that name.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { byName, installMocks, resetRecorded, settle } from "./mocks";
import type * as Common from "../../components/common";
import type * as Owner from "../../components/common/owner";

let common: typeof Common;
let owner: typeof Owner;
beforeAll(async () => {
  await installMocks();
  common = await import("../../components/common");
  owner = await import("../../components/common/owner");
});
beforeEach(() => resetRecorded());

const ssh = { privateKey: pulumi.secret("key"), user: "root", port: 22 };
const MARKER = "/etc/hastack/owners/hastack.test";

describe("steps on a host claim it and delete only while they own it", () => {
  it("a file's create claims the host under its name for this project and stack, and its delete is guarded by that name", async () => {
    const conn = common.connectionFor({ name: "wp1", address: "10.0.0.5" }, ssh);
    common.putFile("f", { connection: conn, path: "/etc/x.conf", content: "x" }, {});
    await settle();
    const f = byName("f").inputs;
    expect(f.create.split("\n")[0]).toBe(`{ mkdir -p '/etc/hastack/owners' && printf '%s\\n' 'wp1' > '${MARKER}'.$$ && mv '${MARKER}'.$$ '${MARKER}'; } || exit 1`);
    expect(f.delete).toContain(`[ "$(cat '${MARKER}')" != 'wp1' ]`);
    expect(f.delete.split("\n").pop()).toBe("rm -f '/etc/x.conf'");
  });

  it("a step that undoes nothing on delete (a restart) is left exactly as before: adding the marker re-runs no restart", async () => {
    const conn = common.connectionFor({ name: "wp1", address: "10.0.0.5" }, ssh);
    common.restartOnChange("r", conn, "systemctl restart x", ["h"], {});
    await settle();
    expect(byName("r").inputs.create).toBe("set -eu\nsystemctl restart x");
    expect(byName("r").inputs.delete).toBeUndefined();
  });
});

describe("the claim and the guard, run by sh", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-owner-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  // the scripts as generated, with the marker directory moved into a scratch directory
  const sh = (script: string) => execFileSync("sh", ["-c", script.split(owner.OWNER_DIR).join(dir)], { encoding: "utf8" }).trim();
  const marker = path.join(dir, "hastack.test");
  const action = `echo acted`;

  it("acts on a host deployed before the marker (no marker yet)", () => {
    expect(sh(owner.ownedScript("app1", action))).toBe("acted");
  });
  it("claims, then acts while the marker names it", () => {
    sh(owner.claimScript("app1"));
    expect(fs.readFileSync(marker, "utf8")).toBe("app1\n");
    expect(sh(owner.ownedScript("app1", action))).toBe("acted");
  });
  it("skips, and says so, once the host was claimed under a new name (renamed at the same address)", () => {
    sh(owner.claimScript("web1"));
    expect(sh(owner.ownedScript("app1", action))).toBe("kept: this host is now web1 in this stack, not app1");
    expect(sh(owner.ownedScript("web1", action))).toBe("acted");
  });
  it("a name with shell characters is only data", () => {
    const odd = `a'b$(touch ${dir}/pwned)`;
    sh(owner.claimScript(odd));
    expect(fs.readFileSync(marker, "utf8")).toBe(`${odd}\n`);
    expect(sh(owner.ownedScript(odd, action))).toBe("acted");
    expect(fs.existsSync(`${dir}/pwned`)).toBe(false);
  });
});

// A replaced step (its triggers changed): Pulumi runs the new create, then the old delete. The old delete must not
// undo what the new create did (a CA trust step removed the CA the new generation had just installed).
describe("a replaceable step's delete acts only for its own generation", () => {
  it("a step with triggers and a delete claims its generation in its create and guards its delete by it", async () => {
    const conn = common.connectionFor({ name: "wp1", address: "10.0.0.5" }, ssh);
    common.runScript("trust", { connection: conn, create: "install-ca", delete: "remove-ca", triggers: ["h1"] }, {});
    await settle();
    const t = byName("trust").inputs;
    expect(t.create).toMatch(new RegExp(`^set -eu\\n\\{ mkdir -p '/etc/hastack/owners' [^\\n]*\\n\\{ mkdir -p '${owner.GENERATION_DIR}' [^\\n]*\\ninstall-ca$`));
    expect(t.delete).toContain(`[ "$(cat '${owner.GENERATION_DIR}/`);
    expect(t.delete.split("\n").pop()).toBe("remove-ca");
  });

  it("a step without triggers, or without a delete, is left exactly as before (no re-run on upgrade)", async () => {
    const conn = common.connectionFor({ name: "wp1", address: "10.0.0.5" }, ssh);
    common.runScript("plain", { connection: conn, create: "c", delete: "d" }, {});
    common.runScript("restart", { connection: conn, create: "r", triggers: ["h1"] }, {});
    await settle();
    expect(byName("plain").inputs.create).not.toContain(owner.GENERATION_DIR);
    expect(byName("plain").inputs.delete).not.toContain(owner.GENERATION_DIR);
    expect(byName("restart").inputs.create).toBe("set -eu\nr");
  });

  it("two generations of one step claim different records; another step's record is its own", async () => {
    const conn = common.connectionFor({ name: "wp1", address: "10.0.0.5" }, ssh);
    common.runScript("a", { connection: conn, create: "x", delete: "y", triggers: ["h1"] }, {});
    common.runScript("b", { connection: conn, create: "x", delete: "y", triggers: ["h2"] }, {});
    await settle();
    const claimLine = (n: string) => byName(n).inputs.create.split("\n")[2];
    expect(claimLine("a")).not.toBe(claimLine("b"));
  });

  describe("run by sh", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-generation-"));
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
    const sh = (script: string) => execFileSync("sh", ["-c", script.split(owner.OWNER_DIR).join(dir)], { encoding: "utf8" }).trim();
    const acted = "echo acted";

    it("acts for a step deployed before the guard (no record)", () => {
      expect(sh(owner.generationGuardedScript("s0", "g1", acted))).toBe("acted");
    });
    it("replacement: the new generation's create, then the old one's delete, which is skipped", () => {
      sh(owner.generationClaimScript("s1", "g1"));
      sh(owner.generationClaimScript("s1", "g2"));
      expect(sh(owner.generationGuardedScript("s1", "g1", acted))).toBe("kept: replaced by a newer generation of this step");
      // destroy later: the live generation acts, and its record goes with it
      expect(sh(owner.generationGuardedScript("s1", "g2", acted))).toBe("acted");
      expect(fs.readdirSync(path.join(dir, "steps"))).toEqual([]);
    });
    it("a generation with shell characters is only data", () => {
      const odd = `g'$(touch ${dir}/pwned)`;
      sh(owner.generationClaimScript("s2", odd));
      expect(sh(owner.generationGuardedScript("s2", odd, acted))).toBe("acted");
      expect(fs.existsSync(`${dir}/pwned`)).toBe(false);
    });
  });
});
