export * from "./render";
export * from "./timing";
export * from "./authRotation";
export * from "./authRotationSteps";
