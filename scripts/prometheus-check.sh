#!/usr/bin/env bash
# Checks grafana/prometheus.yml against a real Prometheus: starts the supplier simulator (no
# quota) and the gateway in front of it on free 127.0.0.1 ports, sends a few requests through
# it, runs Prometheus with a copy of grafana/prometheus.yml (target rewritten to the gateway's
# admin listener, scrape_interval 1s), and polls Prometheus' HTTP API until
# headroom_requests_total arrives with its `upstream` label (at most TIMEOUT seconds, 60 by
# default). Prints what it found and exits 0, or prints the last answer and exits 1.
# Installs Debian's `prometheus` if missing, without starting it as a service. Loopback only;
# everything started here is stopped on exit.
#
#   scripts/prometheus-check.sh        # HEADROOM_BIN=target/debug/headroom TIMEOUT=60
set -euo pipefail
cd "$(dirname "$0")/.."

TIMEOUT=${TIMEOUT:-60}
REQUESTS=${REQUESTS:-5}
BIN=${HEADROOM_BIN:-$PWD/target/debug/headroom}
QUERY=headroom_requests_total

log() { printf '==> %s\n' "$*"; }

WORK=$(mktemp -d)
PIDS=()
POLICY_RC=/usr/sbin/policy-rc.d
OWN_POLICY_RC=
# Run by the EXIT trap (shellcheck 0.11 misses that when the script ends with `exit`).
# shellcheck disable=SC2329
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [[ -n $OWN_POLICY_RC ]] && rm -f "$POLICY_RC"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Whether apt knows a version of the Debian package `prometheus`.
candidate() { [[ $(apt-cache policy prometheus 2>/dev/null || true) == *"Candidate: "[0-9]* ]]; }
if ! command -v prometheus >/dev/null 2>&1; then
    candidate || apt-get update -qq
    if ! candidate; then
        echo "no Debian package 'prometheus' available: install Prometheus yourself" >&2
        exit 1
    fi
    log "installing prometheus (not started as a service)"
    # policy-rc.d answering 101 keeps the package's maintainer scripts from starting it.
    if [[ ! -e $POLICY_RC ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"
        chmod +x "$POLICY_RC"
        OWN_POLICY_RC=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if [[ -n $OWN_POLICY_RC ]]; then
        rm -f "$POLICY_RC"
        OWN_POLICY_RC=
    fi
fi
for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool is required" >&2; exit 1; }
done
if [[ ! -x $BIN ]]; then
    log "building $BIN"
    cargo build --locked --quiet --bin headroom
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do
        (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listening on 127.0.0.1:$1 after 10 s; $2:" >&2
    cat "$WORK/$2.log" >&2
    return 1
}
get() { curl -sS --noproxy '*' --max-time 5 "$@"; }

SIM_PORT=$(free_port)
"$BIN" simulate --listen "127.0.0.1:$SIM_PORT" --limit 0 >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
wait_port "$SIM_PORT" sim

PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
cat >"$WORK/headroom.toml" <<TOML
[server]
listen = "127.0.0.1:$PROXY_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"

[[upstream]]
name = "sim"
prefix = "/sim"
url = "http://127.0.0.1:$SIM_PORT"
TOML
"$BIN" --config "$WORK/headroom.toml" >"$WORK/headroom.log" 2>&1 &
PIDS+=($!)
wait_port "$PROXY_PORT" headroom
wait_port "$ADMIN_PORT" headroom

log "sending $REQUESTS requests through Headroom on 127.0.0.1:$PROXY_PORT"
for i in $(seq 1 "$REQUESTS"); do
    status=$(get -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PROXY_PORT/sim/records?n=$i")
    [[ $status == 200 ]] || { echo "request $i: HTTP $status" >&2; exit 1; }
done

# grafana/prometheus.yml, pointed at this gateway's admin listener and scraping every second.
sed -e "s/headroom:9090/127.0.0.1:$ADMIN_PORT/" -e 's/\(interval: *\)5s/\11s/' \
    grafana/prometheus.yml >"$WORK/prometheus.yml"
if ! grep -q "127.0.0.1:$ADMIN_PORT" "$WORK/prometheus.yml" || grep -q 'interval: *5s' "$WORK/prometheus.yml"; then
    echo "could not rewrite grafana/prometheus.yml (target headroom:9090, interval 5s)" >&2
    exit 1
fi
if command -v promtool >/dev/null 2>&1; then
    promtool check config "$WORK/prometheus.yml" >/dev/null
fi

PROM_PORT=$(free_port)
PROM=http://127.0.0.1:$PROM_PORT
log "starting Prometheus on 127.0.0.1:$PROM_PORT, scraping http://127.0.0.1:$ADMIN_PORT/metrics"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)

# Prints the query's series that carry an `upstream` label; exits 1 when there are none.
found() {
    python3 -c '
import json, sys
answer = json.load(sys.stdin)
series = [r for r in answer.get("data", {}).get("result", []) if r["metric"].get("upstream")]
for r in series:
    metric, value = r["metric"], r["value"][1]
    labels = ",".join(k + "=" + json.dumps(v) for k, v in sorted(metric.items()) if k != "__name__")
    print("  " + metric["__name__"] + "{" + labels + "} " + value)
sys.exit(0 if series else 1)'
}
# The scrape target's health and last error, from /api/v1/targets.
target_health() {
    get "$PROM/api/v1/targets" 2>/dev/null | python3 -c '
import json, sys
try:
    targets = json.load(sys.stdin)["data"]["activeTargets"]
except Exception:
    sys.exit("  no answer from /api/v1/targets")
for t in targets:
    print(("  " + t["scrapeUrl"] + ": " + t["health"] + " " + t["lastError"]).rstrip())' || true
}

deadline=$((SECONDS + TIMEOUT))
answer=""
while ((SECONDS < deadline)); do
    if answer=$(get "$PROM/api/v1/query?query=$QUERY" 2>&1) && series=$(found <<<"$answer"); then
        log "Prometheus has $QUERY after $((TIMEOUT - (deadline - SECONDS))) s:"
        printf '%s\n' "$series"
        log "scrape target:"
        target_health
        exit 0
    fi
    sleep 1
done

echo "no $QUERY series with an upstream label within $TIMEOUT s; last answer:" >&2
printf '  %s\n' "$answer" >&2
echo "scrape target:" >&2
target_health >&2
echo "Prometheus log (tail):" >&2
tail -n 5 "$WORK/prometheus.log" >&2
exit 1
