export * from "./args";
export * from "./render";
