#!/usr/bin/env bash
# lab/down.sh — remove every lab VM (nspawn, overlay mounts, disks), the bridge and the state.
# Works from recorded ids (lab/.state/vms/*, $LAB_ROOT/*); idempotent; fine after a partial run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

names=()
for d in "$VM_STATE"/*/ "$LAB_ROOT"/*/; do
  [[ -d "$d" ]] && names+=("$(basename "$d")")
done
mapfile -t names < <(printf '%s\n' "${names[@]}" | sort -u | grep -E '^[a-z][a-z0-9-]{0,10}$' || true)

# stop all in parallel (each waits for a clean poweroff), then tear down one by one
pids=()
for n in "${names[@]}"; do "$LAB_DIR/vm.sh" stop "$n" >/dev/null 2>&1 & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || true; done
rc=0
for n in "${names[@]}"; do "$LAB_DIR/vm.sh" down "$n" || rc=1; done

# any overlay still mounted under the lab root (e.g. state lost): unmount by path
while read -r mp; do
  umount "$mp" 2>/dev/null || umount -l "$mp" || rc=1
done < <(awk -v r="$LAB_ROOT/" 'index($5, r)==1 {print $5}' /proc/self/mountinfo | sort -r)

"$LAB_DIR/net.sh" down || rc=1
for p in systemd unified memory; do
  g="/sys/fs/cgroup/$p/$CGROUP_NAME"
  [[ -d "$g" ]] && { find "$g" -depth -type d -exec rmdir {} \; 2>/dev/null || true; }
done
if [[ $rc == 0 ]]; then
  [[ -d "$LAB_ROOT" ]] && rm -rf --one-file-system "$LAB_ROOT"
  rm -rf "$STATE"
  log "lab removed"
else
  die "lab partly removed; re-run lab/down.sh"
fi
