#!/usr/bin/env bash
# Ingest phase of scripts/bench: interleaved rounds (BENCH_ROUNDS, default 3) of the same signed
# request, sent by wrk at 32 connections, to
#   new-event          doorbell `form` hmac source: no dedupe key, so every request is a new, fsynced
#                      row; a fresh, empty database each round
#   new-event-seeded   the same source and config on a database already holding 1,000,000 events
#                      (seeded once per run with seed_events.py; BENCH_SEEDED=0 skips it,
#                      BENCH_SEEDED_EVENTS=N changes the size)
#   stripe-duplicate   doorbell `stripe` source: verified, and every request after the first is a duplicate
#   bare-hummingbird   doorbell-bench-bare: reads the body, answers 200 (the ceiling for this stack)
#   adnanh-webhook     payload-hmac-sha256 rule, runs /bin/true, stores nothing
#   new-event-baseline only with BENCH_BASELINE=/path/to/doorbell (another build, e.g. the commit
#                      before a change): new-event served by that binary, so a change is measured
#                      before and after side by side (the report adds new-event / baseline)
# Every target runs once per round, one after the other (odd rounds in this order, even rounds
# reversed, so a slow drift of the machine does not favour one side), and the ratios are taken within
# a round, so each compares figures measured side by side. Each target starts fresh, gets 2 s of
# warm-up, then SECONDS of measurement; its peak RSS is VmHWM at the end.
# Prints per target the median req/s, p50 and p99 with their spread (min-max over the rounds), the
# peak RSS, and the targets of issue 13 as met / not met; writes WORK/ingest/summary.json (the
# new-event median, which the end to end phase compares against).
# Usage: scripts/bench.d/ingest.sh BIN WORK SECONDS STRIPE_SECRET HMAC_SECRET REQUEST_LUA
#        (scripts/bench ingest [seconds] runs it on its own)
set -euo pipefail
BIN="$1"; WORK="$2"; SECONDS_="$3"; STRIPE_SECRET="$4"; HMAC_SECRET="$5"; REQUEST="$6"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ROUNDS="${BENCH_ROUNDS:-3}"
SEEDED_EVENTS="${BENCH_SEEDED_EVENTS:-1000000}"
CONNECTIONS=32
THREADS=2
DIR="$WORK/ingest"
mkdir -p "$DIR/empty" "$DIR/seeded" "$DIR/stripe" "$DIR/bare" "$DIR/webhook" "$DIR/baseline"
BASELINE="${BENCH_BASELINE:-}"
if [ -n "$BASELINE" ] && [ ! -x "$BASELINE" ]; then echo "BENCH_BASELINE=$BASELINE is not an executable doorbell" >&2; exit 1; fi
: >"$DIR/results.jsonl"

SERVER=""
cleanup() {
    if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -f "$DIR"/*/doorbell.db*  # the seeded file is over a gigabyte; the later phases need none of them
}
trap cleanup EXIT

# One config for every doorbell target: only the database under it differs. Retention keeps
# everything, so no pruning pass runs over the seeded rows while they are measured.
for target in empty seeded stripe baseline; do
    cat >"$DIR/$target/doorbell.yml" <<YAML
server: { listen: "127.0.0.1:18080" }
storage: "sqlite:doorbell.db"
retention: { events: forever, runs: forever, attempts: forever }
sources:
  - id: stripe
    provider: stripe
    secrets: ["$STRIPE_SECRET"]
    tolerance: 3600
  - id: form
    provider: hmac
    hmac: { header: X-Signature, algorithm: sha256, encoding: hex }
    secrets: ["$HMAC_SECRET"]
YAML
done
cat >"$DIR/webhook/hooks.json" <<JSON
[{"id": "stripe", "execute-command": "/bin/true",
  "trigger-rule": {"match": {"type": "payload-hmac-sha256", "secret": "$HMAC_SECRET",
                             "parameter": {"source": "header", "name": "X-Signature"}}}}]
JSON

# start DIR LOG URL COMMAND...: runs COMMAND in DIR until URL accepts a connection (any answer).
start() {
    local dir="$1" log="$2" url="$3"; shift 3
    (cd "$dir" && exec "$@" >>"$log" 2>&1) &
    SERVER=$!
    SERVER_URL="$url"
    for _ in $(seq 1 600); do
        curl -s -o /dev/null -X POST "$url" && return 0
        kill -0 "$SERVER" 2>/dev/null || { echo "the server in $dir exited:" >&2; tail -20 "$log" >&2; return 1; }
        sleep 0.1
    done
    echo "server at $url did not start in 60 s" >&2; return 1
}
stop() {
    kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true
    SERVER=""
    # Until nothing answers there (belt and braces: the server has exited, so this is normally at
    # once): the next target may listen on the same port. adnanh/webhook once failed to bind when it
    # started twice in a row between rounds; the cause was not found and did not recur.
    for _ in $(seq 1 100); do curl -s -o /dev/null --max-time 1 -X POST "$SERVER_URL" || return 0; sleep 0.1; done
}
form_rows() {  # DATABASE: the events stored for the form source (0 without a database)
    if [ -f "$1" ]; then
        python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM events WHERE source = ?", ("form",)).fetchone()[0])' "$1"
    else
        echo 0
    fi
}

TARGETS=(new-event new-event-seeded stripe-duplicate bare-hummingbird adnanh-webhook)
if [ "${BENCH_SEEDED:-1}" = 0 ]; then TARGETS=(new-event stripe-duplicate bare-hummingbird adnanh-webhook); fi
if [ -n "$BASELINE" ]; then TARGETS=(new-event new-event-baseline "${TARGETS[@]:1}"); fi
# BENCH_TARGETS="new-event new-event-baseline" measures only those (a quicker before/after).
if [ -n "${BENCH_TARGETS:-}" ]; then
    read -r -a TARGETS <<<"$BENCH_TARGETS"
    for name in "${TARGETS[@]}"; do
        case "$name" in
            new-event|stripe-duplicate|bare-hummingbird|adnanh-webhook) ;;
            new-event-seeded) [ "${BENCH_SEEDED:-1}" != 0 ] || { echo "BENCH_TARGETS: new-event-seeded needs the seeding (BENCH_SEEDED is 0)" >&2; exit 1; } ;;
            new-event-baseline) [ -n "$BASELINE" ] || { echo "BENCH_TARGETS: new-event-baseline needs BENCH_BASELINE=/path/to/doorbell" >&2; exit 1; } ;;
            *) echo "BENCH_TARGETS: unknown target '$name' (new-event, new-event-seeded, new-event-baseline, stripe-duplicate, bare-hummingbird, adnanh-webhook)" >&2; exit 1 ;;
        esac
    done
fi

if [[ " ${TARGETS[*]} " == *" new-event-seeded "* ]]; then
    # The real migrations make the schema; then rows go straight into its tables.
    start "$DIR/seeded" "$DIR/seeded/serve.log" "http://127.0.0.1:18080/hooks/form" "$BIN/doorbell" serve --config doorbell.yml --log-level error
    stop
    echo "seeding $SEEDED_EVENTS events for the seeded ingest target (about 100 s per million)..." >&2
    python3 "$ROOT/scripts/bench.d/seed_events.py" "$DIR/seeded/doorbell.db" "$SEEDED_EVENTS" >"$DIR/seeded/seed.json"
fi

# measure ROUND NAME: one target, fresh process, warm-up, measurement; appends one JSON line.
measure() {
    local round="$1" name="$2" dir url database=""
    case "$name" in
        new-event)
            dir="$DIR/empty"; url="http://127.0.0.1:18080/hooks/form"; database="$dir/doorbell.db"
            rm -f "$dir"/doorbell.db*
            start "$dir" "$dir/serve.log" "$url" "$BIN/doorbell" serve --config doorbell.yml --log-level error ;;
        new-event-baseline)
            dir="$DIR/baseline"; url="http://127.0.0.1:18080/hooks/form"; database="$dir/doorbell.db"
            rm -f "$dir"/doorbell.db*
            start "$dir" "$dir/serve.log" "$url" "$BASELINE" serve --config doorbell.yml --log-level error ;;
        new-event-seeded)
            dir="$DIR/seeded"; url="http://127.0.0.1:18080/hooks/form"; database="$dir/doorbell.db"
            start "$dir" "$dir/serve.log" "$url" "$BIN/doorbell" serve --config doorbell.yml --log-level error ;;
        stripe-duplicate)
            dir="$DIR/stripe"; url="http://127.0.0.1:18080/hooks/stripe"
            start "$dir" "$dir/serve.log" "$url" "$BIN/doorbell" serve --config doorbell.yml --log-level error ;;
        bare-hummingbird)
            dir="$DIR/bare"; url="http://127.0.0.1:18081/hooks/stripe"
            start "$dir" "$dir/bare.log" "$url" "$BIN/doorbell-bench-bare" 18081 ;;
        adnanh-webhook)
            dir="$DIR/webhook"; url="http://127.0.0.1:18082/hooks/stripe"
            start "$dir" "$dir/webhook.log" "$url" webhook -hooks "$dir/hooks.json" -ip 127.0.0.1 -port 18082 ;;
    esac
    local before=0 after=0
    if [ -n "$database" ]; then before="$(form_rows "$database")"; fi
    local warm result rss_kb
    warm="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d2s --timeout 5s -s "$REQUEST" "$url" | grep '^{')"
    result="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_}s" --timeout 5s -s "$REQUEST" "$url" | grep '^{')"
    rss_kb="$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")"
    stop
    if [ -n "$database" ]; then after="$(form_rows "$database")"; fi
    echo "{\"round\": $round, \"name\": \"$name\", \"rss_kb\": $rss_kb, \"stored\": $(( after - before )), \"warm\": $warm, \"wrk\": $result}" >>"$DIR/results.jsonl"
}

echo "ingest: $ROUNDS interleaved rounds, ${SECONDS_}s per target at $CONNECTIONS connections..." >&2
for round in $(seq 1 "$ROUNDS"); do
    order=("${TARGETS[@]}")
    if [ $(( round % 2 )) = 0 ]; then
        order=()
        for (( i = ${#TARGETS[@]} - 1; i >= 0; i-- )); do order+=("${TARGETS[$i]}"); done
    fi
    for name in "${order[@]}"; do
        echo "  round $round: $name" >&2
        measure "$round" "$name"
    done
done

# Anything the doorbell targets logged at level error is printed with the figures.
for target in empty seeded stripe baseline; do
    if [ -s "$DIR/$target/serve.log" ]; then
        echo "doorbell ($target database) logged $(wc -l <"$DIR/$target/serve.log") lines at level error; the first:" >"$DIR/$target/log-note"
        head -5 "$DIR/$target/serve.log" >>"$DIR/$target/log-note"
    fi
done
python3 "$ROOT/scripts/bench.d/ingest_report.py" "$DIR/results.jsonl" "$DIR/summary.json" "$SECONDS_" "$ROUNDS" \
    "$( [ -f "$DIR/seeded/seed.json" ] && echo "$DIR/seeded/seed.json" || echo - )"
cat "$DIR"/*/log-note 2>/dev/null || true
