#!/usr/bin/env bash
# `npm run bench [-- RUNS]`: the failure drills on the running lab (see bench/run.ts).
# Needs root and a lab deployed with `npm run lab`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec npx ts-node --transpile-only bench/run.ts "$@"
