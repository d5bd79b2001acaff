#!/bin/sh
# bench.sh - runs every benchmark in bench/ in name order. Each prints its
# own table with ratios against a baseline measured in the same run.
set -eu
status=0
for b in bench/*.sh; do
    [ -f "$b" ] || continue
    echo "== $b"
    sh "$b" || status=1
done
exit $status
