#!/usr/bin/env bash
# Builds the release products and prints their folder. The build goes under the shared build lock
# (/tmp/doorbell-build.lock, when it exists) so a benchmark never compiles beside another build or a
# test run on the same cores. A failed build prints its errors and fails the benchmark.
# Usage: BIN="$(scripts/bench.d/build-release.sh)"   (from the package root)
set -euo pipefail
cd "$(dirname "$0")/../.."
locked() {
    if [ -e /tmp/doorbell-build.lock ]; then flock /tmp/doorbell-build.lock "$@"; else "$@"; fi
}
echo "building release..." >&2
if ! output="$(locked swift build -c release 2>&1)"; then
    echo "$output" | grep -E "error:" | head -20 >&2 || echo "$output" | tail -20 >&2
    echo "the release build failed" >&2
    exit 1
fi
locked swift build -c release --show-bin-path
