#!/usr/bin/env bash
# Pollers phase of scripts/bench: one poll over 10,000 items (100 pages of 100, next-link pagination)
# against the test suite's local JSON API (Tests/DoorbellTests/Fixtures/poll_api.py), run with
# `doorbell pollers run` (release): time per poll, time spent diffing, peak RSS; then the same poll
# with nothing changed (no ETag, so every page is read and diffed again). Then memory: peak RSS of a
# 304 poll (state loaded, nothing fetched) for a poller remembering 100,000 ids, against one
# remembering none. Targets: diffing 10,000 unchanged items <= 20 ms; 100,000 ids <= 20 MB more.
# That poller walks a cursor (100 pages of 1,000): conditional requests are only sent for
# single-page and cursor polls (pages hold at most 10,000 items), so a next-link poller's
# "unchanged" poll would read and parse every page, and its peak would measure the pages, not the
# remembered ids.
# Usage: scripts/bench.d/pollers.sh BIN WORK    or on its own (builds release): --standalone
set -euo pipefail
if [ "${1:-}" = "--standalone" ]; then
    cd "$(dirname "$0")/../.."
    BIN="$(scripts/bench.d/build-release.sh)"  # under the shared build lock
    WORK="$(mktemp -d /tmp/doorbell-pollers.XXXXXX)"
    trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
else
    BIN="$1"; WORK="$2"
fi
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$WORK/pollers"
cd "$WORK/pollers"
python3 "$ROOT/Tests/DoorbellTests/Fixtures/poll_api.py" >api.out 2>&1 &
API_PID=$!
for _ in $(seq 1 100); do grep -q READY api.out 2>/dev/null && break; sleep 0.05; done
PORT="$(awk '/READY/ {print $2}' api.out)"
control() { curl -fsS -X POST -H 'Content-Type: application/json' -d "$2" "http://127.0.0.1:$PORT/_control/$1" >/dev/null; }

poller() {  # ID PATH MAX_PAGES
    cat <<YAML
  - id: $1
    every: 1h
    request: { url: "http://127.0.0.1:$PORT$2" }
    items: /items
    item_id: /id
    item_version: /updated_at
    emit: item.created
    emit_changed: item.updated
    first_run: ${4:-all}
    pagination: { next: /next }
    max_pages: $3
    max_seen: 200000
YAML
}
{
    echo 'storage: "sqlite:pollers.db"'
    echo 'outbound: { allow_private: ["127.0.0.0/8"] }'
    echo 'pollers:'
    poller tenk "/items?per_page=100&noetag=1" 200
    # A cursor walk from the kept {{cursor}}: the poll after the baseline one is a 304.
    cat <<YAML
  - id: hundredk
    every: 1h
    request: { url: "http://127.0.0.1:$PORT/cursor-items?per_page=1000&after={{cursor}}" }
    items: /data
    item_id: /id
    item_version: /updated_at
    emit: item.created
    first_run: baseline
    pagination: { cursor: { param: after, from: /next_cursor } }
    max_pages: 200
    max_seen: 200000
YAML
    poller empty "/empty" 1 baseline
} >doorbell.yml

# poll ID: prints "wall_s max_rss_kb diff_s emitted items"
poll() {
    /usr/bin/time -f '%e %M' -o time.txt "$BIN/doorbell" pollers run "$1" --json --config doorbell.yml >run.json
    python3 - "$(cat time.txt)" <<'PY'
import json, sys
wall, rss = sys.argv[1].split()
report = json.load(open("run.json"))
print(wall, rss, report["diff_seconds"], len(report["emitted"]), report["items"], report["not_modified"])
PY
}

control add '{"count": 10000, "prefix": "tenk"}'
read -r W1 R1 D1 E1 I1 _ < <(poll tenk)
read -r W2 R2 D2 E2 I2 _ < <(poll tenk)
# 100,000 remembered ids: a baseline poll walking the cursor, then a 304 poll that loads them.
control add '{"count": 90000, "prefix": "more"}'
poll hundredk >/dev/null
read -r _ RM _ _ _ NM < <(poll hundredk)
# The same 304 poll for a poller that remembers nothing (an empty list it was baselined on).
"$BIN/doorbell" pollers run empty --config doorbell.yml >/dev/null 2>&1 || true
read -r _ R0 _ _ _ _ < <(poll empty 2>/dev/null || echo "0 0 0 0 0 x")
kill "$API_PID" 2>/dev/null || true

python3 - "$W1" "$R1" "$D1" "$E1" "$I1" "$W2" "$R2" "$D2" "$E2" "$I2" "$RM" "$NM" "$R0" <<'PY'
import sys
w1, r1, d1, e1, i1, w2, r2, d2, e2, i2, rm, nm, r0 = sys.argv[1:]
print("== pollers: doorbell pollers run against the local API (release) ==")
print(f"first poll   {int(i1):>6} items, 100 pages: {float(w1)*1000:7.0f} ms per poll (process), diffing {float(d1)*1000:6.1f} ms, {int(e1)} events committed, peak RSS {int(r1)/1024:.1f} MB")
print(f"unchanged    {int(i2):>6} items, 100 pages: {float(w2)*1000:7.0f} ms per poll (process), diffing {float(d2)*1000:6.1f} ms, {int(e2)} events, peak RSS {int(r2)/1024:.1f} MB   (target: diffing <= 20 ms)")
growth = (int(rm) - int(r0)) / 1024
print(f"memory       304 poll remembering 100,000 ids: peak RSS {int(rm)/1024:.1f} MB (not modified: {nm}); remembering none: {int(r0)/1024:.1f} MB; growth {growth:.1f} MB   (target: <= 20 MB)")
PY
