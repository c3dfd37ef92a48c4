#!/usr/bin/env bash
# The whole test suite, as CI runs it: starts the real brokers the tests need
# (each scripts/brokers/*.sh finds a running one or installs and starts its
# own on loopback), runs every test, and stops what it started.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -- kafka        # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."
export SIDEBUS_SCRATCH="${SIDEBUS_SCRATCH:-$PWD/.scratch}"
mkdir -p "$SIDEBUS_SCRATCH"
[ "${1:-}" = "--" ] && shift

started=()
stop_brokers() {
  for b in "${started[@]}"; do
    "$b" stop || echo "test.sh: $b stop failed" >&2
  done
}
trap stop_brokers EXIT

for broker in scripts/brokers/*.sh; do
  [ -e "$broker" ] || continue
  echo "test.sh: starting $(basename "$broker" .sh)" >&2
  "$broker" start
  started+=("$broker")
  eval "$("$broker" env)"
done

cargo test --locked "$@"
