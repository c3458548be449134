// `hastack:vmmanager` and per-host `vm: true|false`: one "fails if" test per rule, defaults, plans.
import { ConfigError } from "../../components/common/validate";
import { DEFAULT_SIZES, planVms, resolveVmManagerSettings, VmManagerSettings } from "../../inventory/vmmanager/args";

const OK = { url: "https://vm.example.com/", user: "ops@example.com", password: "s3cret", cluster: 1, osTemplate: 7, ipPool: 2 };
const err = (raw: unknown) => {
  try { resolveVmManagerSettings(raw); } catch (e) { if (e instanceof ConfigError) return e.message; throw e; }
  throw new Error("no error");
};

describe("hastack:vmmanager settings", () => {
  it("is absent when the stack has no section, and otherwise fills defaults", () => {
    expect(resolveVmManagerSettings(undefined)).toBeUndefined();
    expect(resolveVmManagerSettings(OK)).toEqual({
      ...OK, url: "https://vm.example.com", node: undefined, image: undefined,
      sizes: DEFAULT_SIZES, allowDeletingDataVms: false, adopt: {},
    });
  });

  it("takes a size per role, keeping the defaults of the fields and roles not given", () => {
    const s = resolveVmManagerSettings({ ...OK, sizes: { postgres: { cpu: 8 }, redis: { ramMiB: 1024, diskGiB: 8 } } })!;
    expect(s.sizes).toEqual({ ...DEFAULT_SIZES, postgres: { ...DEFAULT_SIZES.postgres, cpu: 8 }, redis: { cpu: DEFAULT_SIZES.redis.cpu, ramMiB: 1024, diskGiB: 8 } });
  });

  it.each<[string, unknown, string]>([
    ["the section is not an object", "https://vm", "Invalid hastack:vmmanager: got \"https://vm\"; expected an object with url, user, password, cluster, osTemplate or image, and ipPool."],
    ["it has an unknown key", { ...OK, pool: 2 }, "Invalid hastack:vmmanager.pool: got 2; expected no such key; known keys are url, user, password, cluster, node, osTemplate, image, ipPool, sizes, allowDeletingDataVms, adopt."],
    ["url is missing", { ...OK, url: undefined }, "Invalid hastack:vmmanager.url: got nothing; expected the base URL of VMmanager"],
    ["url has a path", { ...OK, url: "https://vm.example.com/vm/v3" }, "Invalid hastack:vmmanager.url: got \"https://vm.example.com/vm/v3\""],
    ["user is not an e-mail", { ...OK, user: "admin" }, "Invalid hastack:vmmanager.user: got \"admin\"; expected the e-mail a VMmanager user logs in with."],
    ["password is missing", { ...OK, password: undefined }, "Invalid hastack:vmmanager.password: got nothing; expected a non-empty password, set with `pulumi config set --secret --path hastack:vmmanager.password`."],
    ["cluster is not an id", { ...OK, cluster: "main" }, "Invalid hastack:vmmanager.cluster: got \"main\"; expected a VMmanager id (a whole number from 1)."],
    ["node is not an id", { ...OK, node: 0 }, "Invalid hastack:vmmanager.node: got 0; expected a VMmanager id"],
    ["both osTemplate and image are given", { ...OK, image: 3 }, "Invalid hastack:vmmanager.osTemplate: got 7; expected exactly one of osTemplate (an OS template id) and image (an image id)."],
    ["neither osTemplate nor image is given", { ...OK, osTemplate: undefined }, "Invalid hastack:vmmanager.osTemplate: got nothing; expected exactly one of osTemplate"],
    ["image is not an id", { ...OK, osTemplate: undefined, image: 1.5 }, "Invalid hastack:vmmanager.image: got 1.5; expected a VMmanager id"],
    ["ipPool is not an id", { ...OK, ipPool: "10.0.0.0/24" }, "Invalid hastack:vmmanager.ipPool: got \"10.0.0.0/24\"; expected a VMmanager id"],
    ["allowDeletingDataVms is not a boolean", { ...OK, allowDeletingDataVms: "yes" }, "Invalid hastack:vmmanager.allowDeletingDataVms: got \"yes\"; expected true or false."],
    ["sizes names an unknown role", { ...OK, sizes: { db: { cpu: 2 } } }, "Invalid hastack:vmmanager.sizes.db: got {\"cpu\":2}; expected no such key; known keys are postgres, proxy, workspad, nginx, redis."],
    ["a size has an unknown field", { ...OK, sizes: { proxy: { ram: 2048 } } }, "Invalid hastack:vmmanager.sizes.proxy.ram: got 2048; expected no such key; known keys are cpu, ramMiB, diskGiB."],
    ["cpu is out of range", { ...OK, sizes: { proxy: { cpu: 0 } } }, "Invalid hastack:vmmanager.sizes.proxy.cpu: got 0; expected a number of virtual CPUs, 1–256."],
    ["RAM is below 512 MiB", { ...OK, sizes: { nginx: { ramMiB: 256 } } }, "Invalid hastack:vmmanager.sizes.nginx.ramMiB: got 256; expected RAM in MiB, a whole number from 512."],
    ["the disk is below 5 GiB", { ...OK, sizes: { redis: { diskGiB: 2 } } }, "Invalid hastack:vmmanager.sizes.redis.diskGiB: got 2; expected a disk size in GiB, a whole number from 5."],
    ["adopt is not an object", { ...OK, adopt: [12] }, "Invalid hastack:vmmanager.adopt: got [12]; expected an object from host name to the VMmanager id of an existing VM."],
    ["adopt has a bad id", { ...OK, adopt: { pg1: "12" } }, "Invalid hastack:vmmanager.adopt.pg1: got \"12\"; expected a VMmanager id"],
  ])("fails if %s", (_rule, raw, message) => {
    expect(err(raw)).toContain(message);
  });

  it("never shows a password it rejects", () => {
    expect(err({ ...OK, password: "" })).toContain("got \"(not shown)\"");
    expect(err({ ...OK, pasword: "s3cret-typo" })).toBe("Invalid hastack:vmmanager.pasword: got \"(not shown)\"; expected no such key; known keys are url, user, password, cluster, node, osTemplate, image, ipPool, sizes, allowDeletingDataVms, adopt.");
  });
});

describe("VM plans from per-host vm: true|false", () => {
  const settings = (extra: Partial<VmManagerSettings> = {}) => ({ ...resolveVmManagerSettings(OK)!, ...extra });
  const sections = {
    postgres: { nodes: [{ name: "pg1", address: "10.0.0.11", vm: true }, { name: "pg2", address: "10.0.0.12" }] },
    proxy: { nodes: [{ name: "px1", address: "10.0.0.21", vm: true }] },
    redis: { nodes: [{ name: "px1", address: "10.0.0.21", vm: true }, { name: "rd2", address: "10.0.0.52", vm: false }] },
  };

  it("plans one VM per host with vm: true; hand-made hosts (vm false or absent) get none", () => {
    expect(planVms(sections, settings()).map((p) => p.name)).toEqual(["pg1", "px1"]);
  });

  it("protects database and Redis VMs unless the stack allows deleting them", () => {
    const plans = planVms(sections, settings());
    expect(plans.map((p) => [p.name, p.role, p.deletionProtected])).toEqual([["pg1", "postgres", true], ["px1", "proxy", true]]);
    expect(planVms(sections, settings({ allowDeletingDataVms: true })).every((p) => !p.deletionProtected)).toBe(true);
    expect(planVms({ proxy: sections.proxy }, settings())[0].deletionProtected).toBe(false);
  });

  it("gives a host in several sections the largest size of each field", () => {
    const px1 = planVms(sections, settings())[1];
    expect(px1.roles).toEqual(["proxy", "redis"]);
    expect(px1.size).toEqual({ cpu: 2, ramMiB: DEFAULT_SIZES.redis.ramMiB, diskGiB: 20 });
  });

  it("carries the VMmanager id of a VM to adopt", () => {
    expect(planVms(sections, settings({ adopt: { pg1: 44 } }))[0].adoptId).toBe(44);
  });

  it("fails if vm is not a boolean", () => {
    expect(() => planVms({ proxy: { nodes: [{ name: "px1", address: "10.0.0.21", vm: "yes" }] } }, settings()))
      .toThrow("Invalid hastack:proxy.nodes[0].vm: got \"yes\"; expected true (a VM made through hastack:vmmanager) or false (a host made by hand).");
  });

  it("fails if a host has vm: true but the stack has no hastack:vmmanager section", () => {
    expect(() => planVms(sections, undefined)).toThrow("Invalid hastack:vmmanager: got nothing; expected a VMmanager section, since hastack:postgres.nodes[0] (pg1) has vm: true.");
  });

  it("fails if adopt names a host that is not a VM", () => {
    expect(() => planVms(sections, settings({ adopt: { pg2: 9 } }))).toThrow("Invalid hastack:vmmanager.adopt.pg2: got 9; expected the name of a host with vm: true.");
  });
});
