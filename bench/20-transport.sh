#!/bin/sh
# 20-transport.sh - the HTTP transport against nginx on 127.0.0.1, next to
# the baselines measured in the same run:
#   c_easy / c_multi    plain libcurl, nothing else (bench/transport/c_loop.c)
#   core_*              instantly.core sessions (bench/transport/lua_rows.lua)
#   luasocket+cjson     socket.http + lua-cjson, what Lua users write today
#   py_requests         /usr/bin/python3 requests.Session + .json()
# Three loads shaped like the API: "small" GET /api/v2/workspaces/current
# (~350 B), "page" GET /api/v2/campaigns (100 campaigns, ~230 KB) and
# "leads" POST /api/v2/leads/add (1000 leads, ~330 KB up). Each row runs
# BENCH_SECONDS (default 1) per repetition, BENCH_REPS (default 3) times in
# turn with the others; the best req/s, the least CPU per request (user +
# system time of the client process in its request loop, start-up excluded)
# and the largest peak RSS (whole process, /usr/bin/time) are kept. The
# ratio to the C baseline is the median over repetitions of row / baseline
# measured in the same repetition. On a shared machine req/s swings with
# the neighbours; CPU per request is the steadier figure, so the targets
# are shown on both.
# nginx runs from a temporary prefix and is stopped at the end. Not a test:
# it reports, it does not fail on a missed target.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# The core under test: $BUILD if given, else the directory `make` put on
# LUA_CPATH (so `make BUILD=x bench` measures x), else build/.
if [ -z "${BUILD:-}" ]; then
    first=${LUA_CPATH:-}
    first=${first%%;*}
    BUILD=build
    if [ -n "$first" ] && [ -f "${first%/?.so}/instantly/core.so" ]; then BUILD=${first%/?.so}; fi
fi
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
LUA=${LUA:-lua5.4}
SECONDS_PER=${BENCH_SECONDS:-1}
REPS=${BENCH_REPS:-3}
INFLIGHT=4
PY=/usr/bin/python3          # Debian's, which has python3-requests
TIME=/usr/bin/time

tmp=$(mktemp -d)
chmod 755 "$tmp"             # nginx workers may run as nobody
nginx_pid=
cleanup() {
    if [ -n "$nginx_pid" ]; then
        kill "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    [ -n "${BENCH_KEEP:-}" ] && echo "kept $tmp" >&2 && return
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

[ -f "$BUILD/instantly/core.so" ] || { echo "20-transport: build first (make BUILD=$BUILD)" >&2; exit 1; }
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$BUILD/?.so;;"

tag=20-transport
. bench/transport/nginx.sh
cat "$tmp/bodies.txt"

# name kind command... (the command gets METHOD URL BODYFILE SECONDS appended,
# plus INFLIGHT for multi rows); written one row per line to $tmp/rows.
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

: > "$tmp/results"
for load in "small GET /api/v2/workspaces/current -" \
            "page GET /api/v2/campaigns -" \
            "leads POST /api/v2/leads/add $tmp/www/leads_body.json"; do
    set -- $load
    w=$1 method=$2 path=$3 bodyfile=$4
    : > "$tmp/raw"
    rep=1
    while [ "$rep" -le "$REPS" ]; do
        while read -r name kind cmd; do
            cmd=$(echo "$cmd" | sed "s|@WORKLOAD@|$w|")
            extra=
            [ "$kind" = multi ] && extra=$INFLIGHT
            # shellcheck disable=SC2086
            if out=$($TIME -f "%M %U %S" -o "$tmp/rss" $cmd "$method" "$base$path" "$bodyfile" "$SECONDS_PER" $extra); then
                echo "$w $name $kind $out $(tail -n 1 "$tmp/rss") $rep" >> "$tmp/raw"
            else
                echo "20-transport: row $name failed on $w" >&2
            fi
        done < "$tmp/rows"
        rep=$((rep + 1))
    done
    $LUA bench/transport/best.lua "$tmp/raw" >> "$tmp/results"
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

echo "transport: nginx $(nginx -v 2>&1 | sed 's|.*/||'), libcurl $($LUA -e 'print(require("instantly.core").curl_version)'), ${SECONDS_PER}s x $REPS per row, $INFLIGHT in flight for multi rows"
$LUA bench/transport/report.lua "$tmp/results" "$tmp/scale" "$newcost"
