#!/usr/bin/env bash
# Pruning phase of scripts/bench: ingest p99 while the server prunes ROWS old events (retention at
# start) against the same ingest on a database with nothing to prune. Prints both and the ratio.
# Usage: scripts/bench.d/prune.sh BIN WORK SECONDS HMAC_SECRET REQUEST_LUA [ROWS]
#   or on its own (builds release):  scripts/bench.d/prune.sh --standalone [SECONDS] [ROWS]
set -euo pipefail
if [ "${1:-}" = "--standalone" ]; then
    cd "$(dirname "$0")/../.."
    BIN="$(scripts/bench.d/build-release.sh)"  # under the shared build lock
    WORK="$(mktemp -d /tmp/doorbell-prune.XXXXXX)"
    trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
    SECONDS_="${2:-5}"; ROWS="${3:-200000}"; HMAC_SECRET="bench-hmac-secret"
    python3 scripts/bench.d/request.py whsec_unused "$HMAC_SECRET" "$WORK/request.lua"
    REQUEST="$WORK/request.lua"
else
    BIN="$1"; WORK="$2"; SECONDS_="$3"; HMAC_SECRET="$4"; REQUEST="$5"; ROWS="${6:-200000}"
fi
mkdir -p "$WORK/prune"
cat > "$WORK/prune/doorbell.yml" <<YAML
server: { listen: "127.0.0.1:18085" }
storage: "sqlite:prune.db"
retention: { events: 1d, runs: 1d, attempts: 1d, dedupe_window: 7d }
sources:
  - id: form
    provider: hmac
    hmac: { header: X-Signature, algorithm: sha256, encoding: hex }
    secrets: ["$HMAC_SECRET"]
YAML

# measure NAME: starts serve on prune.db, runs wrk for SECONDS_ from the start, records how long the
# seeded rows took to go (if any).
measure() {
    local name="$1"
    (cd "$WORK/prune" && exec "$BIN/doorbell" serve --config doorbell.yml --log-level error >"$WORK/prune/$name.log" 2>&1) &
    local pid=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:18085/healthz && break; sleep 0.05; done
    local start; start="$(date +%s.%N)"
    python3 - "$WORK/prune/prune.db" "$start" >"$WORK/prune/$name.pruned" <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1]); start = float(sys.argv[2])
while time.time() - start < 120:
    if db.execute("SELECT COUNT(*) FROM events WHERE type = 'seeded'").fetchone()[0] == 0:
        break
    time.sleep(0.05)
print(round(time.time() - start, 2))
PY
    local watcher=$!
    wrk -t2 -c32 -d"${SECONDS_}s" --timeout 5s -s "$REQUEST" "http://127.0.0.1:18085/hooks/form" | grep '^{' >"$WORK/prune/$name.json"
    wait "$watcher"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

seed() {
    python3 - "$WORK/prune/prune.db" "$ROWS" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1]); rows = int(sys.argv[2])
old = int(time.time() * 1000) - 3 * 86400 * 1000
with db:
    db.execute(f"""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows} - 1)
        INSERT INTO events (id, source, type, provider_id, received_at, headers, body)
        SELECT 'evt_seed_' || i, 'form', 'seeded', 'seed_' || i, {old}, 'content-type: application/json', randomblob(600) FROM n""")
PY
}

rm -f "$WORK/prune/prune.db"*
"$BIN/doorbell" prune --config "$WORK/prune/doorbell.yml" >/dev/null  # creates the schema
measure idle
rm -f "$WORK/prune/prune.db"*
"$BIN/doorbell" prune --config "$WORK/prune/doorbell.yml" >/dev/null
seed
measure pruning
python3 - "$WORK/prune" "$ROWS" "$SECONDS_" <<'PY'
import json, sys
folder, rows, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
idle, pruning = (json.loads(open(f"{folder}/{n}.json").read()) for n in ("idle", "pruning"))
took = float(open(f"{folder}/pruning.pruned").read())
print()
print(f"pruning {rows} old events while ingesting (hmac source, new rows, 32 connections, {seconds:.0f} s):")
print(f"  idle database:  {idle['rps']:.0f} req/s, p50 {idle['p50_us']/1000:.2f} ms, p99 {idle['p99_us']/1000:.2f} ms, non-2xx {idle['non2xx']}")
print(f"  while pruning:  {pruning['rps']:.0f} req/s, p50 {pruning['p50_us']/1000:.2f} ms, p99 {pruning['p99_us']/1000:.2f} ms, non-2xx {pruning['non2xx']}")
print(f"  p99 ratio {pruning['p99_us']/max(1, idle['p99_us']):.2f}x; the {rows} rows took {took:.1f} s to prune"
      + ("" if took >= seconds else f" (less than the {seconds:.0f} s measured: the rest of the run was idle)"))
PY
