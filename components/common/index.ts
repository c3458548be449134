export * from "./host";
export * from "./hash";
export * from "./remote";
export * from "./shell";
export * from "./validate";
export * from "./tls";
export * from "./hostKey";
export * from "./rolling";
