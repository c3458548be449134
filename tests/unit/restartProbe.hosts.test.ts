// A restart step's drift probe looks only at its own host's files, also when the address it dials is an
// Output (a VMmanager VM's address). It used to wait for the files of every host whose address was not a
// plain string; when one of those files waits for this very restart step (WorksPad settings wait for Redis's
// health, which waits for Redis's restart), the program never finished: a preview of the lab through
// VMmanager hung at 251 of 340 resources.
import * as pulumi from "@pulumi/pulumi";

const registered: { name: string; inputs: Record<string, any> }[] = [];

beforeAll(async () => {
  await pulumi.runtime.setMocks({
    newResource(a) {
      registered.push({ name: a.name, inputs: a.inputs });
      return { id: `${a.name}-id`, state: { ...a.inputs, stdout: "ok", stderr: "" } };
    },
    call(a) { throw new Error(`unexpected call ${a.token}`); },
  }, "hastack", "unit", false);
});

it("a restart on host A waits only for A's files, never for a file on B that waits for that restart", async () => {
  const { putFile, restartOnChange } = await import("../../components/common/remote");
  const { connectionFor } = await import("../../components/common/host");
  const { contentHash } = await import("../../components/common/hash");
  // both hosts dialled through an Output, as VMmanager VMs are (ssh.reachable)
  const ssh = { privateKey: "k", user: "root", port: 22, reachable: { "10.0.0.1": pulumi.output("10.0.0.1"), "10.0.0.2": pulumi.output("10.0.0.2") } };
  const a = connectionFor({ name: "a", address: "10.0.0.1" }, ssh);
  const b = connectionFor({ name: "b", address: "10.0.0.2" }, ssh);
  // B's file is made from what A's restart printed (so it can exist only after A's restart), and is put first:
  // as nginx's site file (from the WorksPad nodes' health) is put before the nodes' restart steps are built
  let fromRestart: (o: pulumi.Output<string>) => void = () => undefined;
  const later = new Promise<pulumi.Output<string>>((r) => (fromRestart = r));
  putFile("b-conf", { connection: b, path: "/etc/b.conf", content: pulumi.output(later).apply((o) => `a says ${o}\n`) }, {});
  const conf = putFile("a-conf", { connection: a, path: "/etc/a.conf", content: "setting 1\n" }, {});
  const restart = restartOnChange("a-restart", a, "systemctl restart a", [contentHash("setting 1\n")], { dependsOn: [conf] });
  fromRestart(restart.stdout);
  const done = (name: string) => registered.some((r) => r.name === name);
  const deadline = Date.now() + 30000;
  while (!(done("a-restart") && done("b-conf")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect({ aRestart: done("a-restart"), bConf: done("b-conf") }).toEqual({ aRestart: true, bConf: true });
  // and its probe fingerprints A's file (found by its hash), not B's
  const probe: string = registered.find((r) => r.name === "a-restart")!.inputs.environment.HASTACK_PROBE;
  expect(probe).toContain("/etc/a.conf");
  expect(probe).not.toContain("/etc/b.conf");
}, 60000);
