#!/usr/bin/env bash
# `npm run lab`: the reference datacenter on local VMs. Installs what it needs (Debian packages,
# npm packages, the engine), boots the 13 VMs, then `pulumi up` of the lab stack with the real
# engine and prints the endpoints. On a running lab it is a `pulumi up` with zero changes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash lab/up-vms.sh
exec npx ts-node --transpile-only lab/deploy.ts
