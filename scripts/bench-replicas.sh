#!/usr/bin/env bash
# Fleet benchmark on loopback: N replicas sharing one supplier quota through one redis-server.
#
# 1. Per header convention (GitHub, IETF, Retry-After only): upstream 429s, client non-200s
#    and quota use for 1 replica (local store), 2 and 3 replicas (Redis store), and 2
#    replicas without a store (the baseline that overruns). 32 clients, 160 requests,
#    quota 20 per 2 s.
# 2. The Redis store's cost against the local one, same run: req/s and p99 with wrk through
#    one replica in front of an unlimited upstream, and Redis calls per proxied request (from
#    headroom_store_requests_total).
#
#   scripts/bench-replicas.sh           # DURATION=10s CONNECTIONS=32; table in artifacts/
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
OUT=${OUT:-artifacts/bench-replicas.md}

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -c 'import requests' 2>/dev/null || python3 -m pip install -q requests

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

mkdir -p "$(dirname "$OUT")"
{
    echo "# Fleet benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "32 clients spread over the replicas, 160 requests, quota 20 per 2 s."
    echo
    echo "| convention | setup | upstream 429s | client non-200 | quota use | seconds |"
    echo "| --- | --- | --- | --- | --- | --- |"
} >"$OUT"
run=0
for convention in github ietf retry-after; do
    for setup in "1 none" "2 redis" "3 redis" "2 none"; do
        read -r replicas store <<<"$setup"
        run=$((run + 1))
        line=$(timeout 300 python3 scripts/bench_replicas.py --bin "$BIN" --replicas "$replicas" \
            --store "$store" --redis-url "$REDIS_URL" --convention "$convention" --prefix "run$run")
        echo "$line"
        python3 - "$line" >>"$OUT" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
setup = {("1", "none"): "1 replica (local store)", ("2", "none"): "2 replicas, no store (baseline)"}.get(
    (str(r["replicas"]), r["store"]), f'{r["replicas"]} replicas (Redis store)')
print(f'| {r["convention"]} | {setup} | {r["upstream_429"]} | {r["client_non200"]} | {r["quota_use"]} | {r["seconds"]} |')
PY
    done
done

# 2. Overhead with an unlimited upstream: the same binary, local store vs Redis store.
SIM_PORT=$(free_port)
"$BIN" simulate --listen "127.0.0.1:$SIM_PORT" --limit 0 >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
wait_port "$SIM_PORT"

overhead() {
    local store=$1 port admin pid
    port=$(free_port)
    admin=$(free_port)
    cat >"$WORK/overhead.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"

[[upstream]]
name = "bench"
prefix = "/bench"
url = "http://127.0.0.1:$SIM_PORT"
max_concurrency = 256
TOML
    if [[ $store == redis ]]; then
        printf '\n[store]\nredis_url = "%s"\nkey_prefix = "overhead"\n' "$REDIS_URL" >>"$WORK/overhead.toml"
    fi
    RUST_LOG=warn "$BIN" --config "$WORK/overhead.toml" >"$WORK/overhead.log" 2>&1 &
    pid=$!
    wait_port "$port"
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$port/bench/records" >"$WORK/wrk-$store.txt"
    curl -s --noproxy '*' "http://127.0.0.1:$admin/metrics" >"$WORK/metrics-$store.txt"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}
overhead local
overhead redis
python3 - "$WORK" >>"$OUT" <<'PY'
import re, sys
work = sys.argv[1]
def wrk(store):
    text = open(f"{work}/wrk-{store}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale
def metric(store, name, labels=""):
    total = 0.0
    for line in open(f"{work}/metrics-{store}.txt"):
        if line.startswith(name) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
local, redis = wrk("local"), wrk("redis")
proxied = metric("redis", "headroom_requests_total{", 'upstream="bench"')
reserve = metric("redis", "headroom_store_requests_total{", 'op="reserve"')
settle = metric("redis", "headroom_store_requests_total{", 'op="settle"')
print()
print("Overhead, one replica in front of an unlimited upstream (wrk, same run):")
print()
print("| store | req/s | p99 ms |")
print("| --- | --- | --- |")
print(f"| local | {local[0]:.0f} | {local[1]:.2f} |")
print(f"| Redis | {redis[0]:.0f} | {redis[1]:.2f} |")
print()
print(f"Redis store / local: req/s x{redis[0] / local[0]:.2f}, p99 x{redis[1] / local[1]:.2f}.")
print(f"Redis calls per proxied request: {(reserve + settle) / max(proxied, 1):.3f} "
      f"(reserve {reserve / max(proxied, 1):.3f} on the request path, settle {settle / max(proxied, 1):.3f} off it).")
PY
cat "$OUT"
