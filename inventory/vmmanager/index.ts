export * from "./args";
export * from "./client";
export { VmInputs, VmOutputs, vmProvider } from "./provider";
export * from "./vm";
export * from "./stack";
