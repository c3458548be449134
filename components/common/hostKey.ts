import * as pulumi from "@pulumi/pulumi";

/** Inputs of a trust-on-first-use host key record. */
export interface ObservedHostKeyArgs {
  readonly address: pulumi.Input<string>;
  readonly port: pulumi.Input<number>;
  /** Seconds to keep trying while the host boots. @default 180 */
  readonly timeoutSeconds?: pulumi.Input<number>;
}

interface State { address: string; port: number; timeoutSeconds: number; key: string }

/**
 * Trust on first use, as a resource: `create` asks the host for its ed25519 key once (ssh-keyscan
 * from the machine running Pulumi) and the key lives in state from then on. Every later SSH
 * connection checks against the recorded key; a changed host key fails the deploy instead of being
 * re-learnt. `read` (refresh) keeps the recorded key on purpose: re-learning it would defeat TOFU.
 */
const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: State) {
    // required here, not at the top: dynamic providers are serialised with their closure
    const { execFileSync } = require("child_process");
    const deadline = Date.now() + (inputs.timeoutSeconds ?? 180) * 1000;
    let last = "";
    for (;;) {
      try {
        const out: string = execFileSync("ssh-keyscan", ["-T", "10", "-t", "ed25519", "-p", String(inputs.port), inputs.address],
          { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
        const line = out.split("\n").find((l: string) => / ssh-ed25519 [A-Za-z0-9+/=]+/.test(l));
        if (line) {
          const key = line.trim().split(/\s+/).slice(1, 3).join(" ");
          return { id: `${inputs.address}:${inputs.port}`, outs: { ...inputs, key } };
        }
        last = "no ssh-ed25519 host key offered";
      } catch (e) {
        last = (e as { stderr?: string }).stderr?.toString().trim() || String(e);
      }
      if (Date.now() > deadline) {
        throw new Error(`trust on first use: could not read the ed25519 host key of ${inputs.address}:${inputs.port} (${last})`);
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  },
  async diff(_id: string, olds: State, news: State) {
    const replaces = (["address", "port"] as const).filter((k) => olds[k] !== news[k]);
    return { changes: replaces.length > 0, replaces, deleteBeforeReplace: true };
  },
  async read(id: string, props: State) {
    return { id, props };
  },
};

/** The host key of one address as first seen (see `provider`). */
export class ObservedHostKey extends pulumi.dynamic.Resource {
  public readonly key!: pulumi.Output<string>;
  constructor(name: string, args: ObservedHostKeyArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { timeoutSeconds: 180, ...args, key: undefined }, opts);
  }
}
