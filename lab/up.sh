#!/usr/bin/env bash
# `npm run lab`: the reference datacenter on local VMs. Installs what it needs (Debian packages,
# npm packages, the engine), boots the 13 VMs, then `pulumi up` of the lab stack with the real
# engine and prints the endpoints. On a running lab it is a `pulumi up` with zero changes.
# `npm run lab -- --via-vmmanager`: no direct boot; the `pulumi up` creates the VMs through the
# VMmanager emulator, whose host_create boots each one (lab/vmmanager.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ "${1:-}" == --via-vmmanager ]]; then
  exec npx ts-node --transpile-only lab/vmmanager.ts
fi
bash lab/up-vms.sh
exec npx ts-node --transpile-only lab/deploy.ts
