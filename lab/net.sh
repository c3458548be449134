#!/usr/bin/env bash
# lab/net.sh up|down|status — the lab bridge (hsbr0, 10.213.7.1/24) on the host.
# No NAT, no forwarding, no route other than the connected /24.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

case "${1:-}" in
  up)
    mkdir -p "$STATE"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
      ip link add name "$BRIDGE" type bridge stp_state 0 forward_delay 0
      echo "$BRIDGE" > "$STATE/bridge"          # recorded: we created it, we remove it
      log "created bridge $BRIDGE"
    fi
    # VRRP/multicast: no snooping surprises on the lab segment
    echo 0 > "/sys/class/net/$BRIDGE/bridge/multicast_snooping" 2>/dev/null || true
    ip addr replace "$HOST_ADDR/$PREFIX" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    # the host must never route lab traffic anywhere
    [[ "$(cat /proc/sys/net/ipv4/ip_forward)" == 0 ]] || log "WARNING: net.ipv4.ip_forward=1 on this host (VMs have no gateway, but check)"
    ;;
  down)
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
      # only remove the bridge that the lab made (recorded) or that carries the lab address
      if [[ -f "$STATE/bridge" ]] || ip -br addr show dev "$BRIDGE" | grep -q "$HOST_ADDR/"; then
        ip link set "$BRIDGE" down || true
        ip link del "$BRIDGE"
        log "removed bridge $BRIDGE"
      else
        log "bridge $BRIDGE exists but was not made by the lab; left alone"
      fi
    fi
    rm -f "$STATE/bridge"
    ;;
  status)
    ip -br addr show dev "$BRIDGE" 2>/dev/null || echo "$BRIDGE: absent"
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
