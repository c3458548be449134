#!/usr/bin/env bash
# npm run preview:prod — a real, offline `pulumi preview` of the prod stack (see preview-prod.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
exec npx ts-node --transpile-only scripts/preview-prod.ts "$@"
