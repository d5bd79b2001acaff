#!/bin/sh
# bench.sh - runs every benchmark in bench/ in name order. Each prints its
# own table with ratios against a baseline measured in the same run; at
# the end bench/summary.lua gathers the rows of issue 14's table (the
# "ISSUE14|..." lines the benches print, and the JSON ratios) into one
# table marking each target met or missed. BENCH_ONLY="20 40" runs only
# the benches whose names start with those prefixes.
set -eu
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT INT TERM
for b in bench/*.sh; do
    [ -f "$b" ] || continue
    if [ -n "${BENCH_ONLY:-}" ]; then
        want=0
        for p in $BENCH_ONLY; do
            case "$(basename "$b")" in "$p"*) want=1 ;; esac
        done
        [ "$want" = 1 ] || continue
    fi
    echo "== $b"
    # the benchmark's status survives the pipe through a file
    { sh "$b" || echo "BENCHFAIL|$b"; } 2>&1 | tee -a "$log" | grep -v '^ISSUE14|\|^BENCHFAIL|' || true
    grep -q "^BENCHFAIL|$b" "$log" && status=1
done
echo "== summary"
lua5.4 bench/summary.lua "$log"
exit $status
