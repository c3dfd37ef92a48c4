#!/usr/bin/env bash
# Instructions per HTTP publish, counted by callgrind (repeatable on a noisy
# machine, unlike latency): a release sidebus with symbols on the in-memory
# component, N publishes of 1 KB JSON on one keep-alive connection, twice
# (N=1000 and N=3000); per publish = (Ir[3000] - Ir[1000]) / 2000, so start-up
# and shutdown cancel out.
#
#   scripts/perf/publish_instructions.sh            # builds target/release/sidebus
#   SIDEBUS_BIN=path/to/sidebus scripts/perf/publish_instructions.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 1; }
if [[ -z "${SIDEBUS_BIN:-}" ]]; then
  CARGO_PROFILE_RELEASE_STRIP=none cargo build --release --quiet --bin sidebus
  SIDEBUS_BIN=target/release/sidebus
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/resources"
cat > "$work/resources/pubsub.yaml" <<'YAML'
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.in-memory
  version: v1
YAML

# run N: prints the total instructions of one sidecar lifetime serving N publishes.
run() {
  local n="$1" port grpc admin out
  read -r port grpc admin < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
  out="$work/callgrind.$n"
  valgrind --tool=callgrind --callgrind-out-file="$out" -q \
    "$SIDEBUS_BIN" --app-id perf --dapr-http-port "$port" --dapr-grpc-port "$grpc" --metrics-port "$admin" \
    --resources-path "$work/resources" --data-dir "$work/data.$n" --log-level error &
  local pid=$!
  python3 - "$port" "$n" <<'PY'
import http.client, json, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
deadline = time.time() + 120
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/v1.0/healthz/outbound"); r = c.getresponse(); r.read()
        if r.status == 204: break
    except OSError:
        pass
    if time.time() > deadline: sys.exit("sidecar did not become ready")
    time.sleep(0.2)
body = json.dumps({"pad": "x" * 1000}).encode()[:1024]
for i in range(n):
    c.request("POST", "/v1.0/publish/pubsub/orders", body, {"content-type": "application/json"})
    r = c.getresponse(); r.read()
    if r.status != 204: sys.exit(f"publish {i}: {r.status}")
c.request("POST", "/v1.0/shutdown"); c.getresponse().read()
PY
  wait "$pid" || true
  grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
}
a=$(run 1000)
b=$(run 3000)
echo "Ir(1000)=$a Ir(3000)=$b"
echo "instructions per HTTP publish: $(( (b - a) / 2000 ))"
