#!/bin/bash
# Managed by hastack (PatroniCluster): a site's role change, run on each member of a multi-site cluster
# by `pulumi up` and by `npm run switchover` / `npm run failover`. Only the member that leads (the
# read-write leader, or a standby cluster's standby leader) acts; on the others every command is a no-op.
#
#   site-role status                    one JSON line: this member and its cluster
#   site-role demote  < CONFIG_JSON     leader → standby cluster of another site (pause, fast stop, PATCH, resume)
#   site-role fence                     before Patroni starts (ExecStartPre): when another site leads, make sure
#                                       this cluster's config in etcd says standby_cluster, so a site that
#                                       comes back after a failover never elects a read-write leader of its own
#   site-role promote [--force] URL...  < CONFIG_JSON
#                                       standby leader → leader, after it has replayed everything the members at
#                                       URL... (the old primary site's REST APIs) hold; refuses while one of
#                                       them accepts writes, and when none answers unless --force
#
# CONFIG_JSON is the dynamic configuration to PATCH (it adds or removes `standby_cluster`). Settings come
# from the env file written next to Patroni's config; REST credentials from a root-only curl config.
set -euo pipefail
ENV_FILE=${HASTACK_SITE_ENV:-/etc/patroni/hastack-site.env}
# shellcheck source=/dev/null
. "$ENV_FILE"
: "${REST:?}" "${DATA:?}" "${BIN:?}" "${PGPORT:?}" "${SOCKET:?}" "${AUTH:?}"
WAIT_S=${HASTACK_SITE_WAIT_S:-120}

say() { printf 'site-role: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
get() { curl -sf --max-time 5 "$1"; }
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$1" || true; }
patch() { curl -sf --max-time 30 -K "$AUTH" -XPATCH -H 'Content-Type: application/json' -d @- "$REST/config" >/dev/null; }
me() { get "$REST/patroni"; }
# WAL position of a member's /patroni answer: a leader's write position, a replica's replay position
pos() { jq -r '.xlog.location // .xlog.replayed_location // empty'; }
controldata() { "$BIN/pg_controldata" -D "$DATA" | sed -n "s/^$1: *//p"; }
psql_local() { (cd / && runuser -u postgres -- psql -X -qAt -h "$SOCKET" -p "$PGPORT" -d postgres -c "$1"); }
until_ok() { # until_ok SECONDS WHAT CMD...: poll CMD every 0.2 s
  local end=$(( $(date +%s) + $1 )) what=$2; shift 2
  until "$@"; do [ "$(date +%s)" -lt "$end" ] || die "timed out after ${WAIT_S}s waiting for $what"; sleep 0.2; done
}
role_is() { [ "$(me | jq -r '.role + "/" + .state')" = "$1" ]; }
# some member of this cluster runs as standby leader (after a demotion Patroni may elect any member)
standby_leader_running() { get "$REST/cluster" | jq -e '[.members[] | select(.role == "standby_leader" and .state == "running")] | length == 1' >/dev/null; }
paused() { [ "$(me | jq -r '.pause // false')" = true ]; }
read_write() { [ "$(code "$REST/primary")" = 200 ]; }
# some member of this cluster runs as its read-write leader (the lock may move to another member while the
# standby block is removed: seen on the lab, where d2pg3 was promoted although d2pg1 had sent the PATCH)
leader_running() { get "$REST/cluster" | jq -e '[.members[] | select((.role == "leader" or .role == "master") and .state == "running")] | length == 1' >/dev/null; }

status() {
  local cfg m
  m=$(me) || die "Patroni's REST API does not answer on $REST"
  cfg=$(get "$REST/config") || cfg='{}'
  jq -cn --argjson m "$m" --argjson c "$cfg" --arg primary "$(code "$REST/primary")" \
    '{role: $m.role, state: $m.state, timeline: $m.timeline, position: ($m.xlog.location // $m.xlog.replayed_location),
      received: $m.xlog.received_location, paused: ($m.pause // false), readWrite: ($primary == "200"),
      standbyCluster: ($c.standby_cluster != null)}'
}

demote() {
  local body cfg ckpt tli
  body=$(cat)
  cfg=$(get "$REST/config") || die "Patroni's REST API does not answer on $REST"
  if [ "$(jq -r '.standby_cluster != null' <<<"$cfg")" = true ]; then
    [ "$(code "$REST/primary")" != 200 ] || die "this cluster has standby_cluster set but $REST still answers /primary: refusing to touch it"
    say "already a standby cluster"; printf '%s' "$body" | patch; echo already-standby; return
  fi
  if [ "$(code "$REST/primary")" != 200 ]; then say "not the read-write leader: nothing to do on this member"; echo not-leader; return; fi
  # Debian's Patroni 3.0.2 stops a running leader with an immediate shutdown when standby_cluster appears
  # (WAL the other site has not received yet would be lost): pause Patroni, stop PostgreSQL ourselves with a
  # fast shutdown (a shutdown checkpoint, every WAL sender drained to its standby), then change the config.
  say "pausing Patroni"
  printf '{"pause": true}' | patch
  until_ok "$WAIT_S" "Patroni to report pause" paused
  psql_local 'CHECKPOINT' >/dev/null || true
  say "fast shutdown of PostgreSQL"
  (cd / && runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" stop -m fast -w -t "$WAIT_S" >/dev/null)
  [ "$(controldata 'Database cluster state')" = "shut down" ] || die "PostgreSQL did not shut down cleanly: $(controldata 'Database cluster state')"
  ckpt=$(controldata 'Latest checkpoint location'); tli=$(controldata "Latest checkpoint's TimeLineID")
  say "shutdown checkpoint $ckpt on timeline $tli"
  # one PATCH: the standby_cluster block and the end of the pause together, so no member ever runs unpaused without it
  jq -c '. + {pause: false}' <<<"$body" | patch
  until_ok "$WAIT_S" "a member of this cluster to run as standby leader" standby_leader_running
  echo "demoted checkpoint=$ckpt timeline=$tli"
}

promote() {
  local force=false body cfg mine best=0 p c answered=0 i url
  if [ "${1:-}" = --force ]; then force=true; shift; fi
  body=$(cat)
  cfg=$(get "$REST/config") || die "Patroni's REST API does not answer on $REST"
  if [ "$(jq -r '.standby_cluster == null' <<<"$cfg")" = true ]; then
    say "this cluster already leads"; printf '%s' "$body" | patch; echo already-primary; return
  fi
  if ! role_is standby_leader/running; then say "not the standby leader: nothing to do on this member"; echo not-leader; return; fi
  # the old primary site: nobody there may still accept writes, and we must hold everything it wrote.
  # Every member is asked at once: on a lost site each question waits for curl's timeout, and asking
  # one after the other cost 8 s per dead member before a forced failover could begin.
  PROBES=$(mktemp -d); trap 'rm -rf "$PROBES"' EXIT  # global: the trap runs after this function returned
  i=0
  for url in "$@"; do
    i=$((i + 1))
    (code "$url/primary" >"$PROBES/$i.code") &
    (get "$url/patroni" >"$PROBES/$i.patroni" || true) &
  done
  wait
  i=0
  for url in "$@"; do
    i=$((i + 1))
    c=$(cat "$PROBES/$i.code")
    [ "$c" != 200 ] || die "$url still accepts writes (GET /primary = 200): demote that site first (pulumi up there with the new primarySite), or it would be a second primary"
    if p=$(pos <"$PROBES/$i.patroni") && [ -n "$p" ]; then answered=$((answered + 1)); [ "$p" -le "$best" ] || best=$p; fi
  done
  if [ "$answered" = 0 ] && [ "$#" -gt 0 ]; then
    $force || die "no member of the old primary site answers ($*): if that site is lost, promote with \`npm run failover -- --to <this site> --force\` (it may lose what the old site wrote last)"
    say "forced: the old primary site does not answer; promoting with what this site has"
  fi
  if [ "$answered" -gt 0 ]; then
    caught_up() { p=$(me | pos); [ -n "$p" ] && [ "$p" -ge "$best" ]; }
    until_ok "$WAIT_S" "this standby leader to replay up to $best (the old primary site's last position)" caught_up
  fi
  mine=$(me)
  say "promoting at $(jq -c '{replayed: .xlog.replayed_location, received: .xlog.received_location, timeline}' <<<"$mine")"
  printf '%s' "$body" | patch
  if ! (until_ok "$WAIT_S" "a member of this cluster to accept writes" leader_running); then
    # what Patroni was doing instead, for whoever reads the failure
    say "Patroni: $(me || true)"
    journalctl -u patroni.service --no-pager -n 30 2>/dev/null | sed 's/^/site-role: patroni: /' >&2 || true
    exit 1
  fi
  echo "promoted leader=$(get "$REST/cluster" | jq -r '[.members[] | select(.role == "leader" or .role == "master")][0].name') oldSitePosition=$best replayed=$(jq -r '.xlog.replayed_location // 0' <<<"$mine") received=$(jq -r '.xlog.received_location // 0' <<<"$mine") timeline=$(me | jq -r .timeline)"
}

fence() {
  local url leading="" cfg key
  [ -n "${OTHER_SITES:-}" ] || exit 0
  for url in $OTHER_SITES; do [ "$(code "$url/primary")" = 200 ] && leading=$url && break; done
  # nobody else leads (or nobody answers: a partition looks the same): start as configured
  [ -n "$leading" ] || exit 0
  # etcd root credentials, when etcd authentication is on
  if [ -f /etc/etcd/hastack-etcdctl.env ]; then . /etc/etcd/hastack-etcdctl.env; fi
  export ETCDCTL_API=3 ETCDCTL_ENDPOINTS="${ETCD:?}"
  key="${NAMESPACE%/}/${SCOPE:?}/config"
  until_ok 60 "etcd on this member (to fence Patroni: $leading leads)" etcdctl --command-timeout=3s endpoint health
  cfg=$(etcdctl --command-timeout=5s get --print-value-only "$key") || die "cannot read $key"
  # a cluster never bootstrapped has no config yet: Patroni's bootstrap section decides
  [ -n "$cfg" ] || exit 0
  [ "$(jq -r '.standby_cluster != null' <<<"$cfg")" = false ] || exit 0
  jq -c --arg hosts "$OTHER_PG" --argjson port "${OTHER_PGPORT:?}" --arg slot "${SLOT:?}" \
    '. + {standby_cluster: {host: $hosts, port: $port, primary_slot_name: $slot, create_replica_methods: ["basebackup"]}, slots: null}' <<<"$cfg" \
    | etcdctl --command-timeout=5s put "$key" >/dev/null
  say "fenced: $leading accepts writes, so this cluster starts as a standby cluster of it (set in $key)"
}

case "${1:-}" in
  status) status ;;
  fence) fence ;;
  demote) demote ;;
  promote) shift; promote "$@" ;;
  *) echo "usage: site-role status | demote | promote [--force] URL..." >&2; exit 2 ;;
esac
