// Shared fail-closed Pulumi mocks: every registered resource is recorded; a resource type the
// program is not expected to create throws, so an accidental new dependency fails the tests.
import * as pulumi from "@pulumi/pulumi";

export interface Recorded {
  readonly type: string;
  readonly name: string;
  readonly urn: string;
  readonly inputs: Record<string, any>;
  readonly custom: boolean;
}

const ALLOWED = [
  /^hastack:[a-z]+:[A-Z][A-Za-z]+$/,
  /^command:remote:(Command|CopyToRemote)$/,
  /^random:index\/randomPassword:RandomPassword$/,
  /^tls:index\/(privateKey|selfSignedCert|certRequest|locallySignedCert):[A-Za-z]+$/,
  /^pulumi:pulumi:Stack$/,
  // dynamic resources (ObservedHostKey: SSH host keys recorded on first use)
  /^pulumi-nodejs:dynamic:Resource$/,
  // peers' contracts; only the stacks a test names in `peerStacks` can be read
  /^pulumi:pulumi:StackReference$/,
];

export const recorded: Recorded[] = [];

export function resetRecorded(): void {
  recorded.length = 0;
}

/**
 * `peerStacks` are the stacks a StackReference may read, by full name (`organization/hastack/dc1`),
 * with their outputs ({} = a stack that exists but was never deployed); any other reference throws.
 */
export async function installMocks(config: Record<string, string> = {}, project = "hastack", stack = "test",
  peerStacks: Record<string, Record<string, unknown>> = {}): Promise<void> {
  pulumi.runtime.setAllConfig(config);
  await pulumi.runtime.setMocks({
    newResource(args: pulumi.runtime.MockResourceArgs) {
      if (!ALLOWED.some((re) => re.test(args.type))) {
        throw new Error(`unexpected resource type ${args.type} (${args.name})`);
      }
      const urn = `urn:pulumi:${stack}::${project}::${args.type}::${args.name}`;
      if (args.type === "pulumi:pulumi:StackReference") {
        const ref = args.inputs.name as string;
        if (!(ref in peerStacks)) throw new Error(`unexpected stack reference ${ref} (${args.name}); mocked: ${Object.keys(peerStacks).join(", ") || "none"}`);
        recorded.push({ type: args.type, name: args.name, urn, inputs: args.inputs, custom: true });
        return { id: ref, state: { name: ref, outputs: peerStacks[ref], secretOutputNames: Object.keys(peerStacks[ref]).filter((k) => k === "siteSecrets") } };
      }
      recorded.push({ type: args.type, name: args.name, urn, inputs: args.inputs, custom: args.custom ?? true });
      const state: Record<string, any> = { ...args.inputs };
      // computed outputs a real provider would return
      if (args.type === "random:index/randomPassword:RandomPassword") state.result = `mock${args.name}pw`.replace(/[^A-Za-z0-9]/g, "").padEnd(args.inputs.length ?? 16, "x").slice(0, args.inputs.length ?? 16);
      if (args.type.startsWith("tls:index/privateKey")) state.privateKeyPem = `mock-key-${args.name}`, state.privateKeyOpenssh = `mock-ssh-${args.name}`;
      if (/selfSignedCert|locallySignedCert/.test(args.type)) state.certPem = `mock-cert-${args.name}`;
      if (args.type === "tls:index/certRequest:CertRequest") state.certRequestPem = `mock-csr-${args.name}`;
      if (args.type === "command:remote:Command") state.stdout = state.stdout ?? "", state.stderr = "";
      // an ObservedHostKey: the key a host would show at first contact
      if (args.type === "pulumi-nodejs:dynamic:Resource" && args.name.endsWith("-host-key")) state.key = `ssh-ed25519 AAAAmock${String(args.inputs.address).replace(/\./g, "")}`;
      return { id: `${args.name}-id`, state };
    },
    call(args: pulumi.runtime.MockCallArgs) {
      throw new Error(`unexpected function call ${args.token}`);
    },
  }, project, stack, false);
}

/** Resolve an Output in tests. */
export function resolve<T>(o: pulumi.Input<T> | undefined): Promise<T> {
  return new Promise((res) => pulumi.output(o as any).apply((v: any) => res(v)));
}

/** Is an Output (or value) marked secret? */
export async function isSecret(o: unknown): Promise<boolean> {
  return pulumi.Output.isInstance(o) ? await pulumi.isSecret(o as pulumi.Output<unknown>) : false;
}

export function byName(name: string): Recorded {
  const r = recorded.find((x) => x.name === name);
  if (!r) throw new Error(`no resource named ${name}; have: ${recorded.map((x) => x.name).join(", ")}`);
  return r;
}

export function ofType(type: string): Recorded[] {
  return recorded.filter((x) => x.type === type);
}

/** Wait for all pending registrations (mocks resolve asynchronously). */
export function settle(ms = 50): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
