#!/usr/bin/env bash
# PostgreSQL phase of scripts/bench, side by side in one run on one throwaway cluster (fsync on):
#   1. ingest: the same wrk load as the ingest section (stripe source: duplicates after the first;
#      hmac source: a new row each) into one node on SQLite and one node on PostgreSQL, same config
#      otherwise (only `storage:` differs); the ratio PostgreSQL/SQLite.
#   2. end to end as in the e2e section (ingest -> one http step -> local sink, drained): SQLite,
#      PostgreSQL with one node, PostgreSQL with two `doorbell serve` nodes on one database (wrk at
#      half the connections on each, at the same time).
#   3. CPU seconds per 1,000 events for each node and for PostgreSQL's own processes, from
#      /proc/<pid>/stat (utime+stime) before and after the load: two cores cannot show scale-out,
#      but CPU per event shows what a second node costs.
# The cluster's URL carries a password: it reaches the nodes through the environment only and is
# never printed.
# Usage: scripts/bench.d/pg.sh BIN WORK SECONDS HMAC_SECRET STRIPE_SECRET REQUEST_LUA
#   or on its own (builds release):  scripts/bench.d/pg.sh --standalone [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" = "--standalone" ]; then
    command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
    BIN="$(scripts/bench.d/build-release.sh)"  # under the shared build lock
    WORK="$(mktemp -d /tmp/doorbell-bench.XXXXXX)"
    SECONDS_="${2:-10}"; HMAC_SECRET="bench-hmac-secret"; STRIPE_SECRET="whsec_bench_secret"
    python3 scripts/bench.d/request.py "$STRIPE_SECRET" "$HMAC_SECRET" "$WORK/request.lua"
    REQUEST="$WORK/request.lua"
    OWN_WORK=1
else
    BIN="$1"; WORK="$2"; SECONDS_="$3"; HMAC_SECRET="$4"; STRIPE_SECRET="$5"; REQUEST="$6"; OWN_WORK=0
fi
DIR="$WORK/pg"
mkdir -p "$DIR"
# The cluster gets its own folder: pg-cluster hands it to the postgres user, who cannot enter WORK.
CLUSTER="$(mktemp -d /tmp/doorbell-bench-pg.XXXXXX)"
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    scripts/pg-cluster stop "$CLUSTER" >/dev/null 2>&1 || true
    rm -rf "$CLUSTER"
    if [ "$OWN_WORK" = 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
ADMIN_URL="$(scripts/pg-cluster start "$CLUSTER" 2>/dev/null)"
PG_PORT="$(cat "$CLUSTER/port")"
PG_BASE="${ADMIN_URL%/*}"   # postgres://doorbell:…@127.0.0.1:port
POSTMASTER="$(head -1 "$CLUSTER/data/postmaster.pid")"
HZ="$(getconf CLK_TCK)"

# psql as the cluster's superuser over its private socket (no password on any command line).
pg_admin() {  # DB SQL
    (cd "$CLUSTER" && runuser -u postgres -- psql -q -At -h "$CLUSTER" -p "$PG_PORT" -U postgres -d "$1" -v ON_ERROR_STOP=1 -c "$2")
}
new_database() { pg_admin postgres "CREATE DATABASE $1 OWNER doorbell" >/dev/null; }

# CPU ticks (utime+stime) of the given processes; gone ones count 0.
ticks() {
    local p
    for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null || true; done | sed 's/^.*) //' | awk '{s += $12 + $13} END {print s + 0}'
}
# PostgreSQL's own CPU: the postmaster and its live children, plus what exited children used
# (their time is added to the postmaster's cutime+cstime when it reaps them).
pg_ticks() {
    local live reaped
    live="$(ticks "$POSTMASTER" $(pgrep -P "$POSTMASTER" || true))"
    reaped="$(sed 's/^.*) //' "/proc/$POSTMASTER/stat" | awk '{print $14 + $15}')"
    echo $(( live + reaped ))
}

# One config for every node; only the storage and the port come from the environment.
cat > "$DIR/node.yml" <<YAML
server: { listen: "127.0.0.1:\${BENCH_PORT}" }
storage: "\${BENCH_STORAGE}"
outbound: { allow_private: ["127.0.0.0/8"] }
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
# The ingest phase's config: the same sources, no automation (as in the ingest section).
cp "$DIR/node.yml" "$DIR/ingest.yml"
cat scripts/bench.d/e2e-automation.yml >>"$DIR/node.yml"

NODE_PIDS=()
start_node() {  # CONFIG PORT STORAGE NAME: starts a node, waits for /healthz, appends its pid
    (cd "$DIR" && BENCH_PORT="$2" BENCH_STORAGE="$3" exec "$BIN/doorbell" serve --config "$1" --log-level error >"$DIR/$4.log" 2>&1) &
    local pid=$!
    for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$2/healthz" && break; sleep 0.05; done
    curl -sf -o /dev/null "http://127.0.0.1:$2/healthz" || { echo "node $4 did not start:" >&2; cat "$DIR/$4.log" >&2; exit 1; }
    NODE_PIDS+=("$pid")
}
stop_nodes() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${NODE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    NODE_PIDS=()
}
# Node logs run at --log-level error: every line is something that went wrong.
log_lines() { cat "$DIR/$1.log" 2>/dev/null | wc -l; }

# ingest NAME STORAGE SOURCE: 2 s warm-up, then SECONDS_ measured, CPU over the measured part.
ingest() {
    local name="$1" storage="$2" source="$3" url="http://127.0.0.1:18090/hooks/$3"
    start_node "$DIR/ingest.yml" 18090 "$storage" "$name"
    wrk -t2 -c32 -d2s -s "$REQUEST" "$url" >/dev/null
    local node0 pg0 node1 pg1 result
    node0="$(ticks "${NODE_PIDS[0]}")"; pg0="$(pg_ticks)"
    result="$(wrk -t2 -c32 -d"${SECONDS_}s" --timeout 5s -s "$REQUEST" "$url" | grep '^{')"
    node1="$(ticks "${NODE_PIDS[0]}")"; pg1="$(pg_ticks)"
    stop_nodes
    echo "{\"name\": \"$name\", \"source\": \"$source\", \"wrk\": $result, \"node_ticks\": [$(( node1 - node0 ))], \"pg_ticks\": $(( pg1 - pg0 )), \"log_lines\": $(log_lines "$name")}" >>"$DIR/ingest.jsonl"
}

# e2e NAME STORAGE NODES: wrk into the hmac source for SECONDS_ (32 connections in all, split over
# the nodes, at the same time), then waits for the runs to drain (at most 60 s).
e2e() {
    local name="$1" storage="$2" nodes="$3" i
    for i in $(seq 1 "$nodes"); do start_node "$DIR/node.yml" $(( 18090 + i )) "$storage" "$name-$i"; done
    local before_nodes=() after_nodes=() pg0 pg1 start
    for i in "${!NODE_PIDS[@]}"; do before_nodes+=("$(ticks "${NODE_PIDS[$i]}")"); done
    pg0="$(pg_ticks)"
    start="$(date +%s.%N)"
    local loads=()
    for i in $(seq 1 "$nodes"); do
        wrk -t$(( 2 / nodes )) -c$(( 32 / nodes )) -d"${SECONDS_}s" --timeout 5s -s "$REQUEST" "http://127.0.0.1:$(( 18090 + i ))/hooks/form" \
            | grep '^{' >"$DIR/$name-wrk-$i.json" &
        loads+=($!)
    done
    wait "${loads[@]}"
    python3 scripts/bench.d/pg_drain.py "$storage" "$start" "$CLUSTER" "$PG_PORT" >"$DIR/$name-drain.json"
    for i in "${!NODE_PIDS[@]}"; do after_nodes+=("$(ticks "${NODE_PIDS[$i]}")"); done
    pg1="$(pg_ticks)"
    stop_nodes
    local node_ticks="" logs=0
    for i in "${!before_nodes[@]}"; do node_ticks+="${node_ticks:+, }$(( after_nodes[i] - before_nodes[i] ))"; done
    for i in $(seq 1 "$nodes"); do logs=$(( logs + $(log_lines "$name-$i") )); done
    local wrks; wrks="$(cat "$DIR/$name"-wrk-*.json | paste -sd, -)"
    echo "{\"name\": \"$name\", \"nodes\": $nodes, \"wrk\": [$wrks], \"drain\": $(cat "$DIR/$name-drain.json"), \"node_ticks\": [$node_ticks], \"pg_ticks\": $(( pg1 - pg0 )), \"log_lines\": $logs}" >>"$DIR/e2e.jsonl"
}

echo "PostgreSQL phase: ingest and end to end, ${SECONDS_}s each..." >&2
: >"$DIR/ingest.jsonl"; : >"$DIR/e2e.jsonl"
for source in stripe form; do
    rm -f "$DIR"/ingest.db*
    ingest "sqlite-$source" "sqlite:ingest.db" "$source"
    new_database "ingest_$source"
    ingest "postgres-$source" "$PG_BASE/ingest_$source?sslmode=disable" "$source"
done
"$BIN/doorbell-bench-bare" 18081 >/dev/null 2>&1 &
SINK=$!
e2e sqlite-1 "sqlite:$DIR/e2e.db" 1
new_database e2e_one
e2e postgres-1 "$PG_BASE/e2e_one?sslmode=disable" 1
new_database e2e_two
e2e postgres-2 "$PG_BASE/e2e_two?sslmode=disable" 2
kill -TERM "$SINK" 2>/dev/null || true

python3 - "$DIR/ingest.jsonl" "$DIR/e2e.jsonl" "$HZ" "$SECONDS_" <<'PY'
import json, sys
ingest = {r["name"]: r for r in map(json.loads, open(sys.argv[1]))}
e2e = {r["name"]: r for r in map(json.loads, open(sys.argv[2]))}
hz, seconds = int(sys.argv[3]), float(sys.argv[4])
per_k = lambda ticks, count: ticks / hz / max(1, count) * 1000  # CPU seconds per 1,000

print()
print(f"PostgreSQL vs SQLite (one cluster, fsync on; wrk 32 connections, {seconds:.0f} s per target, same run):")
print(f"{'ingest':<24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'node CPU s/1k':>14} {'PG CPU s/1k':>12}")
for name, r in ingest.items():
    w = r["wrk"]
    print(f"{name:<24} {w['rps']:>9.0f} {w['p50_us']/1000:>8.2f} {w['p99_us']/1000:>8.2f} {w['non2xx'] + w['socket_errors']:>8}"
          f" {per_k(r['node_ticks'][0], w['requests']):>14.3f} {per_k(r['pg_ticks'], w['requests']) if name.startswith('postgres') else 0:>12.3f}")
for source, label in (("stripe", "stripe (duplicates)"), ("form", "hmac (new rows)")):
    ratio = ingest[f"postgres-{source}"]["wrk"]["rps"] / ingest[f"sqlite-{source}"]["wrk"]["rps"]
    print(f"  ingest {label}: PostgreSQL/SQLite {ratio:.2f}x (target >= 0.5x)")

print()
print(f"{'end to end':<24} {'events/s':>9} {'ingest/s':>9} {'runs':>7} {'left':>6} {'non-2xx':>8} {'p50 ms':>8} {'p99 ms':>8}")
for name, r in e2e.items():
    d = r["drain"]
    ingest_rps = sum(w["rps"] for w in r["wrk"])
    errors = sum(w["non2xx"] + w["socket_errors"] for w in r["wrk"])
    print(f"{name + ' node' + ('s' if r['nodes'] > 1 else ''):<24} {d['e2e_rps']:>9.0f} {ingest_rps:>9.0f} {d['runs_done']:>7} {d['left']:>6} {errors:>8} {d['p50_ms']:>8.0f} {d['p99_ms']:>8.0f}")
one, two, lite = e2e["postgres-1"], e2e["postgres-2"], e2e["sqlite-1"]
print(f"  end to end PostgreSQL/SQLite (one node): {one['drain']['e2e_rps'] / lite['drain']['e2e_rps']:.2f}x;"
      f" two PostgreSQL nodes/one: {two['drain']['e2e_rps'] / one['drain']['e2e_rps']:.2f}x (2 cores: no scale-out expected)")

print()
print(f"CPU seconds per 1,000 events end to end (utime+stime from /proc, before -> after load and drain):")
print(f"{'':<24} {'node 1':>8} {'node 2':>8} {'nodes':>8} {'postgres':>9} {'all':>8}")
for name, r in e2e.items():
    done = r["drain"]["runs_done"]
    nodes = [per_k(t, done) for t in r["node_ticks"]]
    pg = per_k(r["pg_ticks"], done) if name.startswith("postgres") else 0
    cells = "".join(f" {n:>8.3f}" for n in nodes) + " " * 9 * (2 - len(nodes))
    print(f"{name + ' node' + ('s' if r['nodes'] > 1 else ''):<24}{cells} {sum(nodes):>8.3f} {pg:>9.3f} {sum(nodes) + pg:>8.3f}")
cpu = lambda r: sum(r["node_ticks"]) / max(1, r["drain"]["runs_done"])
print(f"  nodes' CPU per event, two nodes/one: {cpu(two) / cpu(one):.2f}x (target <= 1.10x);"
      f" with PostgreSQL's: {(sum(two['node_ticks']) + two['pg_ticks']) / max(1, two['drain']['runs_done']) / ((sum(one['node_ticks']) + one['pg_ticks']) / max(1, one['drain']['runs_done'])):.2f}x")
logs = {n: r["log_lines"] for n, r in list(ingest.items()) + list(e2e.items()) if r["log_lines"]}
if logs:
    print(f"  error log lines: " + ", ".join(f"{n} {c}" for n, c in logs.items()))
PY
for log in "$DIR"/*.log; do
    # Masked in case a message ever carries the URL (the password must not reach the output).
    if [ -s "$log" ]; then echo "--- $(basename "$log") (first lines)"; head -5 "$log" | cut -c1-300 | sed "s/$(cat "$CLUSTER/password")/***/g"; fi
done
