// The policy pack's entry point (PulumiPolicy.yaml's directory, package.json "main"): serves the
// policies (policies.ts) to the CLI; @pulumi/policy prints the port it listens on.
import { PolicyPack } from "@pulumi/policy";
import { POLICIES } from "./policies";

new PolicyPack("hastack", { policies: POLICIES });
