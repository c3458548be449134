#!/usr/bin/env bash
# The main lab (13 hosts) with its VMs created through the VMmanager emulator, end to end, timed,
# N rounds (default 3): `npm run lab:down`, then `npm run lab -- --via-vmmanager` from nothing (the
# up creates every VM through the API, then configures it), then the same command again (must change
# nothing), then `npm run lab:down`. Writes bench/results-vmmanager-lab.md (each run, medians).
# Needs root and the main lab's bridge (nothing else may use 10.213.7.0/24 meanwhile).
#     bash bench/vmmanager-lab.sh [N]
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
rounds=${1:-3}
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ok=1
for i in $(seq 1 "$rounds"); do
  run "first$i"
  run "second$i"
  read -r rc1 _ <"$tmp/first$i.rc"; read -r rc2 _ <"$tmp/second$i.rc"
  [[ $rc1 == 0 && $rc2 == 0 ]] && grep -q 'changes: {}' "$tmp/second$i" || ok=0
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  npm run -s lab:down >/dev/null 2>&1 || true
done

row() { # row N label
  local rc secs; read -r rc secs <"$tmp/$1.rc"
  local up booted
  up=$(grep -a 'pulumi up (via VMmanager)' "$tmp/$1" | sed 's/^lab: //' || true)
  booted=$(grep -a 'VMs booted through host_create' "$tmp/$1" | sed 's/^lab: \([0-9]*\) VMs.*/\1/' || true)
  echo "| $2 | $rc | $(printf '%.0f' "$secs") | ${booted:-?} | ${up:-$(tail -3 "$tmp/$1.log" | tr '\n' ' ' | cut -c1-300)} |"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
{
  echo "# The main lab through VMmanager (13 hosts, VMs created by \`pulumi up\` through the emulator)"
  echo
  echo "Made by \`bash bench/vmmanager-lab.sh $rounds\`, started $started, $(nproc) cores; load at the end: $load."
  echo "Each run is \`npm run lab -- --via-vmmanager\` (set-up, then the up); the first of a round starts with no VM and"
  echo "no state, the second on what the first left (it must change nothing and boot no VM); the lab is removed after each round."
  echo
  echo "| run | exit | seconds (whole command) | VMs booted through host_create | engine summary |"
  echo "| --- | ---: | ---: | ---: | --- |"
  for i in $(seq 1 "$rounds"); do row "first$i" "round $i, from nothing"; row "second$i" "round $i, again"; done
  echo
  echo "Medians over $rounds rounds (whole command, seconds): from nothing $(for i in $(seq 1 "$rounds"); do cut -d' ' -f2 "$tmp/first$i.rc"; done | median | xargs printf '%.0f'),"
  echo "again $(for i in $(seq 1 "$rounds"); do cut -d' ' -f2 "$tmp/second$i.rc"; done | median | xargs printf '%.0f'). Every round: $([[ $ok == 1 ]] && echo 'both runs exit 0, the second with no changes' || echo '**not** all clean (see the rows)')."
} >bench/results-vmmanager-lab.md
cat bench/results-vmmanager-lab.md
[[ $ok == 1 ]]
