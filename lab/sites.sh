#!/usr/bin/env bash
# lab/sites.sh up|down|status — the two-site lab (lab/sites-layout.json): one bridge per site, NO L2
# between them, routed through a router network namespace (so keepalived cannot span sites, as in
# production). Each VM gets one route, to the other site's subnet via the router. The host has an
# address on each bridge (SSH) and does not forward. Own state (lab/.sites-state), disks
# (/var/lib/hastack-sites) and cgroups, so lab/down.sh and this script never touch each other's VMs.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SITES="$HERE/sites-layout.json"
export HASTACK_LAB_STATE="$HERE/.sites-state"
export HASTACK_LAB_ROOT=/var/lib/hastack-sites
export HASTACK_LAB_CGROUP=hastack-sites
export HASTACK_LAB_PREFIX; HASTACK_LAB_PREFIX=$(jq -r .prefix "$SITES")
export HASTACK_LAB_SUBNET_BASES; HASTACK_LAB_SUBNET_BASES=$(jq -r '[.sites[].subnet | sub("0/24$"; "")] | join(" ")' "$SITES")
. "$HERE/lib.sh"
need_root
ROUTER=$(jq -r .router "$SITES")
NSITES=$(jq '.sites | length' "$SITES")
TIMEOUT=${LAB_SSH_TIMEOUT:-180}
site() { jq -r --argjson i "$1" ".sites[\$i].$2" "$SITES"; }

# Route of a VM of site $1 to the other site's subnet, through the router (vm.sh writes it).
site_route() {
  local i=$1 j
  for ((j = 0; j < NSITES; j++)); do [[ $j == "$i" ]] || { echo "$(site "$j" subnet) via $(site "$i" routerAddress)"; return; }; done
}

net_up() {
  mkdir -p "$STATE/net"
  if ! ip netns list | grep -qw "$ROUTER"; then
    ip netns add "$ROUTER"; touch "$STATE/net/netns"
  fi
  ip netns exec "$ROUTER" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$ROUTER" link set lo up
  local i br veth
  for ((i = 0; i < NSITES; i++)); do
    br=$(site "$i" bridge); veth="${ROUTER}-s$((i + 1))"
    if ! ip link show "$br" >/dev/null 2>&1; then
      ip link add name "$br" type bridge stp_state 0 forward_delay 0
      echo "$br" >> "$STATE/net/bridges"
    fi
    # VRRP inside a site: no multicast snooping surprises
    echo 0 > "/sys/class/net/$br/bridge/multicast_snooping" 2>/dev/null || true
    ip addr replace "$(site "$i" hostAddress)/$PREFIX" dev "$br"
    ip link set "$br" up
    if ! ip link show "$veth" >/dev/null 2>&1; then
      ip link add "$veth" type veth peer name "r$((i + 1))" netns "$ROUTER"
    fi
    ip link set "$veth" master "$br" up
    ip -n "$ROUTER" addr replace "$(site "$i" routerAddress)/$PREFIX" dev "r$((i + 1))"
    ip -n "$ROUTER" link set "r$((i + 1))" up
  done
  [[ "$(cat /proc/sys/net/ipv4/ip_forward)" == 0 ]] || log "WARNING: net.ipv4.ip_forward=1 on this host: sites may be bridged through it"
}

cmd_up() {
  net_up
  ensure_key
  local i n a pids=() fail=0
  for ((i = 0; i < NSITES; i++)); do
    local br route; br=$(site "$i" bridge); route=$(site_route "$i")
    while read -r n a; do
      HASTACK_LAB_BRIDGE=$br HASTACK_LAB_ROUTE=$route bash "$HERE/vm.sh" up "$n" "$a" & pids+=($!)
    done < <(jq -r --argjson i "$i" '.sites[$i].vms[] | "\(.name) \(.address)"' "$SITES")
  done
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
  [[ $fail == 0 ]] || die "some VMs failed to start (see $VM_STATE/*/console.log)"
  local end=$(( $(date +%s) + TIMEOUT ))
  for n in $(jq -r '.sites[].vms[].name' "$SITES"); do
    a=$(vm_addr "$n")
    until ssh "${SSH_OPTS[@]}" "root@$a" true 2>/dev/null; do
      (( $(date +%s) < end )) || die "$n ($a) not SSH-ready after ${TIMEOUT}s"
      sleep 0.5
    done
  done
  # hosts.json: names, addresses, pinned host keys (read from each VM's upper layer)
  {
    for s in "$VM_STATE"/*/; do
      n=$(basename "$s")
      jq -n --arg name "$n" --arg address "$(cat "$s/address")" \
        --arg hostKey "$(cut -d' ' -f1,2 "$LAB_ROOT/$n/upper/etc/ssh/ssh_host_ed25519_key.pub")" '{name:$name,address:$address,hostKey:$hostKey}'
    done
  } | jq -s --arg key "$SSH_KEY" '{sshUser:"root", privateKeyPath:$key, vms:.}' > "$STATE/hosts.json.tmp"
  mv "$STATE/hosts.json.tmp" "$STATE/hosts.json"
  log "sites lab up: $(jq '.vms | length' "$STATE/hosts.json") VMs SSH-ready"
}

cmd_down() {
  local names=() n rc=0 pids=()
  for d in "$VM_STATE"/*/ "$LAB_ROOT"/*/; do [[ -d "$d" ]] && names+=("$(basename "$d")"); done
  mapfile -t names < <(printf '%s\n' "${names[@]}" | sort -u | grep -E '^[a-z][a-z0-9-]{0,10}$' || true)
  for n in "${names[@]}"; do bash "$HERE/vm.sh" stop "$n" >/dev/null 2>&1 & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || true; done
  for n in "${names[@]}"; do bash "$HERE/vm.sh" down "$n" || rc=1; done
  while read -r mp; do umount "$mp" 2>/dev/null || umount -l "$mp" || rc=1; done \
    < <(awk -v r="$LAB_ROOT/" 'index($5, r)==1 {print $5}' /proc/self/mountinfo | sort -r)
  # only what this script recorded making
  if [[ -f "$STATE/net/bridges" ]]; then
    while read -r br; do
      [[ -n "$br" ]] && ip link show "$br" >/dev/null 2>&1 && { ip link set "$br" down; ip link del "$br"; }
    done < "$STATE/net/bridges"
  fi
  for ((i = 0; i < NSITES; i++)); do ip link del "${ROUTER}-s$((i + 1))" >/dev/null 2>&1 || true; done
  [[ -f "$STATE/net/netns" ]] && ip netns del "$ROUTER" 2>/dev/null || true
  for p in systemd unified memory; do
    g="/sys/fs/cgroup/$p/$CGROUP_NAME"
    [[ -d "$g" ]] && { find "$g" -depth -type d -exec rmdir {} \; 2>/dev/null || true; }
  done
  if [[ $rc == 0 ]]; then
    [[ -d "$LAB_ROOT" ]] && rm -rf --one-file-system "$LAB_ROOT"
    rm -rf "$STATE"
    log "sites lab removed"
  else
    die "sites lab partly removed; re-run lab/sites.sh down"
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) bash "$HERE/vm.sh" status; ip netns list | grep -w "$ROUTER" || echo "router $ROUTER: absent" ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
