export * from "./args";
export * from "./render";
export * from "./pgBackRest";
