#!/usr/bin/env bash
# RabbitMQ for the sidebus tests, on loopback.
#
#   scripts/brokers/rabbitmq.sh start   # reuse a running broker, or install + start one
#   eval "$(scripts/brokers/rabbitmq.sh env)"
#   scripts/brokers/rabbitmq.sh stop    # stops only a broker that `start` started
#
# Works on a fresh Debian 12 machine as root with only the package registries
# reachable. State lives under ${SIDEBUS_SCRATCH:-$PWD/.scratch}/rabbitmq.
set -eu

HOST=127.0.0.1
PORT="${SIDEBUS_RABBITMQ_PORT:-5672}"
URL="amqp://guest:guest@${HOST}:${PORT}/%2f"
STATE="${SIDEBUS_SCRATCH:-$PWD/.scratch}/rabbitmq"
MARKER="$STATE/started-by-script"
DEADLINE="${SIDEBUS_RABBITMQ_DEADLINE_SECONDS:-120}"

log() { printf 'rabbitmq.sh: %s\n' "$*" >&2; }

# True when something on HOST:PORT answers the AMQP 0-9-1 protocol header
# with a connection.start method frame (frame type 1).
amqp_answers() {
    local first
    first=$(timeout 3 bash -c "
        exec 3<>/dev/tcp/${HOST}/${PORT} || exit 1
        printf 'AMQP\\000\\000\\011\\001' >&3
        head -c 1 <&3 | od -An -tu1
    " 2>/dev/null | tr -d ' \n') || return 1
    [ "$first" = "1" ]
}

node_running() {
    command -v rabbitmqctl >/dev/null 2>&1 && timeout 15 rabbitmqctl status >/dev/null 2>&1
}

install_server() {
    if command -v rabbitmq-server >/dev/null 2>&1; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || { log "rabbitmq-server is missing and we are not root"; exit 1; }
    # Keep a fresh node (and its Erlang distribution ports) on loopback; the
    # package's own start during install then already binds 127.0.0.1 only.
    if [ ! -e /etc/rabbitmq/rabbitmq-env.conf ]; then
        mkdir -p /etc/rabbitmq
        cat > /etc/rabbitmq/rabbitmq-env.conf <<'EOF'
NODE_IP_ADDRESS=127.0.0.1
ERL_EPMD_ADDRESS=127.0.0.1
export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
    fi
    log "installing rabbitmq-server from Debian"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y \
        -o Dpkg::Options::=--force-confold rabbitmq-server
}

wait_ready() {
    local end=$(( $(date +%s) + DEADLINE ))
    # `await_startup` fails at once until the node has registered with epmd,
    # so it is retried rather than trusted on its first answer.
    until timeout 30 rabbitmqctl await_startup >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$end" ]; then
            log "RabbitMQ did not start within ${DEADLINE}s; see /var/log/rabbitmq/"
            exit 1
        fi
        sleep 1
    done
    until amqp_answers; do
        if [ "$(date +%s)" -ge "$end" ]; then
            log "RabbitMQ started but ${HOST}:${PORT} does not answer AMQP"
            exit 1
        fi
        sleep 1
    done
}

start() {
    mkdir -p "$STATE"
    if amqp_answers; then
        log "RabbitMQ already answers on ${HOST}:${PORT}; using it"
        return 0
    fi
    if node_running; then
        log "a RabbitMQ node runs but ${HOST}:${PORT} does not answer yet; waiting"
        wait_ready
        return 0
    fi
    install_server
    if amqp_answers || node_running; then
        # The package's install script started (or is starting) the node.
        echo "started by package install" > "$MARKER"
    else
        log "starting rabbitmq-server on ${HOST}:${PORT}"
        RABBITMQ_NODE_IP_ADDRESS="$HOST" RABBITMQ_NODE_PORT="$PORT" \
            ERL_EPMD_ADDRESS="$HOST" rabbitmq-server -detached
        date -u +%FT%TZ > "$MARKER"
    fi
    wait_ready
    log "RabbitMQ ready at ${HOST}:${PORT}"
}

stop() {
    if [ ! -e "$MARKER" ]; then
        log "RabbitMQ was not started by this script; leaving it running"
        return 0
    fi
    log "stopping the RabbitMQ node this script started"
    timeout 60 rabbitmqctl stop >/dev/null 2>&1 || log "rabbitmqctl stop failed (already stopped?)"
    rm -f "$MARKER"
}

env_lines() {
    printf 'export SIDEBUS_TEST_RABBITMQ_URL=%s\n' "$URL"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) env_lines ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
