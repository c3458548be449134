// Scale out and in: etcd membership and Patroni members that follow `hastack:postgres.nodes`.
//
// etcd reads its INITIAL_* settings only while its data dir is empty, and a member that starts with
// `initial-cluster-state new` next to a running cluster never joins it (another cluster id). So:
// - a new member asks the running cluster first (`member add`, then `initial-cluster-state existing` with the
//   membership etcd reports) in a file of its own that a systemd drop-in reads after /etc/default/etcd;
//   on a first deploy no cluster answers and the rendered `new` settings apply unchanged;
// - a member leaves (`member remove`) only when the stack no longer wants it: the stack writes the node names
//   it wants to one etcd key before any delete runs, and the leaving member's delete reads it. A `pulumi
//   destroy` leaves that key as it was, so a destroyed stack keeps a consistent membership on its disks;
// - a Patroni leader that leaves hands its role over by a switchover before it stops.
import { HostSpec, shq } from "../common";
import { ETCDCTL_ENV_PATH, etcdEndpoints, REST_AUTH_PATH } from "./render";

/** The node names the stack wants as etcd members, space-separated (outside Patroni's namespace; root writes it). */
export const DESIRED_MEMBERS_KEY = "/hastack/etcd-members";
/** etcd settings for a member that joins a running cluster, read after /etc/default/etcd. */
export const JOIN_ENV_PATH = "/etc/etcd/hastack-join.env";
export const JOIN_DROPIN_PATH = "/etc/systemd/system/etcd.service.d/hastack-join.conf";

/** Where the scripts read root's etcdctl login and write the join settings (other paths in the daemon tests). */
export interface Files { readonly etcdctlEnv: string; readonly joinEnv: string }
const HOST_FILES: Files = { etcdctlEnv: ETCDCTL_ENV_PATH, joinEnv: JOIN_ENV_PATH };

/**
 * etcdctl against `endpoints`: first without a login (answers while etcd auth is off; etcd refuses a login
 * then), then as root from the etcdctl environment file (its password never in argv).
 */
function ctlFunctions(endpoints: string, f: Files): string[] {
  return [
    `ctl() { ETCDCTL_API=3 etcdctl --endpoints=${shq(endpoints)} --command-timeout=5s "$@"; }`,
    `ctla() { ctl "$@" 2>/dev/null && return 0; [ -r ${shq(f.etcdctlEnv)} ] || return 1; ( . ${shq(f.etcdctlEnv)}; ctl "$@" ); }`,
  ];
}

const peerUrl = (h: HostSpec, peerPort: number) => `http://${h.address}:${peerPort}`;

/**
 * Before a member's first start: join a running cluster when this member has no data yet and one answers.
 * `member list -w simple` lines are "id, status, name, peer-urls, client-urls, learner"; a member added but
 * not started yet has no name, so names come from the node list by peer URL. The join file names every
 * current member, as etcd requires of `initial-cluster-state existing`.
 */
export function etcdJoinScript(self: HostSpec, nodes: readonly HostSpec[], clientPort: number, peerPort: number, dataDir: string,
  f: Files = HOST_FILES): string {
  const others = nodes.filter((n) => n.name !== self.name);
  const names = nodes.map((n) => `${peerUrl(n, peerPort)}=${n.name}`).join(" ");
  return [
    `if [ ! -d ${shq(`${dataDir}/member`)} ]; then`,
    ...(others.length === 0 ? ["  list=''"] : [
      ...ctlFunctions(etcdEndpoints(others, clientPort), f).map((l) => `  ${l}`),
      "  list=$(ctla member list -w simple 2>/dev/null) || list=''",
    ]),
    `  self_peer=${shq(peerUrl(self, peerPort))}`,
    "  if [ -n \"$list\" ]; then",
    "    if ! printf '%s\\n' \"$list\" | awk -F', ' -v u=\"$self_peer\" '$4 == u { f = 1 } END { exit !f }'; then",
    // etcd refuses to add a voting member until the member it asks has been connected to every other for
    // 5 s (a member restarted just before, in the rolling chain): retry for a minute
    "      tries=0",
    `      until out=$(ctla member add ${shq(self.name)} --peer-urls="$self_peer" 2>&1); do`,
    "        tries=$((tries + 1))",
    `        if [ "$tries" -ge 30 ]; then echo "etcd: ${self.name} could not join the running cluster (member add): $out" >&2; exit 1; fi`,
    "        sleep 2",
    "      done",
    "      list=$(ctla member list -w simple)",
    "    fi",
    `    initial=$(printf '%s\\n' "$list" | awk -F', ' -v names=${shq(names)} '`,
    "      BEGIN { n = split(names, kv, \" \"); for (i = 1; i <= n; i++) { j = index(kv[i], \"=\"); by[substr(kv[i], 1, j - 1)] = substr(kv[i], j + 1) } }",
    "      NF >= 4 { name = $3; if (name == \"\") name = ($4 in by) ? by[$4] : \"m\" $1; out = out (out == \"\" ? \"\" : \",\") name \"=\" $4 }",
    "      END { print out }')",
    `    mkdir -p "$(dirname ${shq(f.joinEnv)})"`,
    `    printf 'ETCD_INITIAL_CLUSTER=%s\\nETCD_INITIAL_CLUSTER_STATE=existing\\n' "$initial" > ${shq(f.joinEnv)}`,
    `    echo "joining the running etcd cluster as ${self.name}: $initial"`,
    "  else",
    `    rm -f ${shq(f.joinEnv)}`,
    "  fi",
    "fi",
  ].join("\n");
}

/** The create of a member's etcd service: etcdJoinScript, the drop-in that reads its file, then start etcd. */
export function etcdJoinAndStartScript(self: HostSpec, nodes: readonly HostSpec[], clientPort: number, peerPort: number, dataDir: string): string {
  return [
    etcdJoinScript(self, nodes, clientPort, peerPort, dataDir),
    // the drop-in is the same on every member and harmless without the join file (EnvironmentFile=-); a later
    // EnvironmentFile overrides an earlier one, so the join settings win over /etc/default/etcd's
    `mkdir -p "$(dirname ${shq(JOIN_DROPIN_PATH)})"`,
    `want=$(printf '[Service]\\nEnvironmentFile=-%s\\n' ${shq(JOIN_ENV_PATH)})`,
    `if [ "$(cat ${shq(JOIN_DROPIN_PATH)} 2>/dev/null)" != "$want" ]; then printf '%s\\n' "$want" > ${shq(JOIN_DROPIN_PATH)}; systemctl daemon-reload; fi`,
    "systemctl enable etcd.service >/dev/null 2>&1",
    "systemctl is-active --quiet etcd.service || systemctl start --no-block etcd.service",
  ].join("\n");
}

/**
 * When the stack's wanted members (DESIRED_MEMBERS_KEY) no longer name this member, remove it from the
 * cluster (the others keep their quorum at the new size). Without the key nobody leaves.
 */
export function etcdLeaveScript(self: HostSpec, nodes: readonly HostSpec[], clientPort: number, peerPort: number, dataDir: string,
  f: Files = HOST_FILES): string {
  return [
    `if [ -d ${shq(`${dataDir}/member`)} ]; then`,
    ...ctlFunctions(etcdEndpoints(nodes, clientPort), f).map((l) => `  ${l}`),
    `  wanted=$(ctla get --print-value-only ${shq(DESIRED_MEMBERS_KEY)} 2>/dev/null) || wanted=''`,
    `  if [ -n "$wanted" ] && ! printf ' %s ' "$wanted" | grep -qF ${shq(` ${self.name} `)}; then`,
    `    id=$(ctla member list -w simple | awk -F', ' -v u=${shq(peerUrl(self, peerPort))} '$4 == u { print $1 }')`,
    // as for member add, etcd refuses while its peers have not all been connected for 5 s: retry for a minute
    // the wanted members removed it already (desiredMembersScript) unless it could not be reached: a few
    // tries, then stop anyway (a member cut off by the firewalls is not part of the quorum)
    `    if [ -n "$id" ]; then`,
    "      tries=0",
    `      until out=$(ctla member remove "$id" 2>&1); do`,
    "        tries=$((tries + 1))",
    `        if [ "$tries" -ge 5 ]; then echo "etcd: ${self.name} could not remove itself (member remove): $out" >&2; break; fi`,
    "        sleep 2",
    "      done",
    `      [ "$tries" -ge 5 ] || echo "${self.name} left the etcd cluster"`,
    "    fi",
    "  fi",
    "fi",
  ].join("\n");
}

/** The delete of a member's etcd service: etcdLeaveScript, then stop etcd. */
export function etcdLeaveAndStopScript(self: HostSpec, nodes: readonly HostSpec[], clientPort: number, peerPort: number, dataDir: string): string {
  return [etcdLeaveScript(self, nodes, clientPort, peerPort, dataDir), "systemctl disable --now etcd.service >/dev/null 2>&1 || true"].join("\n");
}

/**
 * Records the node names the stack wants, then removes from etcd every member whose peer URL is not one of
 * theirs (run from a wanted member after etcd authentication is settled; idempotent). This side acts because
 * a removed member may no longer reach the others: their firewalls follow the node list in the same deploy.
 * etcd allows removing a member it is not connected to at once, and a connected one while a quorum stays.
 */
export function desiredMembersScript(nodes: readonly HostSpec[], clientPort: number, peerPort: number, f: Files = HOST_FILES): string {
  return [
    ...ctlFunctions(etcdEndpoints(nodes, clientPort), f),
    `ctla put ${shq(DESIRED_MEMBERS_KEY)} ${shq(nodes.map((n) => n.name).join(" "))} >/dev/null`,
    `wanted_peers=${shq(` ${nodes.map((n) => peerUrl(n, peerPort)).join(" ")} `)}`,
    "ctla member list -w simple | awk -F', ' '{ print $1, $4 }' | while read -r id peer; do",
    "  case \"$wanted_peers\" in *\" $peer \"*) continue;; esac",
    "  tries=0",
    "  until out=$(ctla member remove \"$id\" 2>&1); do",
    "    tries=$((tries + 1))",
    "    if [ \"$tries\" -ge 30 ]; then echo \"etcd: could not remove the member at $peer, which the stack no longer names: $out\" >&2; exit 1; fi",
    "    sleep 2",
    "  done",
    "  echo \"removed the etcd member at $peer\"",
    "done",
  ].join("\n");
}

/**
 * handOverScript's judge, reading Patroni's /cluster on stdin with the kept member names as argv[1]: prints
 * "<leaving leader> <candidate>" (candidate "-" when no kept member is fit), or nothing when a kept member leads
 * or none leads; with argv[2] "led", "yes" or "no" for whether a kept member leads.
 */
export const HAND_OVER_PY = [
  "import json, sys",
  "want = set(sys.argv[1].split())",
  "m = json.load(sys.stdin).get('members', [])",
  "lead = [x['name'] for x in m if x.get('role') == 'leader' and x.get('state') == 'running']",
  // `led`: only whether a kept member leads (during the switchover there is a moment with no leader at all)
  "if sys.argv[2:] == ['led']: print('yes' if lead and lead[0] in want else 'no'); sys.exit(0)",
  "if not lead or lead[0] in want: sys.exit(0)",
  "def lag(x):",
  "    return x.get('lag') if isinstance(x.get('lag'), int) else float('inf')",
  "fit = [x for x in m if x.get('name') in want and x.get('role') in ('replica', 'sync_standby')",
  "       and x.get('state') in ('running', 'streaming') and not (x.get('tags') or {}).get('nofailover')]",
  "fit.sort(key=lambda x: (x.get('role') != 'sync_standby', lag(x)))",
  "print(lead[0], fit[0]['name'] if fit else '-')",
].join("\n");

/**
 * Before the firewalls change: when the leader is a member the stack no longer names, switch over to one it
 * names and wait until one leads. Without this the firewalls, which follow the node list, would cut the
 * leader off from etcd and force an unplanned failover. The candidate is named: left to choose, Patroni may
 * pick another member the stack removes (seen in the scale lab: two removed, it chose the other one, and no
 * kept member led). A kept synchronous standby first (synchronous mode allows only that one), else the kept
 * replica with the least lag. Nothing to do on a first deploy (no REST API answers yet) or when a named member leads.
 *
 * Patroni's POST /switchover answers 503 "status unknown" when the switchover takes longer than its own short
 * wait (a loaded host), and refuses one while the candidate lags or restarts; so whatever the answer, the script
 * waits for a kept leader, and asks again (judging the candidate afresh) up to HAND_OVER_ATTEMPTS times.
 */
export const HAND_OVER_ATTEMPTS = 4;
export function handOverScript(nodes: readonly HostSpec[], restApiPort: number, waitSeconds = 60, pauseSeconds = 5): string {
  const urls = nodes.map((n) => `http://${n.address}:${restApiPort}`);
  const names = shq(nodes.map((n) => n.name).join(" "));
  return [
    `fetch() { for u in ${urls.map(shq).join(" ")}; do c=$(curl -sf --max-time 5 "$u/cluster") && { printf '%s' "$c"; return 0; }; done; return 1; }`,
    `judge() { python3 -c ${shq(HAND_OVER_PY)} ${names} "$@"; }`,
    "cluster=$(fetch) || exit 0",
    `set -- $(printf '%s' "$cluster" | judge)`,
    "[ $# -eq 2 ] || exit 0",
    "attempt=0",
    "while :; do",
    "  attempt=$((attempt + 1))",
    "  leaving=$1; candidate=$2",
    `  if [ "$candidate" = - ]; then`,
    `    echo "the leader $leaving is a member the stack removes, and no member it keeps is a healthy replica to switch over to (try $attempt of ${HAND_OVER_ATTEMPTS})" >&2`,
    `    sleep ${pauseSeconds * 2}`,
    "  else",
    `    echo "the leader $leaving is a member the stack removes: switching over to $candidate first (try $attempt of ${HAND_OVER_ATTEMPTS})"`,
    `    body=$(printf '{"leader": "%s", "candidate": "%s"}' "$leaving" "$candidate")`,
    `    answer=$(curl -s --max-time 60 -K ${REST_AUTH_PATH} -X POST -H 'Content-Type: application/json' -d "$body" -w ' (HTTP %{http_code})' ${shq(`${urls[0]}/switchover`)} 2>&1) || true`,
    `    echo "Patroni: $answer" >&2`,
    // a refusal leaves the leader where it was; "status unknown" means the switchover may still be under way
    `    for i in $(seq ${waitSeconds}); do`,
    `      now=$(fetch | judge led) && [ "$now" = yes ] && exit 0`,
    "      sleep 1",
    "    done",
    "  fi",
    `  if [ "$attempt" -ge ${HAND_OVER_ATTEMPTS} ]; then`,
    `    echo "no member the stack names leads after ${HAND_OVER_ATTEMPTS} tries to switch over from $leaving; switch over by hand (POST /switchover), then deploy again" >&2`,
    "    exit 1",
    "  fi",
    `  sleep ${pauseSeconds}`,
    "  cluster=$(fetch) || continue",
    `  now=$(printf '%s' "$cluster" | judge led) && [ "$now" = yes ] && exit 0`,
    // no leader at this moment (a switchover finishing): keep the last judgement and look again
    `  next=$(printf '%s' "$cluster" | judge)`,
    `  [ -z "$next" ] || set -- $next`,
    "done",
  ].join("\n");
}

/**
 * The delete of a member's Patroni service: a leader with a healthy replica first hands its role over
 * (POST /switchover, Patroni picks the candidate) and waits up to 60 s until another member leads; then
 * Patroni stops. In a `pulumi destroy` every member stops at once and the switchover is simply refused.
 */
export function patroniLeaveAndStopScript(self: HostSpec, restApiPort: number): string {
  const rest = `http://${self.address}:${restApiPort}`;
  const py = [
    "import json, sys",
    "m = json.load(sys.stdin).get('members', [])",
    "me = [x for x in m if x.get('name') == sys.argv[1]]",
    "ok = [x for x in m if x.get('name') != sys.argv[1] and x.get('state') in ('running', 'streaming')]",
    "sys.exit(0 if me and me[0].get('role') == 'leader' and ok else 1)",
  ].join("\n");
  const leads = `curl -sf --max-time 5 ${shq(`${rest}/cluster`)} | python3 -c ${shq(py)} ${shq(self.name)}`;
  return [
    `if ${leads} 2>/dev/null; then`,
    `  body=$(printf '{"leader": "%s"}' ${shq(self.name)})`,
    `  curl -s --max-time 30 -K ${REST_AUTH_PATH} -X POST -H 'Content-Type: application/json' -d "$body" ${shq(`${rest}/switchover`)} >&2 || true`,
    "  for i in $(seq 60); do",
    `    ${leads} 2>/dev/null || break`,
    "    sleep 1",
    "  done",
    "fi",
    "systemctl disable --now 'patroni.service' >/dev/null 2>&1 || true",
  ].join("\n");
}
