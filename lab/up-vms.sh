#!/usr/bin/env bash
# lab/up-vms.sh — boot the reference layout (lab/layout.json) in parallel, wait until every
# VM answers SSH, write lab/.state/hosts.json (names, addresses, pinned ssh host keys).
# Optional args: VM names to boot only those (default: all of the layout).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root
TIMEOUT=${LAB_SSH_TIMEOUT:-180}

"$LAB_DIR/net.sh" up
ensure_key
mapfile -t ALL < <(jq -r '.vms[].name' "$LAYOUT")
[[ $# -gt 0 ]] && NAMES=("$@") || NAMES=("${ALL[@]}")
t0=$(date +%s%N)
elapsed() { echo $(( ($(date +%s%N) - t0) / 1000000 )) | awk '{printf "%.1f", $1/1000}'; }

# create/boot: each `vm.sh up` only writes files and forks nspawn, so run them in parallel
pids=()
for n in "${NAMES[@]}"; do
  a=$(jq -r --arg n "$n" '.vms[]|select(.name==$n)|.address' "$LAYOUT")
  [[ -n "$a" ]] || die "VM $n is not in $LAYOUT"
  "$LAB_DIR/vm.sh" up "$n" "$a" & pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[[ $fail == 0 ]] || die "some VMs failed to start (see lab/.state/vms/*/console.log)"

wait_ssh() {
  local n=$1 a; a=$(vm_addr "$n")
  local end=$(( $(date +%s) + TIMEOUT ))
  until ssh "${SSH_OPTS[@]}" "root@$a" true 2>/dev/null; do
    (( $(date +%s) < end )) || { echo "lab: $n ($a) not SSH-ready after ${TIMEOUT}s" >&2; return 1; }
    sleep 0.5
  done
  echo "lab: $n ssh ready after $(elapsed)s" >&2
}
pids=()
for n in "${NAMES[@]}"; do wait_ssh "$n" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[[ $fail == 0 ]] || die "some VMs did not become SSH-ready"

# hosts.json for every VM the lab has (not only the ones just booted)
tmp=$(mktemp "$STATE/hosts.json.XXXX")
{
  for s in "$VM_STATE"/*/; do
    n=$(basename "$s")
    key=$(cut -d' ' -f1,2 "$LAB_ROOT/$n/upper/etc/ssh/ssh_host_ed25519_key.pub")
    jq -n --arg name "$n" --arg address "$(cat "$s/address")" --arg hostKey "$key" \
      '{name:$name,address:$address,hostKey:$hostKey}'
  done
} | jq -s --arg key "$SSH_KEY" --arg user root --slurpfile layout "$LAYOUT" \
      '{sshUser:$user, privateKeyPath:$key, bridge:$layout[0].bridge, subnet:$layout[0].subnet,
        vips:$layout[0].vips, vms:.}' > "$tmp"
mv "$tmp" "$STATE/hosts.json"
echo "lab: ${#NAMES[@]} VMs SSH-ready in $(elapsed)s; $STATE/hosts.json" >&2
