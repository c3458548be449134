#!/usr/bin/env bash
# lab/vm.sh — one lab VM = one `systemd-nspawn --boot` container on an overlay of the host's /.
#   vm.sh up NAME ADDRESS   create (first time) and boot; no-op when already running
#   vm.sh down NAME         power off, unmount, delete the VM's disk and state
#   vm.sh crash NAME        kill -9 the VM's init (PID 1 of its pid namespace); disk kept
#   vm.sh start NAME        boot again after a crash/stop, same disk (upper layer)
#   vm.sh stop NAME         clean power-off, disk kept
#   vm.sh status            table of VMs
#   vm.sh key               make the lab's SSH key pair if missing; print the private key's path
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

vm_dir()    { echo "$LAB_ROOT/$1"; }
merged_of() { echo "$LAB_ROOT/$1/merged"; }


mount_vm() {
  local name=$1 d m; d=$(vm_dir "$name"); m=$(merged_of "$name")
  mkdir -p "$d/upper" "$d/work" "$m"
  if [[ ! -e "$d/upper/root" ]]; then
    # a fresh, empty /root: an opaque dir in the upper layer hides the host's /root (dotfiles,
    # caches, tokens) without creating a whiteout per host file
    install -d -m 700 "$d/upper/root"
    python3 -c 'import os,sys; os.setxattr(sys.argv[1], "trusted.overlay.opaque", b"y")' "$d/upper/root"
  fi
  if ! is_mounted "$m"; then
    mount -t overlay "hastack-$name" -o "lowerdir=/,upperdir=$d/upper,workdir=$d/work" "$m"
  fi
}

# Write the VM's identity and config into its overlay (changes land in the upper layer).
prepare_vm() {
  local name=$1 addr=$2 m; m=$(merged_of "$name")
  local sys="$m/etc/systemd/system"

  # identity
  printf '%s\n' "$(tr -d '-' < /proc/sys/kernel/random/uuid)" > "$m/etc/machine-id"
  echo "$name" > "$m/etc/hostname"
  cat > "$m/etc/hosts" <<EOF
127.0.0.1	localhost
$addr	$name
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF

  # network: static address on host0, no gateway; sorts before 80-container-host0.network (DHCP)
  mkdir -p "$m/etc/systemd/network"
  cat > "$m/etc/systemd/network/10-hastack.network" <<EOF
[Match]
Name=host0

[Network]
Address=$addr/$PREFIX
DHCP=no
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
  # multi-site lab: the other sites are reached through the router namespace, nothing else
  if [[ -n "$ROUTE" ]]; then
    printf '\n[Route]\nDestination=%s\nGateway=%s\n' "${ROUTE%% via *}" "${ROUTE##* via }" >> "$m/etc/systemd/network/10-hastack.network"
  fi
  mkdir -p "$sys/multi-user.target.wants" "$sys/sockets.target.wants"
  ln -sfn /lib/systemd/system/systemd-networkd.service "$sys/multi-user.target.wants/systemd-networkd.service"
  ln -sfn /lib/systemd/system/systemd-networkd.socket "$sys/sockets.target.wants/systemd-networkd.socket"
  ln -sfn /lib/systemd/system/ssh.service "$sys/multi-user.target.wants/ssh.service"

  # no autostart of packaged daemons (the program under test starts them), no timers that
  # would try to reach the outside (apt-daily…), nothing useless in a container
  local d f
  for d in "${LAB_DAEMONS[@]}" apt-daily apt-daily-upgrade dpkg-db-backup e2scrub_all e2scrub_reap \
           fstrim man-db systemd-timesyncd systemd-pstore getty@tty1; do
    for f in "$sys"/*.wants/"$d".service "$sys"/*.wants/"$d"@*.service "$sys"/*.wants/"$d".timer; do
      [[ -e "$f" || -L "$f" ]] && rm -f "$f"
    done
  done

  # a real VM has no policy-rc.d: the host image's one (exit 101, a container image's) would make dpkg in a VM
  # neither stop a service whose package is removed nor start one it installs (the drift test removes a package)
  rm -f "$m/usr/sbin/policy-rc.d"

  # sshd: fresh host keys per VM, root by key only
  rm -f "$m"/etc/ssh/ssh_host_*
  ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$m/etc/ssh/ssh_host_ed25519_key"
  ssh-keygen -q -t ecdsa   -N '' -C "root@$name" -f "$m/etc/ssh/ssh_host_ecdsa_key"
  ssh-keygen -q -t rsa -b 2048 -N '' -C "root@$name" -f "$m/etc/ssh/ssh_host_rsa_key"
  mkdir -p "$m/etc/ssh/sshd_config.d"
  cat > "$m/etc/ssh/sshd_config.d/10-hastack-lab.conf" <<EOF
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
  # a fresh Debian /root (the host's dotfiles, caches and tokens stay out of the VM)
  install -d -m 700 "$m/root" "$m/root/.ssh"
  cp /etc/skel/.bashrc /etc/skel/.profile "$m/root/" 2>/dev/null || true
  install -m 600 "$SSH_KEY.pub" "$m/root/.ssh/authorized_keys"

  # host state must not leak into the VM's data dirs (the packaged, never-started
  # PostgreSQL `main` cluster stays: a fresh Debian VM has it too)
  find "$m/var/lib/etcd" "$m/var/lib/redis" -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>/dev/null || true
  if [[ -d "$m/etc/patroni" ]]; then
    for f in "$m"/etc/patroni/*; do
      [[ -e "$f" ]] || continue
      dpkg -S "${f#"$m"}" >/dev/null 2>&1 || rm -rf "$f"
    done
  fi
  local v c
  for v in "$m"/var/lib/postgresql/*/; do
    [[ "$(basename "$v")" =~ ^[0-9]+$ ]] || { rm -rf "$v"; continue; }
    for c in "$v"*/; do
      [[ -d "$c" ]] || continue
      if [[ -d "$m/etc/postgresql/$(basename "$v")/$(basename "$c")" ]]; then
        rm -f "$c/postmaster.pid"
      else
        rm -rf "$c"
      fi
    done
  done
  rm -rf "$m"/var/log/journal/* "$m"/var/log/postgresql/* "$m"/var/log/redis/* 2>/dev/null || true
}

# Launch nspawn in the background, detached, in its own cgroups; record its pid.
start_nspawn() {
  local name=$1 m; m=$(merged_of "$name")
  local s="$VM_STATE/$name" bridge=$BRIDGE
  [[ -f "$s/bridge" ]] && bridge=$(cat "$s/bridge")   # the bridge it was created on
  ip link show "$bridge" >/dev/null 2>&1 || die "bridge $bridge missing: run lab/net.sh up"
  ip link del "vb-$name" >/dev/null 2>&1 || true     # stale veth from an unclean end
  # Hide the host's work tree, the lab state and the other VMs' disks from the VM.
  local hide=() p
  for p in /work "$REPO_DIR" "$LAB_ROOT"; do
    [[ -d "$p" ]] || continue
    [[ "$p" == /work/* && -d /work ]] && continue
    hide+=("--tmpfs=$p:mode=0755")
  done
  local cg=()
  for p in systemd unified memory; do
    [[ -d /sys/fs/cgroup/$p ]] && cg+=("/sys/fs/cgroup/$p/$CGROUP_NAME/$name")
  done
  # shellcheck disable=SC2016
  setsid bash -c '
    for g in "${@:2:$1}"; do mkdir -p "$g" && echo $$ > "$g/cgroup.procs" || true; done
    shift $(( $1 + 1 ))
    exec "$@"' _ "${#cg[@]}" "${cg[@]}" \
    systemd-nspawn --quiet --register=no --keep-unit -M "$name" -D "$m" --boot \
      --network-bridge="$bridge" --console=read-only --link-journal=no \
      --resolv-conf=off --timezone=off "${hide[@]}" \
      </dev/null >>"$s/console.log" 2>&1 &
  local pid=$!
  echo "$pid" > "$s/pid"
  local i
  for i in $(seq 50); do
    is_nspawn_of "$pid" "$name" && vm_init_pid "$pid" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  is_nspawn_of "$pid" "$name" || { tail -20 "$s/console.log" >&2; die "$name: nspawn did not start"; }
}

cmd_up() {
  local name=${1:?usage: vm.sh up NAME ADDRESS} addr=${2:?usage: vm.sh up NAME ADDRESS}
  check_name "$name"; check_addr "$addr"
  local s="$VM_STATE/$name"
  if vm_running "$name"; then log "$name already running"; return 0; fi
  if [[ -f "$s/address" && "$(cat "$s/address")" != "$addr" ]]; then
    die "$name exists with address $(cat "$s/address"); run vm.sh down $name first"
  fi
  ensure_key
  mkdir -p "$s"
  echo "$addr" > "$s/address"
  echo "$BRIDGE" > "$s/bridge"
  echo "$(vm_dir "$name")" > "$s/root"
  mount_vm "$name"
  if [[ ! -f "$s/prepared" ]]; then
    prepare_vm "$name" "$addr"
    touch "$s/prepared"
  fi
  start_nspawn "$name"
  log "$name booting at $addr (nspawn pid $(vm_pid "$name"))"
}

cmd_start() {
  local name=${1:?usage: vm.sh start NAME}
  local s="$VM_STATE/$name"
  [[ -f "$s/prepared" ]] || die "$name does not exist (use vm.sh up NAME ADDRESS)"
  if vm_running "$name"; then log "$name already running"; return 0; fi
  mount_vm "$name"
  start_nspawn "$name"
  log "$name booting again (nspawn pid $(vm_pid "$name"))"
}

cmd_crash() {
  local name=${1:?usage: vm.sh crash NAME} pid init
  pid=$(vm_pid "$name")
  is_nspawn_of "$pid" "$name" || die "$name is not running"
  init=$(vm_init_pid "$pid") || die "$name: init process not found"
  kill -9 "$init"
  # nspawn notices that the pid namespace died and exits; the overlay (disk) stays mounted
  local i
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$VM_STATE/$name/pid"
  log "$name crashed (killed init $init)"
}

# power off: SIGTERM to nspawn asks the VM's systemd for a clean shutdown
stop_vm() {
  local name=$1 pid i init
  pid=$(vm_pid "$name")
  if is_nspawn_of "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      init=$(vm_init_pid "$pid" || true)
      [[ -n "$init" ]] && kill -9 "$init" 2>/dev/null || true
      for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$VM_STATE/$name/pid"
}

# remove the VM's (empty) cgroup trees, deepest first
rm_cgroups() {
  local p g
  for p in systemd unified memory; do
    g="/sys/fs/cgroup/$p/$CGROUP_NAME/$1"
    [[ -d "$g" ]] && find "$g" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

cmd_stop() { stop_vm "${1:?usage: vm.sh stop NAME}"; log "$1 stopped"; }

cmd_down() {
  local name=${1:?usage: vm.sh down NAME} d m i
  check_name "$name"
  stop_vm "$name"
  d=$(vm_dir "$name"); [[ -f "$VM_STATE/$name/root" ]] && d=$(cat "$VM_STATE/$name/root")
  m="$d/merged"
  for i in 1 2 3; do
    is_mounted "$m" || break
    umount "$m" 2>/dev/null || { sleep 1; [[ $i == 3 ]] && umount -l "$m"; } || true
  done
  ip link del "vb-$name" >/dev/null 2>&1 || true
  rm_cgroups "$name"
  is_mounted "$m" && die "$name: $m still mounted"
  case "$d" in "$LAB_ROOT"/?*) rm -rf --one-file-system "$d" ;; esac
  rm -rf "${VM_STATE:?}/$name"
  log "$name removed"
}

cmd_status() {
  printf '%-6s %-13s %-8s %-8s %-8s %s\n' NAME ADDRESS STATE NSPAWN INIT MEM
  local s name pid init st mem
  for s in "$VM_STATE"/*/; do
    [[ -d "$s" ]] || continue
    name=$(basename "$s"); pid=$(vm_pid "$name"); init=-; mem=-
    if is_nspawn_of "$pid" "$name"; then
      st=running; init=$(vm_init_pid "$pid" || echo -)
      [[ -r /sys/fs/cgroup/memory/$CGROUP_NAME/$name/memory.usage_in_bytes ]] &&
        mem="$(( $(cat "/sys/fs/cgroup/memory/$CGROUP_NAME/$name/memory.usage_in_bytes") / 1048576 ))MiB"
    else
      st=stopped; pid=-
    fi
    printf '%-6s %-13s %-8s %-8s %-8s %s\n' "$name" "$(cat "$s/address" 2>/dev/null)" "$st" "$pid" "$init" "$mem"
  done
}

# a stack file needs the key before any VM exists when VMs are made on demand (lab/vmmanager.ts)
cmd_key() { ensure_key; echo "$SSH_KEY"; }

case "${1:-}" in
  up|down|crash|start|stop|status|key) c=$1; shift; "cmd_$c" "$@" ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
