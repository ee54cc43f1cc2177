#!/usr/bin/env bash
# Runs every test: formatting-independent Rust tests (unit, router, end-to-end over real
# sockets) and the Python/curl client tests against the real binary. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# System packages the client tests use.
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
# The fleet tests start their own redis-server processes (one server, or a 3-node cluster
# made with redis-cli --cluster create).
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

log "installing Python test dependencies"
python3 -m pip install -q --disable-pip-version-check -r tests/e2e/requirements.txt

log "building"
cargo build --locked --bins --tests

log "Rust tests"
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --locked --no-fail-fast
else
    cargo test --locked --no-fail-fast
fi

log "client tests (Python requests/aiohttp/httpx, curl) against target/debug/headroom"
HEADROOM_BIN="$PWD/target/debug/headroom" python3 -m pytest -q tests/e2e

log "Prometheus scrapes Headroom (Debian prometheus)"
bash scripts/prometheus-check.sh

log "status page in headless Chromium (Debian chromium, playwright-core)"
bash scripts/browser-check.sh
