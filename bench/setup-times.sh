#!/usr/bin/env bash
# Cold and warm set-up times of the engine on this machine → bench/setup-times.md.
# Cold = empty Go module and build caches and an empty engine cache (everything downloaded and
# compiled); warm = scripts/setup.sh again with everything in place.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /var/tmp/hastack-cold.XXXXXX)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
t0=$(date +%s.%N)
GOMODCACHE="$tmp/mod" GOCACHE="$tmp/build" HASTACK_ENGINE_CACHE="$tmp/engine" HASTACK_FORCE_BUILD=1 \
  bash scripts/setup-engine.sh >/dev/null 2>"$tmp/cold.log"
t1=$(date +%s.%N)
bash scripts/setup.sh >/dev/null 2>"$tmp/warm.log"
t2=$(date +%s.%N)
cold=$(echo "$t1 - $t0" | bc); warm=$(echo "$t2 - $t1" | bc)
cat > bench/setup-times.md <<MD
# Set-up times

Made by \`bash bench/setup-times.sh\` on $(date -u +%Y-%m-%dT%H:%M:%SZ) ($(nproc) cores).

| step | seconds |
| --- | --- |
| engine, cold (empty Go module/build caches: download + compile the CLI v3.259.0) | $(printf %.0f "$cold") |
| \`scripts/setup.sh\`, warm (packages, npm, engine all present) | $(printf %.1f "$warm") |
MD
cat bench/setup-times.md
