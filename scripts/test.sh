#!/usr/bin/env bash
# The test command: unit tests, rendered files against the real daemons, the real Pulumi engine,
# and the end-to-end lab tests. The daemon, engine and lab suites need root and say so.
#
# Two streams run side by side, so the whole suite stays well inside CI's 90 minutes on 2 cores:
#   A: unit, daemons, engine, then the one-site lab (tests/e2e/lab.test.ts)
#   B: the labs on their own bridges and subnets: two sites (sites.test.ts), then VMs through the
#      VMmanager emulator (vmmanagerLab.test.ts); then the policy pack's engine suites
# The labs never share addresses, bridges, VM roots or state directories, so they can run at once.
# Stream B's output is printed after stream A's, in one piece. HASTACK_TEST_SERIAL=1 runs everything
# in one jest process, one file after the other (as before); arguments (extra jest options or test
# paths) also mean one process.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit -p .
tmp=$(mktemp -d /tmp/hastack-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

counts() { node -e 'const r=require(process.argv[1]); console.log(`${process.argv[2]}${r.numPassedTests} passed, ${r.numFailedTests} failed`)' "$1" "${2:-}" || true; }

if [[ $# -gt 0 || ${HASTACK_TEST_SERIAL:-} == 1 ]]; then
  set +e
  npx jest --runInBand --ci --json --outputFile="$tmp/all.json" tests/unit tests/daemons tests/engine tests/e2e "$@"
  rc=$?
  set -e
  counts "$tmp/all.json"
  exit $rc
fi

# The policy pack's two engine suites (10-17 min under load) run in B: stream A carries the one-site
# lab, whose rolling-restart and CA-rotation tests alone take 17-19 min.
B_FILES=(tests/e2e/sites.test.ts tests/e2e/vmmanagerLab.test.ts tests/engine/policy.test.ts tests/engine/previewDiff.test.ts)
set +e
npx jest --runInBand --ci --json --outputFile="$tmp/b.json" "${B_FILES[@]}" >"$tmp/b.log" 2>&1 &
b_pid=$!
npx jest --runInBand --ci --json --outputFile="$tmp/a.json" tests/unit tests/daemons tests/engine tests/e2e \
  "${B_FILES[@]/#/--testPathIgnorePatterns=}"
a_rc=$?
wait "$b_pid"
b_rc=$?
set -e
echo "===== stream B (${B_FILES[*]}) ====="
cat "$tmp/b.log"
counts "$tmp/a.json" "stream A: "
counts "$tmp/b.json" "stream B: "
[[ $a_rc -eq 0 && $b_rc -eq 0 ]]
