// The VMmanager client against the emulator over real HTTP on loopback: every injected fault
// either recovers or ends in an error that names VMmanager's code and text.
import { HostCreateError, VmManagerClient, VmManagerError, whereEq } from "../../inventory/vmmanager/client";
import { ERR, startEmulator, VmManagerEmulator } from "../../inventory/vmmanager/emulator";
import { matches, parseWhere } from "../../inventory/vmmanager/emulator/where";

const PASSWORD = "emu-Secret/pw'1";
const FAST = { backoffMs: 5, maxBackoffMs: 20, pollMs: 10, attempts: 6, taskTimeoutMs: 5000 };
const spec = (name: string, address: string) => ({
  name, cluster: 1, os: 1, cpu: 2, ramMib: 2048, diskMib: 20480, ipPool: 1, address, rootPassword: "root-pw-123456",
});

describe("VMmanager client against the emulator", () => {
  let emu: VmManagerEmulator;
  let client: VmManagerClient;
  const logins = () => emu.requests.filter((r) => r.url.startsWith("/auth/v4/public/token")).length;

  beforeEach(async () => {
    emu = await startEmulator({ users: { "ops@example.com": PASSWORD }, taskMs: 20 });
    client = new VmManagerClient({ url: emu.url, email: "ops@example.com", password: PASSWORD }, FAST);
  });
  afterEach(() => emu.close());

  it("creates a VM with the planned address from the pool and finds it through a where filter", async () => {
    const h = await client.createHost(spec("dc-pg1", "10.213.7.11"));
    expect(h).toMatchObject({ name: "dc-pg1", state: "active", cpu_number: 2, ram_mib: 2048, disk: { disk_mib: 20480 }, ip4: [{ ip: "10.213.7.11" }] });
    expect((await client.findHost(h.id))?.ip4[0].ip).toBe("10.213.7.11");
    expect((await client.findHostsByName("dc-pg1")).map((x) => x.id)).toEqual([h.id]);
    expect(await client.findHost(h.id + 100)).toBeUndefined();
    // the password travels only in the token request body, never in a URL
    expect(emu.requests.some((r) => r.url.includes("emu-Secret") || r.url.includes("root-pw"))).toBe(false);
    expect(emu.tasks.map((t) => [t.name, t.status])).toEqual([["host_create", "complete"]]);
  });

  it("rides out a 503 storm shorter than its retry budget", async () => {
    await client.login();
    emu.unavailable(4);
    const h = await client.createHost(spec("dc-px1", "10.213.7.21"));
    expect(h.state).toBe("active");
    expect(emu.requests.filter((r) => r.status === 503).length).toBe(4);
  });

  it("fails a 503 storm longer than its retry budget with an error that says so, and creates nothing", async () => {
    await client.login();
    emu.unavailable(100);
    await expect(client.createHost(spec("dc-px1", "10.213.7.21"))).rejects.toThrow(/VMmanager POST \/vm\/v3\/host failed: HTTP 503, .*still unavailable after 6 tries/);
    expect(emu.hosts.size).toBe(0);
  });

  it("retries reads whose connection drops", async () => {
    const h = await client.createHost(spec("dc-wp1", "10.213.7.31"));
    emu.dropConnections(3);
    expect((await client.findHost(h.id))?.name).toBe("dc-wp1");
  });

  it("does not create a second VM when the answer to the create request is lost", async () => {
    await client.login();
    emu.loseAnswers(1);
    const h = await client.createHost(spec("dc-wp2", "10.213.7.32"));
    expect(h).toMatchObject({ name: "dc-wp2", state: "active" });
    expect(emu.hosts.size).toBe(1);
    expect(emu.requests.filter((r) => r.method === "POST" && r.url === "/vm/v3/host").map((r) => r.status)).toEqual(["answer lost"]);
  });

  it("logs in again when its token expires mid-run", async () => {
    await client.login();
    // the create is request 1; the first task poll (request 2) finds the token expired
    emu.expireTokensAt(2);
    await expect(client.createHost(spec("dc-rd1", "10.213.7.51"))).resolves.toMatchObject({ state: "active" });
    expect(emu.requests[emu.requests.length - 1].status).toBe(200);
    expect(logins()).toBe(2);
    expect(emu.requests.some((r) => r.status === 401)).toBe(true);
  });

  it("reports a wrong password with VMmanager's code and text, after one try", async () => {
    const bad = new VmManagerClient({ url: emu.url, email: "ops@example.com", password: "wrong" }, FAST);
    const e = await bad.findHost(1).catch((x) => x);
    expect(e).toBeInstanceOf(VmManagerError);
    expect(e.message).toBe(`VMmanager POST /auth/v4/public/token failed: HTTP 401, error ${ERR.badLogin}: Invalid email or password`);
    expect(logins()).toBe(1);
  });

  it("reports an address already taken with VMmanager's code, and creates nothing", async () => {
    emu.takeAddress("10.213.7.12");
    const e = await client.createHost(spec("dc-pg2", "10.213.7.12")).catch((x) => x);
    expect(e.message).toBe(`VMmanager POST /vm/v3/host failed: HTTP 400, error ${ERR.addressTaken}: IP address 10.213.7.12 is already in use`);
    expect(emu.hosts.size).toBe(0);
  });

  it("reports a failed host_create task with its output and the id of the VM it left", async () => {
    emu.failNextTask("not enough space on storage local", "host_create");
    const e = await client.createHost(spec("dc-pg3", "10.213.7.13")).catch((x) => x);
    expect(e).toBeInstanceOf(HostCreateError);
    expect(e.message).toMatch(/task host_create \([0-9a-f]+\) failed: the task failed: not enough space on storage local/);
    expect(emu.hosts.get(e.hostId)?.state).toBe("creation_failed");
  });

  it("waits for a slow task, and gives up on one slower than its timeout", async () => {
    emu.slowTasks(150);
    await expect(client.createHost(spec("dc-ngx1", "10.213.7.41"))).resolves.toMatchObject({ state: "active" });
    emu.slowTasks(600000);
    const impatient = new VmManagerClient({ url: emu.url, email: "ops@example.com", password: PASSWORD }, { ...FAST, taskTimeoutMs: 40 });
    const e = await impatient.createHost(spec("dc-ngx2", "10.213.7.42")).catch((x) => x);
    expect(e).toBeInstanceOf(HostCreateError);
    expect(e.message).toMatch(/task host_create .* not complete after 0 s \(last status: (created|running)\)/);
  });

  it("resizes CPU, RAM and disk, and refuses to shrink a disk with VMmanager's error", async () => {
    const h = await client.createHost(spec("dc-wp3", "10.213.7.33"));
    await client.changeResources(h.id, 4, 4096);
    await client.resizeDisk(h.disk.id, 40960);
    expect(await client.findHost(h.id)).toMatchObject({ cpu_number: 4, ram_mib: 4096, disk: { disk_mib: 40960 } });
    await expect(client.resizeDisk(h.disk.id, 1024)).rejects.toThrow(`HTTP 400, error ${ERR.diskShrink}: Disk ${h.disk.id} cannot be shrunk from 40960 MiB to 1024 MiB`);
  });

  it("deletes a VM and waits for it; deleting a VM that is already gone is not an error", async () => {
    const h = await client.createHost(spec("dc-rd2", "10.213.7.52"));
    await client.deleteHost(h.id);
    expect(emu.hosts.has(h.id)).toBe(false);
    await expect(client.deleteHost(h.id)).resolves.toBeUndefined();
  });

  it("a restarted emulator given the hosts of the last one (initialHosts) serves them, and new ids carry on after theirs", async () => {
    const old = await client.createHost(spec("dc-pg1", "10.213.7.11"));
    const again = await startEmulator({ users: { "ops@example.com": PASSWORD }, taskMs: 20, initialHosts: [...emu.hosts.values()] });
    try {
      const c2 = new VmManagerClient({ url: again.url, email: "ops@example.com", password: PASSWORD }, FAST);
      expect(await c2.findHost(old.id)).toEqual(old);
      await expect(c2.createHost(spec("dc-pg2", "10.213.7.11"))).rejects.toThrow(/error 5015: IP address 10\.213\.7\.11 is already in use/);
      const h = await c2.createHost(spec("dc-pg2", "10.213.7.12"));
      expect(h.id).toBeGreaterThan(old.id);
      expect(h.disk.id).toBeGreaterThan(old.disk.id);
    } finally {
      await again.close();
    }
  });

  it("quotes filter values so a name with a quote matches only itself", () => {
    const tree = parseWhere(whereEq({ name: "a'b OR name EQ 'x", id: 3 }));
    expect(matches(tree, { name: "a'b OR name EQ 'x", id: 3 })).toBe(true);
    expect(matches(tree, { name: "x", id: 3 })).toBe(false);
    expect(matches(parseWhere("(cluster.id EQ 2) OR (name EQ 'y')"), { cluster: { id: 2 }, name: "z" })).toBe(true);
  });
});
