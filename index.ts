// Entry point for the Pulumi CLI: the outputs of one datacenter stack.
import { program } from "./stacks/program";

export = program();
