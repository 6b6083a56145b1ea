#!/usr/bin/env bash
# Dashboard phase of scripts/bench: the events list (with and without filters), an event's
# timeline and the API list calls against 1,000,000 stored events (target p95 <= 50 ms), and a body
# text search (target p95 <= 500 ms); beside them the same requests against 1,000 events.
# Each database is made by `doorbell serve` (release) once, so the real migrations run, then seeded
# directly with Python's sqlite3 in one transaction (scripts/bench.d/seed_events.py: events with
# ~1 KB JSON bodies, runs, step results, deliveries and attempts). The server is started again on
# it; scripts/bench.d/dashboard_measure.py signs in to the dashboard with an API token and times
# each request sequentially on one keep-alive connection (warm-up, then up to 200 each; searches
# 20), and prints p50/p95 per request, and for a target missed the store's query with its plan.
# Usage: scripts/bench.d/dashboard.sh BIN WORK    or on its own (builds release): --standalone
#        BENCH_DASHBOARD_EVENTS=N changes the large database's size (default 1000000).
set -euo pipefail
if [ "${1:-}" = "--standalone" ]; then
    cd "$(dirname "$0")/../.."
    BIN="$(scripts/bench.d/build-release.sh)"  # under the shared build lock
    WORK="$(mktemp -d /tmp/doorbell-dashboard.XXXXXX)"
    OWN_WORK=1
else
    BIN="$1"; WORK="$2"; OWN_WORK=0
fi
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
EVENTS="${BENCH_DASHBOARD_EVENTS:-1000000}"
PORT=18086
TOKEN="bench-dashboard-token-0123456789"
mkdir -p "$WORK/dashboard"

config() {
    cat <<YAML
server: { listen: "127.0.0.1:$PORT" }
storage: "sqlite:dashboard.db"
api: { tokens: ["$TOKEN"] }
outbound: { allow_private: ["127.0.0.0/8"] }
retention: { events: forever, runs: forever, attempts: forever }
sources:
  - id: stripe
    provider: stripe
    secrets: ["whsec_bench_secret"]
  - id: shop
    provider: shopify
    secrets: ["shopify-bench-secret"]
  - id: contact-form
    provider: hmac
    hmac: { header: X-Signature, algorithm: sha256, encoding: hex, prefix: "sha256=" }
    secrets: ["form-bench-secret"]
automations:
  - id: invoice-on-payment
    on: ["stripe:payment_intent.succeeded"]
    steps:
      - { id: invoice, http: { url: "http://127.0.0.1:9/invoice", json: { event: "{{event.id}}" } } }
      - { id: mark-paid, http: { url: "http://127.0.0.1:9/paid", json: { event: "{{event.id}}" } } }
  - id: crm-on-form
    on: ["contact-form:form.submitted"]
    steps:
      - { id: crm, http: { url: "http://127.0.0.1:9/crm", json: { event: "{{event.id}}" } } }
      - { id: alert, http: { url: "http://127.0.0.1:9/alert", json: { event: "{{event.id}}" } } }
endpoints:
  - { id: erp, url: "http://127.0.0.1:9/erp", events: ["order.*"], secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }
  - { id: crm-hook, url: "http://127.0.0.1:9/crm-hook", events: ["order.paid"], secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }
YAML
}

SERVER=""
start() {  # DIR: serve in DIR until /healthz answers (a large file may take a moment to open)
    (cd "$1" && exec "$BIN/doorbell" serve --config doorbell.yml --log-level error >>serve.log 2>&1) &
    SERVER=$!
    for _ in $(seq 1 600); do
        curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz" && return 0
        kill -0 "$SERVER" 2>/dev/null || { echo "doorbell serve exited:" >&2; tail -20 "$1/serve.log" >&2; return 1; }
        sleep 0.1
    done
    echo "doorbell serve did not answer /healthz in 60 s" >&2; return 1
}
stop() {
    if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    SERVER=""
}
cleanup() {
    stop
    if [ "$OWN_WORK" = 1 ]; then rm -rf "$WORK"; else rm -rf "$WORK/dashboard"; fi
}
trap cleanup EXIT

# phase NAME EVENTS: migrate, seed, serve, measure; leaves NAME/seed.json, NAME/results.json, NAME/rss_kb.
phase() {
    local dir="$WORK/dashboard/$1"
    mkdir -p "$dir"
    config >"$dir/doorbell.yml"
    start "$dir"; stop
    echo "seeding $2 events..." >&2
    python3 "$ROOT/scripts/bench.d/seed_events.py" "$dir/dashboard.db" "$2" >"$dir/seed.json"
    start "$dir"
    echo "measuring against $2 events..." >&2
    python3 "$ROOT/scripts/bench.d/dashboard_measure.py" measure "http://127.0.0.1:$PORT" "$TOKEN" "$dir/seed.json" "$dir/results.json"
    awk '/VmHWM/ {print $2}' "/proc/$SERVER/status" >"$dir/rss_kb"
    stop
}

phase small 1000
phase large "$EVENTS"
python3 "$ROOT/scripts/bench.d/dashboard_measure.py" report \
    "$WORK/dashboard/large/results.json" "$WORK/dashboard/large/seed.json" \
    "$WORK/dashboard/small/results.json" "$WORK/dashboard/small/seed.json" "$WORK/dashboard/large/dashboard.db"
echo "database file $(( $(stat -c %s "$WORK/dashboard/large/dashboard.db") / 1048576 )) MB; server peak RSS $(( $(cat "$WORK/dashboard/large/rss_kb") / 1024 )) MB during the measurement ($(( $(cat "$WORK/dashboard/small/rss_kb") / 1024 )) MB with 1,000 events)"
