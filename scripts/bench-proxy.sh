#!/usr/bin/env bash
# Whole-proxy benchmark on loopback: requests/s and p99 with wrk straight at a fast upstream
# (the simulator without quota), through Headroom and through nginx (a reference reverse
# proxy), all in the same run; then a 1 GiB download and a 1 GiB upload through Headroom with
# its peak RSS (VmHWM). Only 127.0.0.1 is used; every run is bounded by DURATION.
#
#   scripts/bench-proxy.sh            # DURATION=10s CONNECTIONS=32
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
STREAM_BYTES=${STREAM_BYTES:-1073741824}
OUT=${OUT:-artifacts/bench-proxy.md}

missing=()
for tool in wrk curl nginx; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

SIM_PORT=$(free_port)
"$BIN" simulate --listen "127.0.0.1:$SIM_PORT" --limit 0 >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
wait_port "$SIM_PORT"

start_headroom() {
    HR_PORT=$(free_port)
    HR_ADMIN=$(free_port)
    cat >"$WORK/headroom.toml" <<TOML
[server]
listen = "127.0.0.1:$HR_PORT"
admin_listen = "127.0.0.1:$HR_ADMIN"

[[upstream]]
name = "bench"
prefix = "/bench"
url = "http://127.0.0.1:$SIM_PORT"
max_concurrency = 256
TOML
    RUST_LOG=warn "$BIN" --config "$WORK/headroom.toml" >"$WORK/headroom.log" 2>&1 &
    HR_PID=$!
    PIDS+=("$HR_PID")
    wait_port "$HR_PORT"
}

NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    upstream sim { server 127.0.0.1:$SIM_PORT; keepalive 256; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location /bench/ {
            proxy_pass http://sim/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)
wait_port "$NGINX_PORT"

start_headroom

run_wrk() { # name url
    local out
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$2")
    local rps p99 errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    printf '%s %s %s %s\n' "$1" "$rps" "$p99" "${errors:-0}"
}

echo "warming up..." >&2
wrk -t1 -c4 -d2s "http://127.0.0.1:$HR_PORT/bench/x" >/dev/null
wrk -t1 -c4 -d2s "http://127.0.0.1:$NGINX_PORT/bench/x" >/dev/null

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION (2-core machine: wrk, proxy and upstream share it)" >&2
RESULTS=$(
    run_wrk direct "http://127.0.0.1:$SIM_PORT/x"
    run_wrk headroom "http://127.0.0.1:$HR_PORT/bench/x"
    run_wrk nginx "http://127.0.0.1:$NGINX_PORT/bench/x"
)
read -r _ DIRECT_RPS _ _ <<<"$(grep '^direct ' <<<"$RESULTS")"

# Streaming: a fresh Headroom so its peak RSS reflects only the transfer.
kill "$HR_PID"; wait "$HR_PID" 2>/dev/null || true
start_headroom
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$HR_PID/status"; }
RSS_START=$(hwm)
DIRECT_DL=$(curl -s --noproxy '*' -o /dev/null -w '%{time_total} %{size_download}' "http://127.0.0.1:$SIM_PORT/bytes/$STREAM_BYTES")
PROXY_DL=$(curl -s --noproxy '*' -o /dev/null -w '%{time_total} %{size_download}' "http://127.0.0.1:$HR_PORT/bench/bytes/$STREAM_BYTES")
RSS_DL=$(hwm)
PROXY_UL=$(head -c "$STREAM_BYTES" /dev/zero | curl -s --noproxy '*' -T - -w ' %{time_total}' "http://127.0.0.1:$HR_PORT/bench/upload")
RSS_UL=$(hwm)

mkdir -p "$(dirname "$OUT")"
{
    echo "## bench-proxy ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION)"
    echo
    echo "| path | requests/s | p99 | non-2xx | vs direct |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    while read -r name rps p99 errors; do
        ratio=$(python3 -c "print(f'{$rps / $DIRECT_RPS:.2f}')")
        echo "| $name | $rps | $p99 | $errors | $ratio |"
    done <<<"$RESULTS"
    echo
    read -r dtime dsize <<<"$DIRECT_DL"
    read -r ptime psize <<<"$PROXY_DL"
    echo "| streaming ($STREAM_BYTES bytes) | seconds | bytes | Headroom peak RSS |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| download direct | $dtime | $dsize | - |"
    echo "| download via Headroom | $ptime | $psize | $((RSS_DL / 1024)) MiB (at start $((RSS_START / 1024)) MiB) |"
    echo "| upload via Headroom | ${PROXY_UL##* } | $(python3 -c "import json,sys; print(json.loads(sys.argv[1].rsplit(' ',1)[0])['bytes'])" "$PROXY_UL") | $((RSS_UL / 1024)) MiB |"
} | tee "$OUT"
