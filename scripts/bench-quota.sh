#!/usr/bin/env bash
# Quota benchmark on loopback: for each simulator convention, WORKERS Python threads send
# REQUESTS GETs to a supplier simulator allowing LIMIT requests per WINDOW, once straight at
# it with a typical backoff client (requests + urllib3 Retry honouring Retry-After) and once
# through Headroom with plain requests and no retry. Each run gets a fresh simulator and
# starts at a window boundary (windows are aligned to the Unix epoch). Reports upstream 429s
# (the simulator's own count), client non-200s, wall time and quota use = ideal / actual.
# Only 127.0.0.1 is used; every run is bounded by RUN_TIMEOUT seconds.
#
#   scripts/bench-quota.sh            # REQUESTS=160 WORKERS=32 LIMIT=20 WINDOW=2 RUN_TIMEOUT=120
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-160}
WORKERS=${WORKERS:-32}
LIMIT=${LIMIT:-20}
WINDOW=${WINDOW:-2}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
CONVENTIONS=${CONVENTIONS:-github delta ietf ietf-07 discord retry-after retry-after-date}
OUT=${OUT:-artifacts/bench-quota.md}
DETAILS_DIR=${DETAILS_DIR:-} # when set: per-request statuses and simulator stats of every run, as JSON
CLIENT=$PWD/scripts/bench_quota_client.py

if ! python3 -c 'import requests, urllib3' 2>/dev/null; then
    python3 -m pip install -q requests urllib3
fi

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
trap 'exit 130' INT TERM
start() { # log command...: start a background process, its pid in LAST_PID
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
stop() { # pid...
    local pid
    for pid in "$@"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

start_sim() { # convention tag
    SIM_PORT=$(free_port)
    start "$WORK/sim-$1-$2.log" "$BIN" simulate --listen "127.0.0.1:$SIM_PORT" \
        --limit "$LIMIT" --window "${WINDOW}s" --convention "$1"
    SIM_PID=$LAST_PID
    wait_port "$SIM_PORT"
}

start_headroom() { # convention
    HR_PORT=$(free_port)
    HR_ADMIN=$(free_port)
    cat >"$WORK/headroom-$1.toml" <<TOML
[server]
listen = "127.0.0.1:$HR_PORT"
admin_listen = "127.0.0.1:$HR_ADMIN"

[[upstream]]
name = "sim"
prefix = "/sim"
url = "http://127.0.0.1:$SIM_PORT"
TOML
    start "$WORK/headroom-$1.log" env RUST_LOG=warn "$BIN" --config "$WORK/headroom-$1.toml"
    HR_PID=$LAST_PID
    wait_port "$HR_PORT"
    wait_port "$HR_ADMIN"
}

run_client() { # mode url tag: the client's result line in RESULT
    # The client bounds itself by RUN_TIMEOUT; timeout(1) is the backstop. It runs in the
    # background so that a signal reaches the trap (and the client) at once.
    start "$WORK/client-$3.out" timeout "$((RUN_TIMEOUT + 30))" python3 "$CLIENT" \
        --mode "$1" --url "$2" --stats "http://127.0.0.1:$SIM_PORT/__stats" \
        --requests "$REQUESTS" --workers "$WORKERS" --limit "$LIMIT" --window "$WINDOW" \
        --timeout "$RUN_TIMEOUT" --json "$WORK/client-$3.json"
    if ! wait "$LAST_PID"; then
        echo "client run $3 failed:" >&2
        cat "$WORK/client-$3.out" >&2
        return 1
    fi
    RESULT=$(tail -n 1 "$WORK/client-$3.out")
    if [[ -n $DETAILS_DIR ]]; then
        mkdir -p "$DETAILS_DIR"
        cp "$WORK/client-$3.json" "$DETAILS_DIR/"
    fi
}

IDEAL=$(python3 -c "import math; print(f'{(math.ceil($REQUESTS / $LIMIT) - 1) * $WINDOW:g}')")
RESULTS=""
for conv in $CONVENTIONS; do
    echo "$conv: direct + urllib3 Retry..." >&2
    start_sim "$conv" direct
    run_client urllib3 "http://127.0.0.1:$SIM_PORT" "$conv-direct"
    direct=$RESULT
    stop "$SIM_PID"

    echo "$conv: through Headroom..." >&2
    start_sim "$conv" headroom
    start_headroom "$conv"
    run_client plain "http://127.0.0.1:$HR_PORT/sim" "$conv-headroom"
    headroom=$RESULT
    stop "$HR_PID" "$SIM_PID"

    echo "  direct:   $direct" >&2
    echo "  headroom: $headroom" >&2
    RESULTS+="$conv $direct | $headroom"$'\n'
done

mkdir -p "$(dirname "$OUT")"
{
    echo "## bench-quota ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $WORKERS workers, $REQUESTS GETs, simulator --limit $LIMIT --window ${WINDOW}s)"
    echo
    echo "Quota use = ideal / actual seconds, ideal = (ceil($REQUESTS / $LIMIT) - 1) * ${WINDOW} s = ${IDEAL} s:"
    echo "the time $REQUESTS requests need at $LIMIT per ${WINDOW} s when started at a window start (every run"
    echo "starts at one, on a fresh simulator). Upstream 429s are the simulator's own count."
    echo "Direct: requests + urllib3 Retry(total=10, backoff_factor=0.2, status_forcelist=[429, 5xx],"
    echo "respect_retry_after_header=True). Headroom: plain requests, no retry, default upstream settings."
    echo
    echo "| convention | direct 429s upstream | direct non-200 | direct s | direct quota use | Headroom 429s upstream | Headroom non-200 | Headroom s | Headroom quota use | Headroom targets |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    while read -r conv d429 dnon ds duse _ _ _ h429 hnon hs huse hmax _; do
        [[ -n $conv ]] || continue
        miss=()
        ((hnon == 0)) || miss+=("non-200")
        if [[ $conv == retry-after* ]]; then
            ((hmax <= 1)) || miss+=("$hmax 429s in one window")
        else
            ((h429 <= 2)) || miss+=("429s")
        fi
        python3 -c "import sys; sys.exit(0 if $huse >= 0.9 else 1)" || miss+=("quota use")
        if ((${#miss[@]})); then
            verdict="missed: $(IFS=,; echo "${miss[*]}")"
        else
            verdict="met"
        fi
        echo "| $conv | $d429 | $dnon | $ds | $duse | $h429 | $hnon | $hs | $huse | $verdict |"
    done <<<"$RESULTS"
    echo
    echo "Targets for Headroom: 0 client non-200; at most 2 upstream 429s (retry-after conventions,"
    echo "which announce nothing before the first 429: at most one per ${WINDOW} s window); quota use >= 0.9."
} | tee "$OUT"
