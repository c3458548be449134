// Scale a Redis group in and out by editing its node list.
//
// Sentinel never forgets an instance by itself: a removed replica or Sentinel stays in every Sentinel's
// state as "down" for good, and a Sentinel counts the Sentinels it knows when it asks for a majority to
// fail over. So a group shrunk from five nodes to three would still need three of five votes, i.e. all
// three. `SENTINEL RESET` clears that state, but a Sentinel rediscovers every instance that still talks to
// the master (a replica's link, another Sentinel's hello messages). The engine deletes the removed nodes'
// steps (which stop their daemons) only after every create and update, so within one `pulumi up`:
//   1. hand over (handOverScript): a master the stack removes passes its role to a node it keeps, with
//      writes paused on it until a kept replica has everything, so no acknowledged write is lost;
//   2. forget (forgetScript): each removed Sentinel stops monitoring the group (SENTINEL REMOVE) and each
//      removed replica gets a masterauth the master refuses, so neither can come back; their open
//      connections to the kept Redis and Sentinels are closed; then each kept Sentinel is reset in turn,
//      waiting until it sees the kept nodes again. No firewall is needed for this (hastack:firewall may be off).
// A node added to the list needs none of this: it finds the master through the Sentinels and announces
// itself. Both scripts run on a kept node with hastack's own password from its 0600 file (REDISCLI_AUTH).
import { shq } from "../common/shell";
import { HostSpec } from "../common/host";

/** What the scripts need to know about the group. */
export interface MembershipParams {
  readonly nodes: readonly HostSpec[];
  readonly port: number;
  readonly sentinelPort: number;
  readonly masterName: string;
  /** The file holding hastack's own password (Redis' `default` user, Sentinel's requirepass). */
  readonly passFile: string;
}

/** Shell functions both scripts share. */
function prelude(p: MembershipParams): string[] {
  return [
    `REDISCLI_AUTH=$(cat ${shq(p.passFile)}); export REDISCLI_AUTH`,
    "r() { timeout 5 redis-cli \"$@\" 2>/dev/null | tr -d '\\r'; }",
    "ipv4() { printf '%s' \"$1\" | grep -Eqx '[0-9]{1,3}(\\.[0-9]{1,3}){3}'; }",
    `wanted=${shq(` ${p.nodes.map((n) => n.address).join(" ")} `)}`,
    "kept() { case \"$wanted\" in *\" $1 \"*) return 0;; esac; return 1; }",
    // the value after each "ip" line of SENTINEL replicas/sentinels (redis-cli prints field, value, field, ...)
    "ips() { awk 'p == \"ip\" { print } { p = $0 }'; }",
    `master_of() { r -h "$1" -p ${p.sentinelPort} SENTINEL get-master-addr-by-name ${p.masterName} | head -n 1; }`,
  ];
}

/**
 * Before the firewalls change: when the master is a node the stack removes, fail over to a node it keeps.
 * The removed replicas get replica-priority 0 first (Sentinel never promotes those), the master's writes are
 * paused (CLIENT PAUSE WRITE) until a kept replica has its whole stream, then `SENTINEL FAILOVER`; writes
 * paused on the old master get READONLY once it is a replica, so none is acknowledged and lost. Nothing to do
 * on a first deploy (no Sentinel answers) or while a kept node is master.
 */
export function handOverScript(p: MembershipParams): string {
  const sentinels = p.nodes.map((n) => n.address).join(" ");
  return [
    ...prelude(p),
    "master=''; via=''",
    `for a in ${sentinels}; do m=$(master_of "$a"); if ipv4 "$m"; then master=$m; via=$a; break; fi; done`,
    "[ -n \"$master\" ] || { echo 'no Sentinel answers: nothing to hand over'; exit 0; }",
    "kept \"$master\" && exit 0",
    "echo \"the master $master is a node the stack removes: failing over to a node it keeps\"",
    `for ip in $(r -h "$via" -p ${p.sentinelPort} SENTINEL replicas ${p.masterName} | ips); do`,
    `  kept "$ip" || r -h "$ip" -p ${p.port} CONFIG SET replica-priority 0 >/dev/null || true`,
    "done",
    `[ "$(r -h "$master" -p ${p.port} CLIENT PAUSE 120000 WRITE)" = OK ] || { echo "could not pause writes on $master" >&2; exit 1; }`,
    `trap 'r -h "$master" -p ${p.port} CLIENT UNPAUSE >/dev/null' EXIT`,
    // the master's offset stands still while writes are paused (no replication PINGs either): wait until every kept
    // replica that answers has it (Sentinel promotes by priority, then offset), at least one within 5 s
    `offset=$(r -h "$master" -p ${p.port} INFO replication | sed -n 's/^master_repl_offset://p')`,
    "for i in $(seq 50); do",
    "  caught=0; behind=0",
    `  for a in ${sentinels}; do`,
    `    o=$(r -h "$a" -p ${p.port} INFO replication | sed -n 's/^slave_repl_offset://p')`,
    "    [ -n \"$o\" ] || continue",
    "    if [ \"$o\" -ge \"$offset\" ]; then caught=$((caught + 1)); else behind=$((behind + 1)); fi",
    "  done",
    "  [ $caught -gt 0 ] && [ $behind -eq 0 ] && break",
    "  sleep 0.1",
    "done",
    "[ $caught -gt 0 ] || { echo \"no kept replica caught up with $master (offset $offset) within 5 s\" >&2; exit 1; }",
    `out=$(r -h "$via" -p ${p.sentinelPort} SENTINEL FAILOVER ${p.masterName})`,
    "[ \"$out\" = OK ] || { echo \"SENTINEL FAILOVER refused: $out\" >&2; exit 1; }",
    "new=''",
    "for i in $(seq 300); do",
    "  m=$(master_of \"$via\")",
    `  if ipv4 "$m" && kept "$m" && r -h "$m" -p ${p.port} ROLE | head -n 1 | grep -qx master; then new=$m; break; fi`,
    "  sleep 0.2",
    "done",
    "[ -n \"$new\" ] || { echo \"no node the stack keeps became master within 60 s of the failover away from $master\" >&2; exit 1; }",
    // Sentinel turns a healthy old master into a replica only some seconds later; unpaused before that, it would
    // take the writes its clients still hold and lose them at the resync. So do it now, then unpause (trap).
    `r -h "$master" -p ${p.port} REPLICAOF "$new" ${p.port} >/dev/null`,
    "for i in $(seq 150); do",
    `  if r -h "$master" -p ${p.port} ROLE | head -n 1 | grep -qx slave; then echo "the master is now $new; $master replicates from it"; exit 0; fi`,
    "  sleep 0.2",
    "done",
    "echo \"$master still answers as a master 30 s after the failover to $new\" >&2",
    "exit 1",
  ].join("\n");
}

/**
 * Every instance the kept Sentinels know that is not a kept node is a removed one: it is told to stop (a removed
 * Sentinel forgets the group, a removed replica's masterauth is replaced by a random one, so the master refuses
 * its next login), its connections to every kept Redis and Sentinel are closed, and the kept Sentinels are reset
 * one at a time, each until it sees the other kept Sentinels and the kept replicas again. Ends with every kept
 * Sentinel seeing exactly the kept nodes, also when nothing was removed (then it only checks).
 */
export function forgetScript(p: MembershipParams, waitSeconds = 60): string {
  const addrs = p.nodes.map((n) => n.address).join(" ");
  const others = p.nodes.length - 1;
  const field = (name: string) => `awk 'p == "${name}" { print; exit } { p = $0 }'`;
  return [
    ...prelude(p),
    // num-other-sentinels and num-slaves of SENTINEL MASTER, as "sentinels replicas"
    `seen() { i=$(r -h "$1" -p ${p.sentinelPort} SENTINEL master ${p.masterName}); ` +
      `printf '%s %s' "$(printf '%s\\n' "$i" | ${field("num-other-sentinels")})" "$(printf '%s\\n' "$i" | ${field("num-slaves")})"; }`,
    "removed=''",
    `for a in ${addrs}; do`,
    `  for ip in $(r -h "$a" -p ${p.sentinelPort} SENTINEL replicas ${p.masterName} | ips) $(r -h "$a" -p ${p.sentinelPort} SENTINEL sentinels ${p.masterName} | ips); do`,
    "    if ipv4 \"$ip\" && ! kept \"$ip\"; then case \" $removed \" in *\" $ip \"*) ;; *) removed=\"$removed $ip\";; esac; fi",
    "  done",
    "done",
    "if [ -n \"$removed\" ]; then",
    "  echo \"the Sentinels still know nodes the stack removed:$removed\"",
    // best effort: a removed node may be down already
    "  for ip in $removed; do",
    `    r -h "$ip" -p ${p.sentinelPort} SENTINEL REMOVE ${p.masterName} >/dev/null || true`,
    // a throwaway password, not a secret: only so the master refuses this replica from now on
    `    r -h "$ip" -p ${p.port} CONFIG SET masterauth "removed-$(od -An -N16 -tx1 /dev/urandom | tr -dc '0-9a-f')" >/dev/null || true`,
    "  done",
    `  for a in ${addrs}; do for port in ${p.port} ${p.sentinelPort}; do`,
    "    r -h \"$a\" -p \"$port\" CLIENT LIST | awk '{ id = \"\"; ip = \"\"; for (i = 1; i <= NF; i++) { if ($i ~ /^id=/) id = substr($i, 4); " +
      "if ($i ~ /^addr=/) { ip = substr($i, 6); sub(/:[0-9]+$/, \"\", ip) } } print id, ip }' | while read -r id ip; do",
    "      case \" $removed \" in *\" $ip \"*) r -h \"$a\" -p \"$port\" CLIENT KILL ID \"$id\" >/dev/null;; esac",
    "    done",
    "  done; done",
    "fi",
    `for a in ${addrs}; do`,
    `  if [ -n "$removed" ]; then [ "$(r -h "$a" -p ${p.sentinelPort} SENTINEL RESET ${p.masterName})" = 1 ] || { echo "SENTINEL RESET refused on $a" >&2; exit 1; }; fi`,
    "  n=0",
    `  until [ "$(seen "$a")" = ${shq(`${others} ${others}`)} ]; do`,
    "    n=$((n + 1))",
    `    [ $n -lt ${waitSeconds} ] || { echo "the Sentinel on $a sees $(seen "$a") (other Sentinels, replicas), not ${others} ${others}, after ${waitSeconds} s" >&2; exit 1; }`,
    "    sleep 1",
    "  done",
    `  echo "the Sentinel on $a sees the ${others} other Sentinels and ${others} replicas the stack keeps"`,
    "done",
  ].join("\n");
}
