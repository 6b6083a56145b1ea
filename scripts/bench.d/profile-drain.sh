#!/usr/bin/env bash
# Profiles the delivery worker draining a backlog: the release `doorbell serve` with one endpoint
# (the bare sink), the endpoint disabled while wrk publishes for PUBLISH seconds (default 8), then
# enabled, and `perf record` on the server for SECONDS (default 5) of the drain. Writes to OUT
# (default /tmp/profile-drain):
#   self.txt     self time per symbol        groups.txt   the self time by area (profile_groups.py)
#   children.txt with --callers: inclusive time per symbol (dwarf call graphs)
#   drain-self.json  backlog size and drain rate (perf slows the server: compare only within a
#                profile; a backlog drained before SECONDS end makes the rate read low)
# Usage: scripts/bench.d/profile-drain.sh [SECONDS] [OUT] [--callers]   (scripts/bench profile-drain runs it)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SECONDS_="${1:-5}"
OUT="${2:-/tmp/profile-drain}"
CALLERS="${3:-}"
PUBLISH="${PUBLISH:-8}"
. scripts/bench.d/profile-common.sh
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
TOKEN="bench-token-0123456789"
API="http://127.0.0.1:18084/api/v1"
cat >"$WORK/dlv.yml" <<YAML
server: { listen: "127.0.0.1:18084" }
storage: "sqlite:dlv.db"
api: { tokens: ["$TOKEN"] }
outbound: { allow_private: ["127.0.0.0/8"] }
endpoints:
  - { id: sink, url: "http://127.0.0.1:18081/hooks/sink", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }
YAML
cat >"$WORK/publish.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"order.paid","data":{"order":"A-17","amount":4200}}'
LUA
"$BIN/doorbell-bench-bare" 18081 >/dev/null 2>&1 &

# record MODE: a fresh server and backlog, then perf for SECONDS of the drain.
record() {
    rm -f "$WORK"/dlv.db*
    (cd "$WORK" && exec "$BIN/doorbell" serve --config dlv.yml --log-level error >>"$OUT/serve.log" 2>&1) &
    local server=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:18084/healthz" && break; sleep 0.1; done
    curl -sf -o /dev/null "http://127.0.0.1:18084/healthz" || { echo "the server did not start: see $OUT/serve.log" >&2; exit 1; }
    curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" "$API/endpoints/sink/disable"
    wrk -t2 -c32 -d"${PUBLISH}s" --timeout 5s -s "$WORK/publish.lua" "$API/events" >/dev/null
    local backlog
    backlog="$(sqlite3 "$WORK/dlv.db" "SELECT COUNT(*) FROM runs WHERE status = 'paused'" 2>/dev/null || python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT COUNT(*) FROM runs WHERE status = 'paused'\").fetchone()[0])" "$WORK/dlv.db")"
    local start end
    start="$(date +%s.%N)"
    curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" "$API/endpoints/sink/enable"
    perf_attach "$1" "$server"
    end="$(date +%s.%N)"
    python3 - "$WORK/dlv.db" "$backlog" "$start" "$end" >"$OUT/drain-$1.json" <<'PY'
import json, sqlite3, sys
db, backlog, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
done = sqlite3.connect(db).execute("SELECT COUNT(*) FROM attempts WHERE status = 200").fetchone()[0]
print(json.dumps({"backlog": backlog, "delivered_while_profiled": done, "rate": round(done / (end - start))}))
PY
    kill -TERM "$server" 2>/dev/null || echo "the server had exited during the profile: see $OUT/serve.log" >&2
    wait "$server" 2>/dev/null || true
}

: >"$OUT/serve.log"
record self
report_self
if [ "$CALLERS" = --callers ]; then
    record callers
    perf report -i "$OUT/perf-callers.data" --children --sort symbol --stdio --percent-limit 1 -g none 2>/dev/null \
        | swift demangle --simplified | grep '%' >"$OUT/children.txt"
fi
cat "$OUT/groups.txt"
echo "drain while profiled: $(cat "$OUT/drain-self.json")"
if [ -s "$OUT/serve.log" ]; then echo "doorbell logged at level error:"; head -5 "$OUT/serve.log"; fi
