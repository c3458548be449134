#!/usr/bin/env bash
# lab/up.sh — `npm run lab`: bridge + the whole reference layout (see up-vms.sh).
# Run lab/install-deps.sh once on a new machine first.
set -euo pipefail
exec bash "$(dirname "$0")/up-vms.sh" "$@"
