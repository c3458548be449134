# Shared settings and helpers for the lab scripts (sourced, not run).
# shellcheck shell=bash

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/.." && pwd)"
LAYOUT="$LAB_DIR/layout.json"
# HASTACK_LAB_* overrides let a second lab (lab/sites.sh: routed sites; the VMmanager lab test) share
# these scripts with its own state, disks, bridges and subnets, so neither lab's teardown touches the other's VMs.
STATE="${HASTACK_LAB_STATE:-$LAB_DIR/.state}"   # gitignored: keys, pids, hosts.json, logs
VM_STATE="$STATE/vms"                     # one dir per VM: address, root, pid, console.log
# Disks of the VMs (overlay upper + work + merged mount point). On disk, not tmpfs,
# so a VM's disk survives a crash of the VM.
LAB_ROOT="${HASTACK_LAB_ROOT:-/var/lib/hastack-lab}"
BRIDGE="${HASTACK_LAB_BRIDGE:-$(jq -r .bridge "$LAYOUT")}"
HOST_ADDR="${HASTACK_LAB_HOST_ADDR:-$(jq -r .hostAddress "$LAYOUT")}"   # the host's address on the bridge
PREFIX="${HASTACK_LAB_PREFIX:-$(jq -r .prefix "$LAYOUT")}"
# the only addresses the lab ever uses (a /24 each)
read -r -a SUBNET_BASES <<< "${HASTACK_LAB_SUBNET_BASES:-10.213.7.}"
SUBNET_BASE="${SUBNET_BASES[0]}"
CGROUP_NAME="${HASTACK_LAB_CGROUP:-hastack-lab}"
# a route to other lab subnets through a router (multi-site lab): "CIDR via ADDRESS", empty = none
ROUTE="${HASTACK_LAB_ROUTE:-}"
SSH_KEY="$STATE/id_ed25519"
SSH_OPTS=(-i "$SSH_KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=3)

# Packaged daemons whose autostart is disabled in every VM (and stopped on the host).
LAB_DAEMONS=(postgresql patroni etcd pgbouncer haproxy keepalived nginx redis-server redis-sentinel)

log() { echo "lab: $*" >&2; }
die() { echo "lab: ERROR: $*" >&2; exit 1; }

need_root() { [[ $EUID -eq 0 ]] || die "must run as root"; }

check_name() { [[ "$1" =~ ^[a-z][a-z0-9-]{0,10}$ ]] || die "bad VM name '$1' (a-z0-9-, max 11 chars)"; }

check_addr() {
  local b last=
  for b in "${SUBNET_BASES[@]}"; do
    [[ "$1" == "$b"* && "${1#"$b"}" =~ ^[0-9]{1,3}$ ]] && last=${1#"$b"}
  done
  [[ -n "$last" ]] || die "address '$1' is outside the lab subnets ${SUBNET_BASES[*]/%/0/24}"
  (( last >= 2 && last <= 254 )) || die "address '$1' not usable for a VM"
}

# address of a VM: recorded state first, layout second
vm_addr() {
  local name=$1
  if [[ -f "$VM_STATE/$name/address" ]]; then cat "$VM_STATE/$name/address"; return; fi
  local a; a=$(jq -r --arg n "$name" '.vms[]|select(.name==$n)|.address' "$LAYOUT")
  [[ -n "$a" ]] || die "unknown VM '$name'"
  echo "$a"
}

# Is PID a live systemd-nspawn for machine NAME? (guards against pid reuse)
is_nspawn_of() {
  local pid=$1 name=$2
  [[ -n "$pid" && -r /proc/$pid/cmdline ]] || return 1
  local cmd; cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *systemd-nspawn* && "$cmd" == *" -M $name "* ]]
}

# nspawn pid of VM NAME: the recorded one; if the record is lost, the nspawn whose command
# line names this VM's own overlay directory (a lab path, never a guess by program name)
vm_pid() {
  if [[ -f "$VM_STATE/$1/pid" ]]; then cat "$VM_STATE/$1/pid"; return 0; fi
  local p
  for p in /proc/[0-9]*; do
    [[ "$(tr '\0' ' ' 2>/dev/null < "$p/cmdline")" == *systemd-nspawn*" -M $1 -D $LAB_ROOT/$1/merged "* ]] &&
      { echo "${p#/proc/}"; return 0; }
  done
  return 0
}

vm_running() { local p; p=$(vm_pid "$1"); is_nspawn_of "$p" "$1"; }

# PID (host view) of the VM's init: the child of nspawn that is PID 1 of a new pid namespace
vm_init_pid() {
  local npid=$1 c
  for c in $(cat /proc/"$npid"/task/*/children 2>/dev/null); do
    if [[ "$(readlink /proc/"$c"/ns/pid 2>/dev/null)" != "$(readlink /proc/self/ns/pid)" ]]; then
      echo "$c"; return 0
    fi
  done
  return 1
}

# the lab's SSH key pair, generated once (callers that fork VMs in parallel call it first)
ensure_key() {
  mkdir -p "$STATE"
  [[ -f "$SSH_KEY" && -f "$SSH_KEY.pub" ]] || {
    rm -f "$SSH_KEY" "$SSH_KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C hastack-lab -f "$SSH_KEY"
  }
}

is_mounted() { awk -v m="$1" '$5==m {f=1} END {exit !f}' /proc/self/mountinfo; }
