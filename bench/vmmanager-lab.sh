#!/usr/bin/env bash
# The main lab (13 hosts) with its VMs created through the VMmanager emulator, end to end, timed:
# `npm run lab:down`, then `npm run lab -- --via-vmmanager` from nothing (the up creates every VM
# through the API, then configures it), then the same command again (must change nothing), then
# `npm run lab:down`. Writes bench/results-vmmanager-lab.md. Needs root and the main lab's bridge
# (nothing else may use 10.213.7.0/24 meanwhile).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm run -s lab:down >/dev/null 2>&1 || true
bash scripts/setup.sh >/dev/null 2>&1

run() { # run N: one `npm run lab -- --via-vmmanager`; its summary lines into $tmp/N
  local t0 rc=0; t0=$(date +%s.%N)
  npm run -s lab -- --via-vmmanager >"$tmp/$1.log" 2>&1 || rc=$?
  echo "$rc $(echo "$(date +%s.%N) - $t0" | bc)" >"$tmp/$1.rc"
  grep -a '^lab: ' "$tmp/$1.log" >"$tmp/$1" || true
}
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
run first
run second
load=$(cut -d' ' -f1-3 /proc/loadavg)
npm run -s lab:down >/dev/null 2>&1 || true

row() { # row N label
  local rc secs; read -r rc secs <"$tmp/$1.rc"
  local up booted
  up=$(grep -a 'pulumi up (via VMmanager)' "$tmp/$1" | sed 's/^lab: //' || true)
  booted=$(grep -a 'VMs booted through host_create' "$tmp/$1" | sed 's/^lab: \([0-9]*\) VMs.*/\1/' || true)
  echo "| $2 | $rc | $(printf '%.0f' "$secs") | ${booted:-?} | ${up:-$(tail -3 "$tmp/$1.log" | tr '\n' ' ' | cut -c1-300)} |"
}
{
  echo "# The main lab through VMmanager (13 hosts, VMs created by \`pulumi up\` through the emulator)"
  echo
  echo "Made by \`bash bench/vmmanager-lab.sh\`, started $started, $(nproc) cores; load at the end: $load."
  echo "Each run is \`npm run lab -- --via-vmmanager\` (set-up, then the up); the first starts with no VM and no state,"
  echo "the second on what the first left (it must change nothing and boot no VM); the lab is removed afterwards."
  echo
  echo "| run | exit | seconds (whole command) | VMs booted through host_create | engine summary |"
  echo "| --- | ---: | ---: | ---: | --- |"
  row first "from nothing"
  row second "again"
} >bench/results-vmmanager-lab.md
cat bench/results-vmmanager-lab.md
read -r rc1 _ <"$tmp/first.rc"; read -r rc2 _ <"$tmp/second.rc"
[[ $rc1 == 0 && $rc2 == 0 ]] && grep -q 'changes: {}' "$tmp/second"
