export * from "./render";
export * from "./timing";
