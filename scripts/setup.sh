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
# npm ci again only when package-lock.json changed since the last install
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -d node_modules/@pulumi/pulumi || "$(cat node_modules/.hastack-lock.sha256 2>/dev/null)" != "$lock_sum" ]]; then
  npm ci --no-audit --no-fund
  echo "$lock_sum" > node_modules/.hastack-lock.sha256
fi

step "Pulumi engine"
bash scripts/setup-engine.sh >/dev/null
step "loopback S3 server (shared-state tests)"; bash scripts/setup-s3.sh >/dev/null
step "done"
