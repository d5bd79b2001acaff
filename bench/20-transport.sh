#!/bin/sh
# 20-transport.sh - the HTTP transport against nginx on 127.0.0.1, next to
# the baselines measured in the same run:
#   c_easy / c_multi    plain libcurl, nothing else (bench/transport/c_loop.c)
#   core_*              instantly.core sessions (bench/transport/lua_rows.lua)
#   luasocket+cjson     socket.http + lua-cjson, what Lua users write today
#   py_requests         /usr/bin/python3 requests.Session + .json()
# Three loads shaped like the API: "small" GET /api/v2/workspaces/current
# (~350 B), "page" GET /api/v2/campaigns (100 campaigns, ~230 KB) and
# "leads" POST /api/v2/leads/add (1000 leads, ~330 KB up).
#
# Lockstep: this machine's CPU speed drifts by up to 2x, and fast: the CPU
# per request of one row measured in back-to-back 0.05 s slices correlates
# 0.92 with itself 0.1 s later, 0.71 after 0.5 s, 0.17 after 2.5 s. Rows
# measured one after the other are not comparable, so for each load every
# row is started once as a long-lived process (start-up, module loading and
# connection set-up stay out of the figures) and bench/transport/lockstep.c
# drives them in rounds: one warm-up slice each, then in every round each
# row runs one slice of BENCH_SLICE seconds (default 0.05, so a round of the
# nine rows lasts ~0.5 s), in an order shuffled afresh each round. A row's
# ratio to its baseline (c_easy for sequential rows, c_multi for 4 in
# flight) is taken per round, from the two slices of that round, by req/s
# and by CPU per request (user + system time of the client in its loop);
# report.lua prints the median over the rounds, the interquartile range,
# and for each issue-14 target how many rounds met it. The verdict is the
# median req/s ratio; the CPU ratio stands next to it.
# Peak RSS is the whole row process's (wait4 when it exits).
#   BENCH_SECONDS x BENCH_REPS  seconds each row is measured per load
#                               (default 1 x 3), cut into slices:
#   BENCH_ROUNDS                rounds (default BENCH_SECONDS x BENCH_REPS /
#                               BENCH_SLICE, i.e. 60)
#   BENCH_SLICE                 seconds per slice (default 0.05)
#   BENCH_WARM                  requests each row makes, not counted, right
#                               before each of its slices (default 2): the
#                               other rows' slices took the caches meanwhile
#   BENCH_TIMEOUT               a row silent for a slice + this (default 30 s)
#                               is killed and left out
# The scaling rows (page size, concurrency) still run once each, one-shot,
# BENCH_SECONDS apiece. nginx runs from a temporary prefix and every process
# is stopped at the end, also on failure or Ctrl-C. Not a test: it reports,
# it does not fail on a missed target.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# The core under test (bench/transport/core_build.sh)
. bench/transport/core_build.sh
LUA=${LUA:-lua5.4}
SECONDS_PER=${BENCH_SECONDS:-1}
REPS=${BENCH_REPS:-3}
SLICE=${BENCH_SLICE:-0.05}
ROUNDS=${BENCH_ROUNDS:-}
[ -n "$ROUNDS" ] || ROUNDS=$(awk -v s="$SECONDS_PER" -v r="$REPS" -v l="$SLICE" \
    'BEGIN { n = int(s * r / l + 0.5); print (n < 1 ? 1 : n) }')
TIMEOUT=${BENCH_TIMEOUT:-30}
WARM=${BENCH_WARM:-2}
INFLIGHT=4
PY=/usr/bin/python3          # Debian's, which has python3-requests
TIME=/usr/bin/time

tmp=$(mktemp -d)
chmod 755 "$tmp"             # nginx workers may run as nobody
nginx_pid=
driver_pid=
cleanup() {
    # the driver kills its rows when it gets TERM
    if [ -n "$driver_pid" ]; then
        kill "$driver_pid" 2>/dev/null || true
        wait "$driver_pid" 2>/dev/null || true
    fi
    if [ -n "$nginx_pid" ]; then
        kill "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    [ -n "${BENCH_KEEP:-}" ] && echo "kept $tmp" >&2 && return
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' HUP TERM

[ -f "$BUILD/instantly/core.so" ] || { echo "20-transport: build first (make BUILD=$BUILD)" >&2; exit 1; }
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$BUILD/?.so;;"

tag=20-transport
. bench/transport/nginx.sh
cat "$tmp/bodies.txt"

cc -O2 -o "$tmp/lockstep" bench/transport/lockstep.c

# "name kind command..." one row per line to $tmp/rows; each command gets
# "METHOD URL BODYFILE serve" appended (slice mode), plus INFLIGHT for
# multi rows, and @WORKLOAD@ replaced by the load's name.
{
    echo "c_easy seq $tmp/c_loop easy"
    echo "c_multi multi $tmp/c_loop multi"
    $LUA bench/transport/lua_rows.lua --list | while read -r name kind avail; do
        case "$avail" in
            ok) echo "$name $kind $LUA bench/transport/lua_rows.lua $name @WORKLOAD@" ;;
            *) echo "20-transport: row $name ${avail#skip:}" >&2 ;;
        esac
    done
    if $PY -c 'import requests' 2>/dev/null; then
        echo "py_requests seq $PY bench/transport/py_requests.py"
    else
        echo "20-transport: row py_requests skipped: $PY has no requests module" >&2
    fi
} > "$tmp/rows"

# Lines "WORKLOAD row|slice|rss|fail ..." (lockstep.c's output, per load).
: > "$tmp/slices"
for load in "small GET /api/v2/workspaces/current -" \
            "page GET /api/v2/campaigns -" \
            "leads POST /api/v2/leads/add $tmp/www/leads_body.json"; do
    set -- $load
    w=$1 method=$2 path=$3 bodyfile=$4
    while read -r name kind cmd; do
        extra=
        [ "$kind" = multi ] && extra=" $INFLIGHT"
        echo "$name $kind $(echo "$cmd" | sed "s|@WORKLOAD@|$w|") $method $base$path $bodyfile serve$extra"
    done < "$tmp/rows" > "$tmp/rows.$w"
    # in the background, so that a signal reaches the trap at once
    "$tmp/lockstep" "$tmp/rows.$w" "$ROUNDS" "$SLICE" "$TIMEOUT" "$WARM" > "$tmp/raw.$w" &
    driver_pid=$!
    status=0
    wait "$driver_pid" || status=$?
    driver_pid=
    [ "$status" = 0 ] || echo "20-transport: the driver failed on $w (status $status)" >&2
    sed "s|^|$w |" "$tmp/raw.$w" >> "$tmp/slices"
done

# Scaling, one repetition each: page size (the SDK fetching and decoding a
# page of N campaigns, picked by an x-bench-page header), concurrency (the SDK through client:gather against
# the C multi loop at the same number in flight), and what a client costs
# to make. Lines: "KIND PARAM ROW REQUESTS SECONDS CPU_S RSS_KB".
: > "$tmp/scale"
run_scale() { # kind param name cmd...
    kind=$1 param=$2 name=$3
    shift 3
    if out=$($TIME -f "%M" -o "$tmp/rss" "$@"); then
        echo "$kind $param $name $out $(tail -n 1 "$tmp/rss")" >> "$tmp/scale"
    else
        echo "20-transport: scaling row $name $param failed" >&2
    fi
}
for n in 10 100 1000; do
    run_scale page "$n" sdk_client $LUA bench/transport/lua_rows.lua sdk_client "page$n" GET \
        "$base/api/v2/campaigns" - "$SECONDS_PER"
done
for c in 1 2 4 8 16; do
    run_scale conc "$c" c_multi "$tmp/c_loop" multi GET "$base/api/v2/workspaces/current" - "$SECONDS_PER" "$c"
    run_scale conc "$c" sdk_gather $LUA bench/transport/lua_rows.lua sdk_gather small GET \
        "$base/api/v2/workspaces/current" - "$SECONDS_PER" "$c"
done
newcost=$($LUA bench/transport/new_cost.lua)

echo "transport: nginx $(nginx -v 2>&1 | sed 's|.*/||'), libcurl $($LUA -e 'print(require("instantly.core").curl_version)'), lockstep: $ROUNDS rounds of one ${SLICE}s slice per row after $WARM uncounted requests, $INFLIGHT in flight for multi rows"
$LUA bench/transport/report.lua "$tmp/slices" "$tmp/scale" "$newcost"
