#!/usr/bin/env bash
# Fuzz smoke run (not in CI): each cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 30)
# with the nightly toolchain; installs cargo-fuzz when missing. A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the script: fix it and add a regression test.
#
#   scripts/bench-fuzz.sh              # FUZZ_SECONDS=30
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
for target in rate_limit_headers request_head; do
    echo "==> fuzzing $target for ${FUZZ_SECONDS}s"
    cargo +nightly fuzz run "$target" -- -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048
done
