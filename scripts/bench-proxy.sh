#!/usr/bin/env bash
# Whole-proxy benchmark on loopback: requests/s, p50 and p99 with wrk straight at a fast
# upstream (the simulator without quota), through nginx (access log off, and on with a
# buffer), HAProxy, and Headroom (access log on, to a file, and off), at CONNECTIONS and 256
# connections, each as a ratio against nginx without a log, all in the same run; optionally
# an older Headroom binary too (BASELINE_BIN, access log on). Then a 1 GiB download and a
# 1 GiB upload through Headroom with its peak RSS (VmHWM). Only 127.0.0.1 is used; every run
# is bounded by DURATION. Then memory: MEMORY_CONNECTIONS (10,000) requests waiting in one
# upstream's queue, each on its own connection, and as many idle keep-alive connections: RSS
# held per connection (1 s after the last was opened, and settled while still held) and RSS
# once they are gone (each in a fresh Headroom).
#
#   scripts/bench-proxy.sh            # DURATION=10s CONNECTIONS=32 [BASELINE_BIN=...]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
STREAM_BYTES=${STREAM_BYTES:-1073741824}
OUT=${OUT:-artifacts/bench-proxy.md}
MEMORY_CONNECTIONS=${MEMORY_CONNECTIONS:-10000}
# Each side of 10,000 connections needs a descriptor apiece.
ulimit -n "$(ulimit -Hn)"

missing=()
for tool in wrk curl nginx haproxy; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
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

start_headroom() { # [log level] [binary]: sets HR_PORT, HR_ADMIN, HR_PID
    HR_PORT=$(free_port)
    HR_ADMIN=$(free_port)
    cat >"$WORK/headroom-$HR_PORT.toml" <<TOML
[server]
listen = "127.0.0.1:$HR_PORT"
admin_listen = "127.0.0.1:$HR_ADMIN"

[[upstream]]
name = "bench"
prefix = "/bench"
url = "http://127.0.0.1:$SIM_PORT"
max_concurrency = 256
TOML
    # The access log goes to a file, as it would to a container's log pipe.
    RUST_LOG=${1:-warn} "${2:-$BIN}" --config "$WORK/headroom-$HR_PORT.toml" >"$WORK/headroom-$HR_PORT.log" 2>&1 &
    HR_PID=$!
    PIDS+=("$HR_PID")
    wait_port "$HR_PORT"
}

NGINX_PORT=$(free_port)
NGINX_LOG_PORT=$(free_port)
nginx_server() { # port access-log-directive
    cat <<SERVER
    server {
        listen 127.0.0.1:$1;
        $2
        location /bench/ {
            proxy_pass http://sim/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
SERVER
}
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    upstream sim { server 127.0.0.1:$SIM_PORT; keepalive 256; }
$(nginx_server "$NGINX_PORT" "access_log off;")
$(nginx_server "$NGINX_LOG_PORT" "access_log $WORK/nginx/access.log combined buffer=64k flush=1s;")
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)
wait_port "$NGINX_PORT"

HAPROXY_PORT=$(free_port)
cat >"$WORK/haproxy.cfg" <<CFG
global
    nbthread 2
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend bench
    bind 127.0.0.1:$HAPROXY_PORT
    http-request set-path %[path,regsub(^/bench/,/)]
    default_backend sim
backend sim
    server sim 127.0.0.1:$SIM_PORT
CFG
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
wait_port "$HAPROXY_PORT"

start_headroom info
HR_LOG_PORT=$HR_PORT
start_headroom warn
HR_QUIET_PORT=$HR_PORT
if [[ -n ${BASELINE_BIN:-} ]]; then
    start_headroom info "$BASELINE_BIN"
    HR_BASE_PORT=$HR_PORT
fi

run_wrk() { # name url connections
    local out rps p50 p99 errors
    out=$(wrk -t"$THREADS" -c"$3" -d"$DURATION" --latency "$2")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    printf '%s %s %s %s %s %s\n' "$1" "$3" "$rps" "$p50" "$p99" "${errors:-0}"
}

TARGETS=(
    "direct http://127.0.0.1:$SIM_PORT/x"
    "nginx(log_off) http://127.0.0.1:$NGINX_PORT/bench/x"
    "nginx(log_on,buffered) http://127.0.0.1:$NGINX_LOG_PORT/bench/x"
    "haproxy http://127.0.0.1:$HAPROXY_PORT/bench/x"
    "headroom(log_on) http://127.0.0.1:$HR_LOG_PORT/bench/x"
    "headroom(log_off) http://127.0.0.1:$HR_QUIET_PORT/bench/x"
)
if [[ -n ${HR_BASE_PORT:-} ]]; then
    TARGETS+=("baseline(log_on) http://127.0.0.1:$HR_BASE_PORT/bench/x")
fi

echo "warming up..." >&2
for target in "${TARGETS[@]}"; do
    wrk -t1 -c4 -d2s "${target#* }" >/dev/null
done

echo "wrk -t$THREADS -d$DURATION at $CONNECTIONS and 256 connections (2-core machine: wrk, proxy and upstream share it)" >&2
RESULTS=$(
    for conns in "$CONNECTIONS" 256; do
        for target in "${TARGETS[@]}"; do
            run_wrk "${target%% *}" "${target#* }" "$conns"
        done
    done
)

# Streaming: a fresh Headroom so its peak RSS reflects only the transfer.
start_headroom warn
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$HR_PID/status"; }
RSS_START=$(hwm)
DIRECT_DL=$(curl -s --noproxy '*' -o /dev/null -w '%{time_total} %{size_download}' "http://127.0.0.1:$SIM_PORT/bytes/$STREAM_BYTES")
PROXY_DL=$(curl -s --noproxy '*' -o /dev/null -w '%{time_total} %{size_download}' "http://127.0.0.1:$HR_PORT/bench/bytes/$STREAM_BYTES")
RSS_DL=$(hwm)
PROXY_UL=$(head -c "$STREAM_BYTES" /dev/zero | curl -s --noproxy '*' -T - -w ' %{time_total}' "http://127.0.0.1:$HR_PORT/bench/upload")
RSS_UL=$(hwm)

# Memory: a supplier that accepts and never answers holds the one concurrency slot of
# `held`, so every other request to it waits in its queue.
HOLD_PORT=$(free_port)
python3 -c '
import asyncio, sys
async def hold(reader, writer):
    await reader.read()
async def main():
    server = await asyncio.start_server(hold, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())' "$HOLD_PORT" &
PIDS+=($!)
wait_port "$HOLD_PORT"
start_memory_headroom() { # sets HR_PORT, HR_ADMIN, HR_PID
    HR_PORT=$(free_port)
    HR_ADMIN=$(free_port)
    cat >"$WORK/memory-$HR_PORT.toml" <<TOML
[server]
listen = "127.0.0.1:$HR_PORT"
admin_listen = "127.0.0.1:$HR_ADMIN"

[[upstream]]
name = "held"
prefix = "/held"
url = "http://127.0.0.1:$HOLD_PORT"
max_concurrency = 1
timeout = "5m"

[upstream.queue]
max_depth = $((MEMORY_CONNECTIONS * 2))
max_wait = "5m"

[[upstream]]
name = "bench"
prefix = "/bench"
url = "http://127.0.0.1:$SIM_PORT"
TOML
    RUST_LOG=warn "$BIN" --config "$WORK/memory-$HR_PORT.toml" >"$WORK/memory-$HR_PORT.log" 2>&1 &
    HR_PID=$!
    PIDS+=("$HR_PID")
    wait_port "$HR_PORT"
}
echo "memory: $MEMORY_CONNECTIONS queued requests, then $MEMORY_CONNECTIONS idle connections" >&2
start_memory_headroom
MEM_QUEUED=$(python3 scripts/bench_memory.py queued --proxy "$HR_PORT" --path /held/x --pid "$HR_PID" \
    --count "$MEMORY_CONNECTIONS" --metrics "http://127.0.0.1:$HR_ADMIN/metrics")
kill "$HR_PID"
start_memory_headroom
MEM_IDLE=$(python3 scripts/bench_memory.py idle --proxy "$HR_PORT" --path /bench/x --pid "$HR_PID" \
    --count "$MEMORY_CONNECTIONS")
kill "$HR_PID"

mkdir -p "$(dirname "$OUT")"
{
    echo "## bench-proxy ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), wrk -t$THREADS -d$DURATION)"
    echo
    echo "| path | connections | requests/s | p50 | p99 | non-2xx | req/s vs nginx | p99 vs nginx |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    python3 - "$RESULTS" <<'PY'
import sys
def ms(v):
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * scale
    return float(v)
rows = [line.split() for line in sys.argv[1].splitlines() if line.strip()]
base = {r[1]: r for r in rows if r[0] == "nginx(log_off)"}
for name, conns, rps, p50, p99, errors in rows:
    n = base[conns]
    print(f"| {name} | {conns} | {float(rps):.0f} | {p50} | {p99} | {errors} | "
          f"{float(rps) / float(n[2]):.2f} | {ms(p99) / ms(n[4]):.2f} |")
PY
    echo
    read -r dtime dsize <<<"$DIRECT_DL"
    read -r ptime psize <<<"$PROXY_DL"
    echo "| streaming ($STREAM_BYTES bytes) | seconds | bytes | Headroom peak RSS |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| download direct | $dtime | $dsize | - |"
    echo "| download via Headroom | $ptime | $psize | $((RSS_DL / 1024)) MiB (at start $((RSS_START / 1024)) MiB) |"
    echo "| upload via Headroom | ${PROXY_UL##* } | $(python3 -c "import json,sys; print(json.loads(sys.argv[1].rsplit(' ',1)[0])['bytes'])" "$PROXY_UL") | $((RSS_UL / 1024)) MiB |"
    echo
    echo "| memory ($MEMORY_CONNECTIONS connections) | RSS at start | RSS held (after 1 s) | per connection | RSS held (settled) | per connection | RSS once gone |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for row in "queued requests:$MEM_QUEUED" "idle keep-alive connections:$MEM_IDLE"; do
        python3 - "${row%%:*}" "${row#*:}" <<'PY'
import json, sys
m = json.loads(sys.argv[2])
mib = lambda kib: f"{kib / 1024:.1f} MiB"
print(f"| {sys.argv[1]} | {mib(m['rss_start_kib'])} | {mib(m['rss_held_kib'])} | "
      f"{m['per_connection_kib']:.1f} KiB | {mib(m['rss_settled_kib'])} | "
      f"{m['per_connection_settled_kib']:.1f} KiB | {mib(m['rss_after_kib'])} |")
PY
    done
} | tee "$OUT"
