// lab/vmmanager.ts viaVmManager: a hand-made-hosts lab config turned into one whose hosts are all
// VMmanager VMs. Pure: the result is read back the way the program reads it and must resolve.
import { ConfigMap } from "@pulumi/pulumi/automation";
import { planVms, resolveVmManagerSettings } from "../../inventory/vmmanager";
import { viaVmManager, VMM_USER } from "../../lab/vmmanager";

const obj = (v: unknown) => ({ value: JSON.stringify(v) });
const base: ConfigMap = {
  "hastack:subnet": { value: "10.213.7.0/24" },
  "hastack:ssh": obj({ user: "root", port: 22, hostKeys: { "10.213.7.11": "ssh-ed25519 AAAA" } }),
  "hastack:postgres": obj({ nodes: [{ name: "pg1", address: "10.213.7.11" }, { name: "pg2", address: "10.213.7.12" }], failoverProfile: "aggressive" }),
  "hastack:proxy": obj({ nodes: [{ name: "px1", address: "10.213.7.21" }], vip: "10.213.7.20" }),
  "hastack:redis": obj({ enabled: false }),
  "hastack:passwords.postgresApp": { value: "app-pw", secret: true },
};

/**
 * `hastack:vmmanager.*` leaves back into one object, typed as `pulumi config set --path` types them
 * (checked by hand with the CLI: "1" is stored as 1, "false" as false).
 */
function section(c: ConfigMap): Record<string, unknown> {
  const out: Record<string, any> = {};
  for (const [k, v] of Object.entries(c)) {
    if (!k.startsWith("hastack:vmmanager.")) continue;
    const keys = k.slice("hastack:vmmanager.".length).split(".");
    let o = out;
    for (const x of keys.slice(0, -1)) o = o[x] ??= {};
    o[keys[keys.length - 1]] = /^(\d+|true|false)$/.test(v.value) ? JSON.parse(v.value) : v.value;
  }
  return out;
}

describe("viaVmManager (npm run lab -- --via-vmmanager, tests/e2e/vmmanagerLab.test.ts)", () => {
  const c = viaVmManager(base, { url: "http://127.0.0.1:18613", password: "s3cret:/\"" });

  it("marks every node of every section vm: true and keeps the rest of each section", () => {
    const pg = JSON.parse(c["hastack:postgres"].value);
    expect(pg.nodes).toEqual([{ name: "pg1", address: "10.213.7.11", vm: true }, { name: "pg2", address: "10.213.7.12", vm: true }]);
    expect(pg.failoverProfile).toBe("aggressive");
    expect(JSON.parse(c["hastack:proxy"].value).nodes).toEqual([{ name: "px1", address: "10.213.7.21", vm: true }]);
    expect(c["hastack:redis"]).toEqual(base["hastack:redis"]); // no nodes: untouched
    expect(c["hastack:passwords.postgresApp"]).toEqual(base["hastack:passwords.postgresApp"]);
  });

  it("drops pinned host keys (the VMs do not exist yet) and records them at first contact instead", () => {
    expect(JSON.parse(c["hastack:ssh"].value)).toEqual({ user: "root", port: 22, trustOnFirstUse: true });
  });

  it("sets the password as the only secret leaf of hastack:vmmanager", () => {
    const leaves = Object.entries(c).filter(([k]) => k.startsWith("hastack:vmmanager."));
    expect(leaves.filter(([, v]) => v.secret).map(([k, v]) => [k, v.value])).toEqual([["hastack:vmmanager.password", "s3cret:/\""]]);
    expect(c["hastack:vmmanager"]).toBeUndefined(); // leaves only: a whole object would hold the password in clear
  });

  it("gives a section the program resolves, with a VM planned for every host", () => {
    const s = resolveVmManagerSettings(section(c))!;
    expect(s).toMatchObject({ url: "http://127.0.0.1:18613", user: VMM_USER, password: "s3cret:/\"", cluster: 1, osTemplate: 1, ipPool: 1, allowDeletingDataVms: false });
    const plans = planVms({ postgres: JSON.parse(c["hastack:postgres"].value), proxy: JSON.parse(c["hastack:proxy"].value) }, s);
    expect(plans.map((p) => [p.name, p.address, p.deletionProtected])).toEqual([
      ["pg1", "10.213.7.11", true], ["pg2", "10.213.7.12", true], ["px1", "10.213.7.21", false],
    ]);
  });

  it("with allowDeletingDataVms, the database VMs are not protected", () => {
    const s = resolveVmManagerSettings(section(viaVmManager(base, { url: "http://127.0.0.1:1", password: "p", allowDeletingDataVms: true })))!;
    expect(planVms({ postgres: JSON.parse(c["hastack:postgres"].value) }, s).every((p) => !p.deletionProtected)).toBe(true);
  });
});
