#!/usr/bin/env bash
# The test command: unit tests, rendered files against the real daemons, the real Pulumi engine,
# and the end-to-end lab tests. The daemon, engine and lab suites need root and say so.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit -p .
report=$(mktemp /tmp/hastack-jest.XXXXXX.json)
set +e
npx jest --runInBand --ci --json --outputFile="$report" tests/unit tests/daemons tests/engine tests/e2e "$@"
rc=$?
set -e
# one plain closing line with the counts
node -e 'const r=require(process.argv[1]); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed`)' "$report" || true
rm -f "$report"
exit $rc
