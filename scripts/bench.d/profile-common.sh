# Shared by the profile scripts (sourced; they set SECONDS_, OUT and CALLERS first): checks the tools,
# builds release (BIN), makes a work folder (WORK) and OUT, and records and reports the server's profile.

for tool in perf wrk; do command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install linux-perf wrk)" >&2; exit 1; }; done
BIN="$(scripts/bench.d/build-release.sh)"
WORK="$(mktemp -d /tmp/doorbell-profile.XXXXXX)"
mkdir -p "$OUT"

# perf_attach MODE PID: perf on PID for SECONDS_. MODE self: self time only (costs the server little);
# callers: DWARF call graphs, at a lower rate. Writes OUT/perf-MODE.data.
perf_attach() {
    if [ "$1" = self ]; then
        perf record -F 999 -p "$2" -o "$OUT/perf-self.data" -- sleep "$SECONDS_" 2>"$OUT/perf-record.log"
    else
        perf record -F 299 --call-graph dwarf,16384 -p "$2" -o "$OUT/perf-callers.data" -- sleep "$SECONDS_" 2>>"$OUT/perf-record.log"
    fi
}

# report_self: OUT/self.txt (self time per symbol) and OUT/groups.txt (summed by area).
report_self() {
    perf report -i "$OUT/perf-self.data" --no-children --sort dso,symbol --stdio --percent-limit 0.05 2>/dev/null \
        | swift demangle --simplified >"$OUT/self.txt"
    python3 scripts/bench.d/profile_groups.py "$OUT/self.txt" >"$OUT/groups.txt"
}
