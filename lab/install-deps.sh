#!/usr/bin/env bash
# lab/install-deps.sh [--no-install] — make a (new) Debian 12 machine able to run the lab.
# The VMs are overlays of the host's /, so every package a VM needs is installed on the host.
# Idempotent: apt runs only when a package is missing. Afterwards the host's own copies of
# the daemons are stopped and disabled (the VMs run them, the host must not).
#   --no-install   only report missing packages, do not call apt (stop/disable still done)
set -euo pipefail
[[ $EUID -eq 0 ]] || { echo "install-deps: must run as root" >&2; exit 1; }
log() { echo "install-deps: $*" >&2; }

PKGS=(systemd-container iproute2 openssh-server openssh-client bridge-utils curl jq
      postgresql postgresql-client patroni etcd-server etcd-client pgbouncer haproxy
      keepalived nginx redis-server redis-sentinel python3-psycopg2 debconf-utils openssl rsync nftables pgbackrest)
DAEMONS=(postgresql patroni etcd pgbouncer haproxy keepalived nginx redis-server redis-sentinel)

missing=()
for p in "${PKGS[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" == installed ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  log "all ${#PKGS[@]} packages installed"
elif [[ "${1:-}" == --no-install ]]; then
  log "missing (not installed because of --no-install): ${missing[*]}"
else
  log "installing: ${missing[*]}"
  # keep maintainer scripts from starting the daemons on the host while installing
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1
  fi
  # an if, not `&&`: under set -e a false test as the last command would end the script
  cleanup() { if [[ $made_policy == 1 ]]; then rm -f "$policy"; fi; }
  trap cleanup EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
  cleanup; trap - EXIT
fi

# --- the host must not run the daemons -------------------------------------------------
if [[ -d /run/systemd/system ]]; then
  # systemd is PID 1: the normal way
  for d in "${DAEMONS[@]}"; do
    if systemctl cat "$d.service" >/dev/null 2>&1; then
      systemctl disable --now "$d.service" >/dev/null 2>&1 || log "could not disable $d"
    fi
  done
else
  # No systemd as PID 1 (containers, sandboxes): `systemctl start/stop` cannot work here
  # ("System has not been booted with systemd"), but enable/disable still edit the unit links
  # offline. Stop through the sysvinit scripts, then kill what is left.
  # Anything still running: only processes in the HOST's pid namespace (lab VMs run the
  # same binaries in their own pid namespaces, and must not be touched).
  hostns=$(readlink /proc/self/ns/pid)
  victims() {
    local p exe cmd
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      [[ "$(readlink "/proc/$p/ns/pid" 2>/dev/null)" == "$hostns" ]] || continue
      exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
      cmd=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) || continue
      case "$exe" in
        /usr/lib/postgresql/*/bin/postgres|/usr/bin/etcd|/usr/sbin/pgbouncer|/usr/sbin/haproxy|\
        /usr/sbin/keepalived|/usr/sbin/nginx|/usr/bin/redis-check-rdb) echo "$p" ;;
        /usr/bin/python3*) [[ "$cmd" == *"/usr/bin/patroni"* ]] && echo "$p" ;;
      esac
    done
  }
  # the init scripts are slow even with nothing to stop: use them only when a daemon runs
  # sed reads to the end: `head -1` would close the pipe on a second process, and under pipefail
  # victims' SIGPIPE (141) would end this script (seen with two host redis-server processes running)
  running=$(victims | sed -n 1p)
  for d in "${DAEMONS[@]}"; do
    if [[ -n "$running" && -x /etc/init.d/$d ]]; then
      timeout 60 service "$d" stop >/dev/null 2>&1 || true
    fi
    if [[ -e /lib/systemd/system/$d.service ]]; then
      systemctl disable "$d.service" >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/$d ]]; then
      update-rc.d "$d" disable >/dev/null 2>&1 || true
    fi
  done
  mapfile -t pids < <(victims)
  if [[ ${#pids[@]} -gt 0 ]]; then
    log "stopping leftover host daemon processes: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 20); do mapfile -t pids < <(victims); [[ ${#pids[@]} -eq 0 ]] && break; sleep 0.5; done
    [[ ${#pids[@]} -gt 0 ]] && kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
fi
log "host daemons stopped and disabled: ${DAEMONS[*]}"

# Every VM's systemd takes inotify instances from the host's per-user limit (root's, here); the
# default 128 runs out with two labs' worth of VMs ("Too many open files" at boot).
if [[ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 1024 ]]; then
  sysctl -q -w fs.inotify.max_user_instances=1024 && log "raised fs.inotify.max_user_instances to 1024 for the lab VMs"
fi
