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
