export * from "./server";
export { parseWhere, matches, WhereSyntaxError } from "./where";
