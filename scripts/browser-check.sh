#!/usr/bin/env bash
# Browser check of the admin status page (src/admin/status.html, served at GET / on the admin
# listener): headless Debian Chromium, driven by playwright-core (tests/browser/status.test.mjs),
# types the admin token, reads the upstream table, trips and resets a breaker, and saves
# artifacts/status-page.png.
#
# Starts `headroom simulate` (500 requests a minute, IETF headers) and the gateway (two upstreams on the simulator) on free
# loopback ports with HEADROOM_ADMIN_TOKEN=test-token, unless ADMIN_URL is set: then it runs the
# browser against that admin listener (with ADMIN_TOKEN, default test-token) and starts nothing.
# Installs Debian's chromium and the pinned playwright-core when missing. After the installs the
# check is bounded by BROWSER_CHECK_TIMEOUT seconds (default 120). Closes with "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

HEADROOM_BIN=${HEADROOM_BIN:-$root/target/debug/headroom}
budget=${BROWSER_CHECK_TIMEOUT:-120}
export SCREENSHOT=${SCREENSHOT:-$root/artifacts/status-page.png}

log() { printf '==> %s\n' "$*" >&2; }
fail() {
    printf 'browser-check: %s\n' "$*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

# --- installs (not counted in the time budget) ---
apt_install() {
    log "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq || fail "apt-get update failed"
    timeout 900 apt-get install -y -qq "$@" >/dev/null || fail "apt-get install $* failed"
}
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
[[ -x /usr/bin/chromium ]] || apt_install chromium

want=$(node -p 'require("./tests/browser/package.json").dependencies["playwright-core"]')
have=$(node -p 'try { require("./tests/browser/node_modules/playwright-core/package.json").version } catch (e) { "" }')
if [[ "$want" != "$have" ]]; then
    log "installing playwright-core $want (npm)"
    (cd tests/browser && timeout 300 npm ci --no-audit --no-fund --loglevel=error) ||
        fail "npm ci in tests/browser failed"
fi

# --- the check, bounded ---
deadline=$((SECONDS + budget))
tmp=$(mktemp -d)
pids=()

cleanup() {
    local p i
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until the log file has a line from which the sed expression extracts an address.
wait_addr() {
    local file=$1 expr=$2 what=$3 addr
    while ((SECONDS < deadline)); do
        addr=$(sed -n "$expr" "$file" | head -n1)
        if [[ -n "$addr" ]]; then echo "$addr"; return 0; fi
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$file" >&2
    printf 'browser-check: %s did not report its address (log above)\n' "$what" >&2
    return 1
}

if [[ -z "${ADMIN_URL:-}" ]]; then
    [[ -x "$HEADROOM_BIN" ]] || fail "$HEADROOM_BIN not found: run cargo build first"

    "$HEADROOM_BIN" simulate --limit 500 --window 60s --convention ietf --listen 127.0.0.1:0 >"$tmp/sim.log" 2>&1 &
    pids+=($!)
    sim=$(wait_addr "$tmp/sim.log" 's/.*"addr":"\([0-9.]*:[0-9]*\)".*/\1/p' "simulator") || fail "simulator did not start"

    cat >"$tmp/headroom.toml" <<EOF
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
drain_timeout = "2s"

[[upstream]]
name = "supplier-a"
prefix = "/supplier-a"
url = "http://$sim"

[[upstream]]
name = "supplier-b"
prefix = "/supplier-b"
url = "http://$sim"

# A fleet store nobody answers on (port 1): the page must say the replica paces alone.
[store]
redis_url = "redis://127.0.0.1:1"
timeout = "50ms"
EOF
    HEADROOM_ADMIN_TOKEN=test-token "$HEADROOM_BIN" --config "$tmp/headroom.toml" >"$tmp/headroom.log" 2>&1 &
    pids+=($!)
    admin=$(wait_addr "$tmp/headroom.log" 's/.*"admin":"\([0-9.]*:[0-9]*\)".*/\1/p' "headroom") || fail "headroom did not start"
    # A little traffic, so supplier-a shows a learned quota and a reset countdown.
    proxy=$(sed -n 's/.*"proxy":"\([0-9.]*:[0-9]*\)".*/\1/p' "$tmp/headroom.log" | head -n 1)
    for page in 1 2 3; do
        curl -s --noproxy '*' -o /dev/null "http://$proxy/supplier-a/lots?page=$page" || fail "no answer through headroom"
    done
    export ADMIN_URL="http://$admin" ADMIN_TOKEN=test-token EXPECT_UPSTREAMS=supplier-a,supplier-b EXPECT_STORE=degraded
    log "simulator on $sim, headroom admin on $admin"
fi

left=$((deadline - SECONDS))
((left > 0)) || fail "no time left for the browser (budget ${budget}s)"
log "browser check against $ADMIN_URL (at most ${left}s)"
rc=0
timeout --kill-after=5 "$left" node tests/browser/status.test.mjs || rc=$?
if ((rc == 124 || rc == 137)); then
    printf 'browser-check: timed out after %ss\n' "$budget" >&2
    rc=1
fi
if ((rc != 0)) && [[ -f "$tmp/headroom.log" ]]; then
    echo "--- headroom log (last 20 lines) ---" >&2
    tail -n 20 "$tmp/headroom.log" >&2
fi
exit "$rc"
