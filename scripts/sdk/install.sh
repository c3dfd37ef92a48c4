#!/usr/bin/env bash
# Installs the official Dapr SDKs at pinned versions into scratch folders:
#   $SIDEBUS_SCRATCH/sdk/venv   (Python: dapr, dapr-ext-grpc, dapr-ext-fastapi, uvicorn)
#   $SIDEBUS_SCRATCH/sdk/js     (@dapr/dapr)
# Idempotent: a marker file per pinned set skips work already done.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SCRATCH="${SIDEBUS_SCRATCH:-$ROOT/.scratch}/sdk"
PY_PINS=(dapr==1.18.3 dapr-ext-grpc==1.18.3 dapr-ext-fastapi==1.18.3 uvicorn==0.32.1 requests==2.32.3)
JS_PIN="@dapr/dapr@3.18.0"
mkdir -p "$SCRATCH"
PY_MARK="$SCRATCH/venv/.pins-$(echo "${PY_PINS[*]}" | md5sum | cut -c1-12)"
if [[ ! -f "$PY_MARK" ]]; then
  python3 -m venv "$SCRATCH/venv"
  "$SCRATCH/venv/bin/pip" install --quiet --disable-pip-version-check "${PY_PINS[@]}"
  touch "$PY_MARK"
fi
JS_MARK="$SCRATCH/js/.pin-$(echo "$JS_PIN" | md5sum | cut -c1-12)"
if [[ ! -f "$JS_MARK" ]]; then
  mkdir -p "$SCRATCH/js"
  (cd "$SCRATCH/js" && { [[ -f package.json ]] || echo '{"name":"sidebus-sdk-compat","private":true}' > package.json; } \
    && npm install --silent --no-audit --no-fund --save-exact "$JS_PIN")
  touch "$JS_MARK"
fi
