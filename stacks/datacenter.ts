import * as pulumi from "@pulumi/pulumi";
import { StackConfig } from "./config";

/** Placeholder until the components land. */
export class Datacenter extends pulumi.ComponentResource {
  constructor(name: string, readonly cfg: StackConfig, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:stack:Datacenter", name, {}, opts);
  }
  exports(): Record<string, unknown> {
    return {};
  }
}
