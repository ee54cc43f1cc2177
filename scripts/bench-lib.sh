# Shared by the benchmark scripts (source it): a release build, a work folder cleaned up on
# exit with every process started through PIDS, free loopback ports, waiting for a listener.
# shellcheck shell=bash

cargo build --release --locked --quiet
# shellcheck disable=SC2034 # used by the scripts that source this file
BIN=$PWD/target/release/headroom
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 300); do
        (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listening on port $1" >&2
    return 1
}
