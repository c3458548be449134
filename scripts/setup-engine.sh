#!/usr/bin/env bash
# Provide the Pulumi engine offline (see ../shared/design/engine.md and README "Engine").
# - `pulumi` from PATH when a user has one; otherwise the CLI is built from Go modules into a
#   cache outside the repo, once, and reused.
# - The official command provider and the Node.js language host are nested Go modules the module
#   proxy here does not serve; each is tried once per cache, and on failure the project's own
#   plugin for command:remote:* (engine/command-provider) is compiled into the ignored engine/.bin.
# Prints one line on stdout: PATH entries to put in front of PATH (colon-separated).
set -euo pipefail

PULUMI_VERSION=v3.259.0
NODEJS_HOST_REF=0ac56e876614   # commit of v3.259.0; the nested module has no tags of its own
COMMAND_VERSION=v1.2.1
COMMAND_REF=7f3eb6f3b77c       # commit of v1.2.1; provider/ has no provider/v1.2.1 tag
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${HASTACK_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hastack/engine-${PULUMI_VERSION}}"
BIN="$CACHE/bin"
PROJECT_BIN="$REPO/engine/.bin"

log() { echo "setup-engine: $*" >&2; }

build() { # build <name> <module> <version> <main package> <ldflags>; 0 when the binary exists after
  local name=$1 mod=$2 ver=$3 pkg=$4 ld=$5 dir="$CACHE/src/$1"
  [[ -x "$BIN/$name" ]] && return 0
  [[ -e "$CACHE/$name.unavailable" ]] && return 1
  command -v go >/dev/null || { log "go is needed to build $name (install Go or put pulumi on PATH)"; return 1; }
  log "building $name from $mod@$ver"
  mkdir -p "$BIN" "$dir"
  # errexit does not apply inside an `if` condition, so the steps are chained explicitly
  if (
    cd "$dir" &&
    { [[ -f go.mod ]] || go mod init "hastack.local/build/$name" >/dev/null 2>&1; } &&
    export CGO_ENABLED=0 GOFLAGS=-mod=mod &&
    go get "$mod@$ver" >&2 &&
    printf '//go:build tools\npackage main\nimport _ "%s"\n' "$pkg" > tools.go &&
    go mod tidy >&2 &&
    go build -trimpath -tags osusergo,grpcnotrace -ldflags "-s -w $ld" -o "$BIN/$name.tmp" "$pkg" >&2 &&
    mv "$BIN/$name.tmp" "$BIN/$name"
  ); then return 0; fi
  log "$name could not be built from $mod@$ver (recorded in $CACHE/$name.unavailable)"
  mkdir -p "$CACHE"; echo "$mod@$ver" > "$CACHE/$name.unavailable"
  return 1
}

paths=()
if [[ -z "${HASTACK_FORCE_BUILD:-}" ]] && command -v pulumi >/dev/null 2>&1 && [[ "$(command -v pulumi)" != "$BIN/pulumi" ]]; then
  log "using pulumi from PATH: $(command -v pulumi)"
else
  build pulumi github.com/pulumi/pulumi/pkg/v3 "$PULUMI_VERSION" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" || exit 1
  build pulumi-language-nodejs github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 "$NODEJS_HOST_REF" \
    github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    || log "no pulumi-language-nodejs: stacks run as Automation API inline programs"
  build pulumi-resource-command github.com/pulumi/pulumi-command/provider "$COMMAND_REF" \
    github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command \
    "-X github.com/pulumi/pulumi-command/provider/pkg/version.Version=$COMMAND_VERSION" || true
  paths+=("$BIN")
fi

if ! command -v pulumi-resource-command >/dev/null 2>&1 && [[ ! -x "$BIN/pulumi-resource-command" ]]; then
  mkdir -p "$PROJECT_BIN/dist"
  if [[ ! -f "$PROJECT_BIN/dist/provider.js" || -n "$(find "$REPO/engine/command-provider" -name '*.ts' -newer "$PROJECT_BIN/dist/provider.js")" ]]; then
    log "compiling the project's command provider plugin"
    (cd "$REPO" && npx --no-install tsc -p engine/command-provider --outDir "$PROJECT_BIN/dist") >&2
  fi
  printf '#!/bin/sh\nexec node "%s/dist/provider.js" "$@"\n' "$PROJECT_BIN" > "$PROJECT_BIN/pulumi-resource-command"
  chmod +x "$PROJECT_BIN/pulumi-resource-command"
  paths+=("$PROJECT_BIN")
fi

# The host of pulumi.dynamic resources ships in the @pulumi/pulumi npm package; CLI releases add a
# small launcher for it, which a CLI built from modules lacks.
if ! command -v pulumi-resource-pulumi-nodejs >/dev/null 2>&1 && [[ ! -x "$BIN/pulumi-resource-pulumi-nodejs" ]]; then
  mkdir -p "$PROJECT_BIN"
  printf '#!/bin/sh\nexec node "%s/node_modules/@pulumi/pulumi/cmd/dynamic-provider/index.js" "$@"\n' "$REPO" > "$PROJECT_BIN/pulumi-resource-pulumi-nodejs"
  chmod +x "$PROJECT_BIN/pulumi-resource-pulumi-nodejs"
  [[ " ${paths[*]:-} " == *" $PROJECT_BIN "* ]] || paths+=("$PROJECT_BIN")
fi

# Node.js policy packs (policy/, README "Policies"): a CLI without the Node.js language host runs
# `pulumi-analyzer-policy-nodejs` from PATH in the pack's directory; release CLIs ship that launcher
# or the language host, a CLI built from modules has neither. Ours runs engine/policy-launcher.js.
if ! command -v pulumi-analyzer-policy-nodejs >/dev/null 2>&1 && ! command -v pulumi-language-nodejs >/dev/null 2>&1 \
   && [[ ! -x "$BIN/pulumi-language-nodejs" ]]; then
  mkdir -p "$PROJECT_BIN"
  printf '#!/bin/sh\nexec node "%s/engine/policy-launcher.js" "$@"\n' "$REPO" > "$PROJECT_BIN/pulumi-analyzer-policy-nodejs"
  chmod +x "$PROJECT_BIN/pulumi-analyzer-policy-nodejs"
  [[ " ${paths[*]:-} " == *" $PROJECT_BIN "* ]] || paths+=("$PROJECT_BIN")
fi

log "engine ready: ${paths[*]:-PATH}"
IFS=:; echo "${paths[*]:-}"
