#!/usr/bin/env bash
# The test command: unit tests, rendered files against the real daemons, the real Pulumi engine,
# and the end-to-end lab tests. The daemon, engine and lab suites need root and say so.
#
# Three streams run side by side (see below), so the whole suite stays well inside CI's 90 minutes
# on 2 cores. The labs never share addresses, bridges, VM roots or state directories, and the daemon
# and engine tests use loopback only, so they can run at once. HASTACK_TEST_SERIAL=1 runs everything
# in one jest process, one file after the other; arguments (extra jest options or test paths) also
# mean one process.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit -p .
tmp=$(mktemp -d /tmp/hastack-test.XXXXXX)
# the streams' whole logs and jest's JSON stay after the run (CI keeps only the tail of the output), replaced by the next run
keep=${HASTACK_TEST_KEEP:-/var/tmp/hastack-test-last}
trap 'rm -rf "$keep"; mkdir -p "$keep"; cp "$tmp"/* "$keep"/ 2>/dev/null; rm -rf "$tmp"' EXIT

counts() { node -e 'const r=require(process.argv[1]); console.log(`${process.argv[2]}${r.numPassedTests} passed, ${r.numFailedTests} failed`)' "$1" "${2:-}" || true; }
# The failed tests again, last, with the head of each message: CI keeps only the tail of the output, and stream A's
# own output (which would name them) comes first
# (a failed `pulumi up` puts the engine's whole output in its message: after the first 25 lines come the lines
# that say what failed: the engine's Diagnostics section (each failed step's stderr), else its "error:" lines)
failures() { node -e '
  const r = require(process.argv[1]);
  const brief = (msg) => {
    const lines = String(msg).split("\n");
    const head = lines.slice(0, 25);
    const diag = lines.findIndex((l, i) => i >= 25 && /^\s*Diagnostics:/.test(l));
    const why = diag >= 0 ? lines.slice(diag, diag + 40)
      : lines.slice(25).filter((l) => /error:|failed|refused|timed out|Command \(/i.test(l)).slice(-30);
    return [...head, ...(why.length ? ["[… the lines after that which say what failed:]", ...why] : [])].join("\n  ");
  };
  // with a third argument "short": one line each, the test and the first line that says what failed
  const short = (msg) => { const l = String(msg).split("\n"); return (l.find((x) => /^\s*error: /.test(x) && !/update failed/.test(x)) || l[0]).trim(); };
  const say = (name, msg) => console.log(process.argv[3] === "short" ? `FAILED ${process.argv[2]}${name}: ${short(msg)}` : `FAILED ${process.argv[2]}${name}:\n  ${brief(msg)}`);
  for (const f of r.testResults || []) {
    if (f.status === "failed" && !(f.assertionResults || []).some((a) => a.status === "failed")) say(f.name, f.message);
    for (const a of f.assertionResults || []) if (a.status === "failed") say(`${a.fullName} (${f.name})`, a.failureMessages.join("\n"));
  }' "$1" "${2:-}" "${3:-}" || true; }

if [[ $# -gt 0 || ${HASTACK_TEST_SERIAL:-} == 1 ]]; then
  set +e
  npx jest --maxWorkers=1 --workerIdleMemoryLimit=1GB --ci --json --outputFile="$tmp/all.json" tests/unit tests/daemons tests/engine tests/e2e "$@"
  rc=$?
  set -e
  failures "$tmp/all.json"
  counts "$tmp/all.json"
  failures "$tmp/all.json" "" short
  exit $rc
fi

# Three streams, each one jest process (one file after the other), side by side:
#   A: the one-site lab (tests/e2e/lab.test.ts, ~37-50 min with its rolling-restart and CA-rotation
#      tests), then backups and a point-in-time restore (tests/e2e/backup.test.ts, 6 VMs, ~16 min): every
#      e2e file not in B
#   B: the labs on their own bridges: two sites, then VMs through the VMmanager emulator, then two named
#      Redis groups (~3 min), then scaling the PostgreSQL tier 3 -> 5 -> 3 (~8 min); then the policy
#      pack's two engine suites (~41 min in CI on 2026-11-29)
#   C: unit, daemons and the other engine tests
# Stream A's output comes first, then B's and C's, each in one piece.
B_FILES=(tests/e2e/sites.test.ts tests/e2e/vmmanagerLab.test.ts tests/e2e/redisGroups.test.ts tests/e2e/scale.test.ts tests/engine/policy.test.ts tests/engine/previewDiff.test.ts)
B_IGNORE=("${B_FILES[@]/#/--testPathIgnorePatterns=}")
set +e
npx jest --runInBand --ci --json --outputFile="$tmp/b.json" "${B_FILES[@]}" >"$tmp/b.log" 2>&1 &
b_pid=$!
# C in one worker process (still one file after the other) that jest replaces once its heap holds more than 1 GB after a
# file: in one process the ~90 files' memory only grew, and on 2026-11-29 the kernel killed it at 24 GB (OOM) two
# files before the end
npx jest --maxWorkers=1 --workerIdleMemoryLimit=1GB --ci --json --outputFile="$tmp/c.json" tests/unit tests/daemons tests/engine "${B_IGNORE[@]}" >"$tmp/c.log" 2>&1 &
c_pid=$!
npx jest --runInBand --ci --json --outputFile="$tmp/a.json" tests/e2e "${B_IGNORE[@]}"
a_rc=$?
wait "$b_pid"
b_rc=$?
wait "$c_pid"
c_rc=$?
set -e
echo "===== stream B (${B_FILES[*]}) ====="
cat "$tmp/b.log"
echo "===== stream C (tests/unit tests/daemons tests/engine, without B's) ====="
cat "$tmp/c.log"
failures "$tmp/a.json" "stream A: "
failures "$tmp/b.json" "stream B: "
failures "$tmp/c.json" "stream C: "
counts "$tmp/a.json" "stream A: "
counts "$tmp/b.json" "stream B: "
counts "$tmp/c.json" "stream C: "
for s in a b c; do failures "$tmp/$s.json" "stream ${s^^}: " short; done
echo "(the streams' whole logs: $keep)"
[[ $a_rc -eq 0 && $b_rc -eq 0 && $c_rc -eq 0 ]]
