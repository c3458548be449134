#!/usr/bin/env bash
# Set up a new machine for hastack's tests and lab: Debian packages, npm packages, the Pulumi engine.
# Idempotent; every step reuses what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
step() { echo "== setup: $* ($(( $(date +%s) - t0 ))s)" >&2; }

step "Debian packages (daemons, systemd-nspawn, ssh)"
bash lab/install-deps.sh

step "npm packages (package-lock.json)"
if [[ ! -d node_modules/@pulumi/pulumi ]] || ! cmp -s package-lock.json node_modules/.package-lock.json 2>/dev/null; then
  npm ci --no-audit --no-fund
fi

step "Pulumi engine"
bash scripts/setup-engine.sh >/dev/null
step "done"
