#!/usr/bin/env bash
# The test command: unit tests, rendered files against the real daemons, the real Pulumi engine,
# and the end-to-end lab tests. The daemon, engine and lab suites need root and say so.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit -p .
npx jest --runInBand --ci tests/unit tests/daemons tests/engine tests/e2e "$@"
