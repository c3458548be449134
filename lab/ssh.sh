#!/usr/bin/env bash
# lab/ssh.sh NAME [CMD...] — ssh as root into a lab VM (by name or address).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
t=${1:?usage: lab/ssh.sh NAME [CMD...]}; shift
[[ "$t" == "$SUBNET_BASE"* ]] && addr=$t || addr=$(vm_addr "$t")
check_addr "$addr"
exec ssh "${SSH_OPTS[@]}" "root@$addr" "$@"
