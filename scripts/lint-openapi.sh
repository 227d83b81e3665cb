#!/usr/bin/env bash
# Lints the HTTP API's OpenAPI document with Redocly (recommended rules,
# redocly.yaml) and Spectral (spectral:oas, .spectral.yaml): any error or
# warning fails. Installs Node.js (apt) and both linters (npm, into
# LINT_TOOLS, default ~/.cache/medicalpro/openapi-lint) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${LINT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/medicalpro/openapi-lint}

if ! command -v npm >/dev/null 2>&1; then
  echo "installing Node.js and npm" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "run as root, or install them yourself: apt-get install -y nodejs npm" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x "$tools/node_modules/.bin/redocly" ] || [ ! -x "$tools/node_modules/.bin/spectral" ]; then
  echo "installing the OpenAPI linters into $tools" >&2
  mkdir -p "$tools"
  (cd "$tools" && npm install --silent --no-audit --no-fund @redocly/cli@2 @stoplight/spectral-cli@6 >/dev/null)
fi

cargo build --locked -q
document=$(mktemp --suffix=.json)
trap 'rm -f "$document"' EXIT
"${CARGO_TARGET_DIR:-target}/debug/medicalpro" openapi > "$document"
NO_UPDATE_NOTIFIER=1 REDOCLY_TELEMETRY=off "$tools/node_modules/.bin/redocly" lint --config redocly.yaml "$document"
"$tools/node_modules/.bin/spectral" lint --ruleset .spectral.yaml --fail-severity hint "$document"
