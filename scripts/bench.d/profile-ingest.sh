#!/usr/bin/env bash
# Profiles new-event ingest: the release `doorbell serve` on an empty database, wrk driving the
# `form` hmac source (every request a new, fsynced row) at 32 connections, and `perf record` on the
# server for SECONDS (default 10) after 2 s of warm-up. Writes to OUT (default /tmp/profile-ingest):
#   self.txt     self time per symbol (no call graph, so perf costs the server little)
#   groups.txt   the self time by area (profile_groups.py)
#   callers.txt  with --callers: call graphs (dwarf) of the hottest symbols, to see who calls them
#   wrk.json     the load's figures while perf ran (perf slows the server: compare only within a profile)
# With E2E=1 the source has the end-to-end benchmark's automation (one http step to the bare sink),
# so the profile holds the worker's runs beside ingest.
# Usage: [E2E=1] scripts/bench.d/profile-ingest.sh [SECONDS] [OUT] [--callers]   (scripts/bench profile runs it)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SECONDS_="${1:-10}"
OUT="${2:-/tmp/profile-ingest}"
CALLERS="${3:-}"
. scripts/bench.d/profile-common.sh
SERVER=""
SINK=""
trap 'if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi; [ -z "$SINK" ] || kill "$SINK" 2>/dev/null || true; rm -rf "$WORK"' EXIT
python3 scripts/bench.d/request.py whsec_bench_secret bench-hmac-secret "$WORK/request.lua"
cat >"$WORK/doorbell.yml" <<YAML
server: { listen: "127.0.0.1:18087" }
storage: "sqlite:doorbell.db"
retention: { events: forever, runs: forever, attempts: forever }
sources:
  - id: form
    provider: hmac
    hmac: { header: X-Signature, algorithm: sha256, encoding: hex }
    secrets: ["bench-hmac-secret"]
YAML
if [ "${E2E:-0}" = 1 ]; then
    cat >>"$WORK/doorbell.yml" <<YAML
outbound: { allow_private: ["127.0.0.0/8"] }
YAML
    cat scripts/bench.d/e2e-automation.yml >>"$WORK/doorbell.yml"
    "$BIN/doorbell-bench-bare" 18081 >/dev/null 2>&1 &
    SINK=$!
fi
URL="http://127.0.0.1:18087/hooks/form"

# record MODE: a fresh server, warm-up, perf for SECONDS while wrk keeps the load on.
record() {
    rm -f "$WORK"/doorbell.db*
    (cd "$WORK" && exec "$BIN/doorbell" serve --config doorbell.yml --log-level error >>"$OUT/serve.log" 2>&1) &
    SERVER=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null -X POST "$URL" && break; sleep 0.1; done
    wrk -t2 -c32 -d2s --timeout 5s -s "$WORK/request.lua" "$URL" >/dev/null
    wrk -t2 -c32 -d"$(( SECONDS_ + 2 ))s" --timeout 5s -s "$WORK/request.lua" "$URL" | grep '^{' >"$OUT/wrk-$1.json" &
    local load=$!
    sleep 1
    perf_attach "$1" "$SERVER"
    wait "$load"
    kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true
    SERVER=""
}

: >"$OUT/serve.log"
record self
cp "$OUT/wrk-self.json" "$OUT/wrk.json"
report_self
if [ "$CALLERS" = --callers ]; then
    record callers
    perf report -i "$OUT/perf-callers.data" --no-children --sort symbol --stdio --percent-limit 1.5 \
        -g caller,0.5,callee,function,percent --max-stack 24 2>/dev/null | swift demangle --simplified >"$OUT/callers.txt"
fi
cat "$OUT/groups.txt"
echo "under load while profiled: $(cat "$OUT/wrk.json")"
if [ -s "$OUT/serve.log" ]; then echo "doorbell logged at level error:"; head -5 "$OUT/serve.log"; fi
