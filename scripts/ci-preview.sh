#!/usr/bin/env bash
# The merge-request pipeline's preview job (.gitlab-ci.yml): `pulumi preview --diff` of one stack
# against its shared state (scripts/ci-preview.ts), then the short note posted on the merge request.
#   bash scripts/ci-preview.sh STACK [OUT_DIR]      (OUT_DIR default: ./preview)
# Environment (CI variables, never in .gitlab-ci.yml): PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE_FILE,
# the backend's credentials (AWS_* for S3), and, to post the note, GITLAB_NOTE_TOKEN (a project access
# token with the api scope; GitLab's job token cannot write notes) with GitLab's own CI_API_V4_URL,
# CI_PROJECT_ID and CI_MERGE_REQUEST_IID. Without a merge request or a token the note is only written.
set -euo pipefail
stack=${1:?usage: ci-preview.sh STACK [OUT_DIR]}
out=$(realpath -m "${2:-preview}")
cd "$(dirname "$0")/.."

npx --no-install ts-node --transpile-only scripts/ci-preview.ts --stack "$stack" --out-dir "$out"

note="$out/preview-$stack.md"
if [[ -n "${CI_MERGE_REQUEST_IID:-}" && -n "${GITLAB_NOTE_TOKEN:-}" ]]; then
  # the token reaches curl as a config on stdin (printf is a shell builtin): never in an argv,
  # which every user can read in the process list
  printf 'header = "PRIVATE-TOKEN: %s"\n' "$GITLAB_NOTE_TOKEN" |
    curl --silent --show-error --fail --config - --data-urlencode "body@$note" \
      "$CI_API_V4_URL/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID/notes" >/dev/null
  echo "ci-preview: posted $note on merge request !$CI_MERGE_REQUEST_IID" >&2
fi
