#!/usr/bin/env bash
# Build the loopback S3 server of the shared-state tests (backend/s3server, gofakes3 from Go modules)
# into a cache outside the repo, once per version of its source; no binary is committed.
# Prints one line on stdout: the server's path. Cost: ~10 s (warm module cache) to a few minutes (cold).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$REPO/backend/s3server"
# the cache key is the source itself, so an edit or a version bump builds a new binary
key=$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -c1-16)
CACHE="${HASTACK_S3_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hastack/s3server-$key}"
BIN="$CACHE/s3server"

if [[ ! -x "$BIN" ]]; then
  command -v go >/dev/null || { echo "setup-s3: go is needed to build $SRC" >&2; exit 1; }
  echo "setup-s3: building $SRC into $CACHE" >&2
  mkdir -p "$CACHE"
  # -mod=readonly: build exactly what go.sum pins, never edit the committed go.mod
  (cd "$SRC" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" .) >&2
  mv "$BIN.tmp" "$BIN"
fi
echo "$BIN"
