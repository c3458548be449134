// Which node a group starts with as master when no Sentinel answers: a new group, or one whose
// configuration `pulumi destroy` removed. Destroy stops Redis and Sentinel and deletes redis.conf and
// sentinel.conf, but leaves each node's data in /var/lib/redis; Redis saves dump.rdb on that stop with
// the replication offset it had reached (AUX field repl-offset). The node with the highest offset holds
// the newest data, so it must be the master the others resynchronise from, not simply the first node.
import { HostSpec } from "../common/host";

/** What the survey script found on one node. */
export interface RedisSurvey {
  /** Replication offset saved in dump.rdb, or undefined when there is none (no data, or never replicated). */
  readonly offset?: bigint;
}

const LINE = /^hastack-redis-survey offset=(none|[0-9]{1,20})$/m;

/** Parse the survey script's output; anything else (an older or failed survey) counts as "nothing known". */
export function parseSurvey(stdout: string): RedisSurvey {
  const m = LINE.exec(stdout ?? "");
  return m && m[1] !== "none" ? { offset: BigInt(m[1]) } : {};
}

/**
 * The initial master: the node whose data reached the highest replication offset; on a tie, or when no
 * node has one (a new group), the earlier node in the list, so a new group starts on the first node. Among
 * equals, nodes `eligible` marks false (replicaPriority 0) are passed over.
 */
export function chooseInitialMaster(nodes: readonly HostSpec[], surveys: readonly RedisSurvey[], eligible?: readonly boolean[]): HostSpec {
  // among equals (no data, or the same offset) a node with replicaPriority 0 is passed over; newer data always wins:
  // resynchronising it from an older master would lose what only it holds
  const may = (i: number) => eligible === undefined || eligible[i] !== false;
  let best = Math.max(0, nodes.findIndex((_, i) => may(i)));
  for (let i = 0; i < nodes.length; i++) {
    const o = surveys[i]?.offset;
    const b = surveys[best]?.offset;
    if (o !== undefined && (b === undefined || o > b || (o === b && i < best && may(i)))) best = i;
  }
  return nodes[best];
}
