#!/usr/bin/env bash
# Foul-weather quota benchmark: impatient clients (timeout below the supplier's latency), a
# slow supplier (2 s per answer) and a supplier that halves its quota mid-run, for one or two
# Headroom binaries in the same run, so a fix is measured against the code before it.
# Loopback only; every run is bounded.
#
#   scripts/bench-foul.sh [BASELINE_BIN]     # BIN defaults to target/release/headroom
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/headroom}
BASELINE=${1:-}
python3 -c 'import requests' 2>/dev/null || python3 -m pip install -q requests
[[ -x $BIN ]] || cargo build --release --locked
for scenario in impatient slow tightened; do
    if [[ -n $BASELINE ]]; then
        # The baseline's gateway in front of the current simulator (it has POST /__limit).
        printf 'baseline %s\n' "$(timeout 300 python3 scripts/bench_foul.py --bin "$BASELINE" \
            --sim-bin "$BIN" --scenario "$scenario")"
    fi
    printf 'current  %s\n' "$(timeout 300 python3 scripts/bench_foul.py --bin "$BIN" --scenario "$scenario")"
done
