#!/usr/bin/env bash
# SDK compatibility suite: the official Dapr SDKs (Python `dapr` + extensions,
# JS `@dapr/dapr`, pinned in install.sh) drive a real sidebus as apps do.
# Each scenario gets its own sidebus on fresh ports; one line per scenario,
# then `sdk: N passed, M failed`. Exits non-zero if any scenario failed.
#
# Env: SIDEBUS_BIN (binary to test; default: `cargo build` and target/debug),
#      SIDEBUS_SCRATCH (where SDKs are installed; default ./.scratch),
#      SDK_SCENARIO_TIMEOUT (seconds per scenario; default 90).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SCRATCH="${SIDEBUS_SCRATCH:-$ROOT/.scratch}/sdk"
TIMEOUT="${SDK_SCENARIO_TIMEOUT:-90}"
LOGS="$SCRATCH/logs"

"$ROOT/scripts/sdk/install.sh" || { echo "sdk: installing the SDKs failed"; echo "sdk: 0 passed, 1 failed"; exit 1; }
if [[ -z "${SIDEBUS_BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --quiet --bin sidebus) || { echo "sdk: cargo build failed"; echo "sdk: 0 passed, 1 failed"; exit 1; }
  SIDEBUS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/sidebus"
fi
mkdir -p "$LOGS"

# Four distinct free ports, all bound at once: asking one at a time can get
# the same port back twice once the first socket is closed.
free_ports() {
  python3 -c 'import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'
}

passed=0; failed=0; failures=()
# scenario NAME APP_PROTOCOL(none|http|grpc) COMMAND...
scenario() {
  local name="$1" proto="$2"; shift 2
  local http grpc metrics app log pid rc data
  read -r http grpc metrics app < <(free_ports)
  log="$LOGS/$name.log"
  # Each scenario starts from an empty embedded broker of its own, so no
  # event of an earlier run (or scenario) can reach it.
  data="$SCRATCH/data/$name"
  rm -rf "$data"
  local args=(--app-id "sdk-$name" --dapr-http-port "$http" --dapr-grpc-port "$grpc" --metrics-port "$metrics" --data-dir "$data" --log-level warn)
  [[ "$proto" != none ]] && args+=(--app-port "$app" --app-protocol "$proto")
  "$SIDEBUS_BIN" "${args[@]}" >"$log.sidebus" 2>&1 &
  pid=$!
  DAPR_HTTP_PORT=$http DAPR_GRPC_PORT=$grpc APP_PORT=$app DAPR_HEALTH_TIMEOUT=30 \
    timeout "$TIMEOUT" "$@" >"$log" 2>&1
  rc=$?
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if [[ $rc -eq 0 ]]; then
    passed=$((passed + 1)); echo "ok    $name"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "FAIL  $name (exit $rc; log $log)"
    tail -n 15 "$log" | sed 's/^/      /'
  fi
}

PY="$SCRATCH/venv/bin/python"
PYDIR="$ROOT/tests/sdk/python"
JSDIR="$ROOT/tests/sdk/js"
export NODE_PATH="$SCRATCH/js/node_modules"

scenario py-publish-grpc none  "$PY" "$PYDIR/publish_grpc.py"
scenario py-publish-http none  "$PY" "$PYDIR/publish_http.py"
scenario py-streaming    none  "$PY" "$PYDIR/streaming.py"
scenario py-fastapi-app  http  "$PY" "$PYDIR/fastapi_app.py"
scenario py-grpc-app     grpc  "$PY" "$PYDIR/grpc_app.py"
scenario js-publish      none  node "$JSDIR/publish.js"
scenario js-server       http  node "$JSDIR/server.js"

echo "sdk: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
