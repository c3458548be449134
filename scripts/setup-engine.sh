#!/usr/bin/env bash
# Provide the Pulumi engine offline: use `pulumi` from PATH when a user has one,
# otherwise build the CLI, the Node.js language host and the command provider
# from Go modules into a cache outside the repo (see ../shared/design/engine.md).
# Idempotent: a complete cache is reused. Prints the bin directory on stdout.
set -euo pipefail

PULUMI_VERSION=v3.259.0
# The nodejs language host is a nested module without tags: pseudo-version of the v3.259.0 commit.
NODEJS_HOST_VERSION=0ac56e876614
COMMAND_VERSION=v1.2.1
CACHE="${HASTACK_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hastack/engine-${PULUMI_VERSION}}"
BIN="$CACHE/bin"

log() { echo "setup-engine: $*" >&2; }

if [[ -z "${HASTACK_FORCE_BUILD:-}" ]] && command -v pulumi >/dev/null 2>&1 \
   && [[ "$(command -v pulumi)" != "$BIN/pulumi" ]]; then
  log "using pulumi from PATH: $(command -v pulumi)"
  dirname "$(command -v pulumi)"
  exit 0
fi

need=()
for b in pulumi pulumi-language-nodejs pulumi-resource-command; do
  [[ -x "$BIN/$b" ]] || need+=("$b")
done
if [[ ${#need[@]} -eq 0 ]]; then
  log "reusing cache $BIN"
  echo "$BIN"; exit 0
fi

command -v go >/dev/null || { log "go is required to build the engine (apt-get install golang or use the Go toolchain)"; exit 1; }
mkdir -p "$BIN" "$CACHE/src"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
TAGS="osusergo,grpcnotrace"

build() { # build <name> <module> <version> <main package> <ldflags>
  local name=$1 mod=$2 ver=$3 pkg=$4 ld=$5 dir="$CACHE/src/$1"
  [[ -x "$BIN/$name" ]] && return 0
  log "building $name from $mod@$ver"
  mkdir -p "$dir"
  (
    cd "$dir"
    [[ -f go.mod ]] || go mod init "hastack.local/build/$name" >/dev/null 2>&1
    go get "$mod@$ver" >&2
    # a throwaway main-module import so `go mod tidy` keeps the dependency graph
    printf 'package main\nimport _ "%s"\n' "$pkg" > tools.go
    sed -i 's/^package main/\/\/go:build tools\npackage main/' tools.go
    go mod tidy >&2 || true
    go build -trimpath -tags "$TAGS" -ldflags "-s -w $ld" -o "$BIN/$name.tmp" "$pkg" >&2
    mv "$BIN/$name.tmp" "$BIN/$name"
  )
}

build pulumi github.com/pulumi/pulumi/pkg/v3 "$PULUMI_VERSION" \
  github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
  "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"
build pulumi-resource-command github.com/pulumi/pulumi-command/provider "$COMMAND_VERSION" \
  github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command \
  "-X github.com/pulumi/pulumi-command/provider/pkg/version.Version=$COMMAND_VERSION"
build pulumi-language-nodejs github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 "$NODEJS_HOST_VERSION" \
  github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 \
  "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"

log "engine ready in $BIN"
echo "$BIN"
