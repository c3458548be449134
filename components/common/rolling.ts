import * as pulumi from "@pulumi/pulumi";

/**
 * One member of a group at a time: builds each member with the health gate of the member before it, so a
 * member's restart step (given `previousGate` in its dependsOn) runs only once the previous member serves again.
 * A change that restarts every member (a settings or certificate hash in each restart's triggers) so becomes a
 * rolling restart; steps that do not depend on `previousGate` (packages, files) still run in parallel.
 */
export function rolling<I, T>(items: readonly I[], build: (item: I, previousGate: pulumi.Resource[], index: number) => T,
  gateOf: (built: T) => pulumi.Resource): T[] {
  const built: T[] = [];
  items.forEach((item, i) => built.push(build(item, i === 0 ? [] : [gateOf(built[i - 1])], i)));
  return built;
}
