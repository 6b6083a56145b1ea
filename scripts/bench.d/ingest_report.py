#!/usr/bin/env python3
"""Prints the ingest phase of scripts/bench (scripts/bench.d/ingest.sh): per target the median
req/s, p50 and p99 over the rounds with their spread (min-max), non-2xx answers and peak RSS; then
the targets of issue 13, each a ratio taken within one round (side by side) and summarised as the
median with its min-max, marked met / not met on the median (RSS on the largest figure of any round).
Writes the medians as JSON for the later phases (the end to end ratio uses the new-event median).
Usage: ingest_report.py RESULTS_JSONL SUMMARY_JSON SECONDS ROUNDS SEED_JSON|-
"""
import json
import statistics
import sys

results, summary_path, seconds, rounds, seed_path = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
rows = [json.loads(line) for line in open(results)]
names = list(dict.fromkeys(r["name"] for r in rows))
by = {(r["round"], r["name"]): r for r in rows}
rounds_seen = sorted({r["round"] for r in rows})


def series(name, value):
    return [value(by[(n, name)]) for n in rounds_seen if (n, name) in by]


def spread(values, digits, unit=""):
    return f"{statistics.median(values):.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def ratios(top, bottom, value):
    """Per round top/bottom, for the rounds that measured both."""
    return [value(by[(n, top)]) / value(by[(n, bottom)]) for n in rounds_seen
            if (n, top) in by and (n, bottom) in by and value(by[(n, bottom)]) > 0]


rps = lambda r: r["wrk"]["rps"]
p50 = lambda r: r["wrk"]["p50_us"] / 1000
p99 = lambda r: r["wrk"]["p99_us"] / 1000
rss = lambda r: r["rss_kb"] / 1024

print(f"ingest: {len(rounds_seen)} interleaved rounds of {seconds} s per target, wrk 32 connections "
      f"(median, and min-max over the rounds; errors = non-2xx answers + socket errors)")
print(f"{'target':<18} {'req/s':>22} {'p50 ms':>20} {'p99 ms':>22} {'errors':>8} {'peak RSS MB':>20}")
for name in names:
    errors = sum(r["wrk"]["non2xx"] + r["wrk"]["socket_errors"] for r in series(name, lambda r: r))
    print(f"{name:<18} {spread(series(name, rps), 0):>22} {spread(series(name, p50), 2):>20} "
          f"{spread(series(name, p99), 2):>22} {errors:>8} {spread(series(name, rss), 1):>20}")

# Each round's figure, in round order: a slow first round (a cold start) shows here.
print("req/s by round: " + "; ".join(f"{name} " + " / ".join(f"{v:.0f}" for v in series(name, rps)) for name in names))

# Every 2xx of a new-event target must have its row: stored rows (counted in the database before
# and after each round) are at least the 2xx answers wrk saw, warm-up included.
for name in ("new-event", "new-event-seeded", "new-event-baseline"):
    if name not in names:
        continue
    answered = sum(r["warm"]["requests"] - r["warm"]["non2xx"] + r["wrk"]["requests"] - r["wrk"]["non2xx"]
                   for r in series(name, lambda r: r))
    stored = sum(series(name, lambda r: r["stored"]))
    verdict = "every 2xx has its row" if stored >= answered else "FEWER ROWS THAN 2xx ANSWERS"
    print(f"{name}: {stored} events stored for {answered} 2xx answers over the rounds, warm-up included ({verdict})")
if seed_path != "-":
    seed = json.load(open(seed_path))
    print(f"new-event-seeded: the database held {seed['events']:,} seeded events (plus {seed['runs']:,} runs, "
          f"{seed['deliveries']:,} deliveries; seeded in {seed['generate_seconds'] + seed['insert_seconds']:.0f} s)")

print()
print("targets (issue 13); ratios are taken within each round, then median (min-max):")


def target(label, values, digits, unit, goal, met):
    if not values:
        print(f"  {label:<36} {'not measured':<26} {goal}")
        return
    verdict = "met" if met(statistics.median(values)) else "not met"
    print(f"  {label:<36} {spread(values, digits, unit):<26} {goal:<16} {verdict}")


target("new-event / bare Hummingbird", ratios("new-event", "bare-hummingbird", rps), 2, "x", "target >= 0.8x", lambda v: v >= 0.8)
target("new-event / adnanh/webhook", ratios("new-event", "adnanh-webhook", rps), 2, "x", "target >= 3x", lambda v: v >= 3)
target("new-event p99 at 32 connections", series("new-event", p99), 2, " ms", "target <= 5 ms", lambda v: v <= 5)
if "new-event-seeded" in names:
    seeded = f"{json.load(open(seed_path))['events'] / 1e6:g}M" if seed_path != "-" else "seeded"
    target(f"new-event seeded ({seeded}) / empty", ratios("new-event-seeded", "new-event", rps), 2, "x", "target >= 0.9x", lambda v: v >= 0.9)
    target("new-event seeded p99", series("new-event-seeded", p99), 2, " ms", "target <= 5 ms", lambda v: v <= 5)
if {"new-event", "new-event-baseline"} <= set(names):
    print("  before/after (BENCH_BASELINE): new-event / new-event-baseline "
          f"{spread(ratios('new-event', 'new-event-baseline', rps), 2, 'x')} req/s, p99 "
          f"{spread(series('new-event', p99), 2, ' ms')} against {spread(series('new-event-baseline', p99), 2, ' ms')}")
doorbell = [name for name in names if name.startswith(("new-event", "stripe"))]
peak = [rss(r) for name in doorbell for r in series(name, lambda r: r)]
if peak:
    verdict = "met" if max(peak) <= 100 else "not met"
    print(f"  {'peak RSS, every doorbell target':<36} {f'{max(peak):.1f} MB (largest, any round)':<26} {'target <= 100 MB':<16} {verdict}")
if {"stripe-duplicate", "bare-hummingbird", "adnanh-webhook"} <= set(names):
    print("  also: stripe-duplicate / bare Hummingbird "
          f"{spread(ratios('stripe-duplicate', 'bare-hummingbird', rps), 2, 'x')}, "
          f"stripe-duplicate / adnanh/webhook {spread(ratios('stripe-duplicate', 'adnanh-webhook', rps), 2, 'x')}")

json.dump({name: {"rps": statistics.median(series(name, rps)), "p50_ms": statistics.median(series(name, p50)),
                  "p99_ms": statistics.median(series(name, p99)), "rss_mb": max(series(name, rss))} for name in names},
          open(summary_path, "w"))
