#!/usr/bin/env python3
"""Waits (at most 60 s) for a drained e2e run of scripts/bench.d/pg.sh and prints one JSON line:
runs completed, runs left, end-to-end events/s from the load's start to the last step completed,
and ingest -> step completed latency percentiles. Reads SQLite directly, PostgreSQL through psql as
the cluster's superuser over its private socket (no password anywhere).
Usage: pg_drain.py STORAGE START CLUSTER_DIR PG_PORT   (STORAGE: sqlite:PATH or the node's postgres:// URL)"""
import json, sqlite3, subprocess, sys, time
from urllib.parse import urlparse

storage, start, cluster, port = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
if storage.startswith("sqlite:"):
    connection = sqlite3.connect(storage[len("sqlite:"):])
    query = lambda sql: connection.execute(sql).fetchall()
else:
    database = urlparse(storage).path.lstrip("/")
    def query(sql):
        out = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-q", "-At", "-F", "\t", "-h", cluster, "-p", port,
                              "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-c", sql],
                             cwd=cluster, check=True, capture_output=True, text=True).stdout
        return [tuple(None if v == "" else float(v) for v in line.split("\t")) for line in out.splitlines()]

while True:
    left = int(query("SELECT COUNT(*) FROM runs WHERE status != 'succeeded'")[0][0])
    if left == 0 or time.time() - start > 60:
        break
    time.sleep(0.2)
latencies = sorted(r[0] for r in query("""SELECT s.completed_at - e.received_at FROM step_results s
                                           JOIN runs r ON r.id = s.run_id JOIN events e ON e.id = r.event_id"""))
last = query("SELECT MAX(completed_at) FROM step_results")[0][0]
done = len(latencies)
pct = lambda q: latencies[min(done - 1, int(q * done))] if latencies else -1
print(json.dumps({"runs_done": done, "left": left, "e2e_rps": done / (last / 1000 - start) if last else 0,
                  "p50_ms": pct(0.5), "p99_ms": pct(0.99)}))
