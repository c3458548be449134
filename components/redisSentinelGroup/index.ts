export * from "./args";
export * from "./render";
export * from "./redisSentinelGroup";
export * from "./acl";
export * from "./initialMaster";
