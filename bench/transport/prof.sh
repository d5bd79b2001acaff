#!/bin/sh
# prof.sh - instructions per small GET (GET /api/v2/workspaces/current,
# ~350 B, nginx on 127.0.0.1) for each layer, under callgrind:
#   per request = (I(N2 requests) - I(N1 requests)) / (N2 - N1)
# which leaves out start-up. Rows: c_easy and c_multi4 (plain libcurl,
# bench/transport/c_loop.c), core_request, core_raw, core_take4,
# core_take4_raw, core_poll4, sdk_client and sdk_gather4
# (bench/transport/prof_driver.lua). Instruction counts do not depend on the neighbours, so this is the figure to compare
# before and after a change; BUILD=dir measures the core in dir.
#   sh bench/transport/prof.sh [ROW...]     (default: every row but core_poll4)
#   PROF_N1=20 PROF_N2=520                 request counts
#   PROF_KEEP=1                            keep the callgrind files (printed)
#   PROF_LUA=path                          the interpreter for the Lua rows (one
#                                          with symbols makes the profile readable)
#   PROF_PAGE=1                            the c_* and core_* rows fetch a page of
#                                          100 campaigns (236 KB) instead
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
LUA=${LUA:-lua5.4}
N1=${PROF_N1:-20}
N2=${PROF_N2:-520}
ROWS=${*:-c_easy c_multi4 core_request core_raw core_take4 sdk_client sdk_gather4}
if [ -n "${PROF_PAGE:-}" ]; then PROF_PATH=/api/v2/campaigns; else PROF_PATH=/api/v2/workspaces/current; fi
export PROF_PATH

tmp=$(mktemp -d)
chmod 755 "$tmp"
nginx_pid=
cleanup() {
    if [ -n "$nginx_pid" ]; then
        kill "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    if [ -n "${PROF_KEEP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT INT TERM

[ -f "$BUILD/instantly/core.so" ] || { echo "prof: build first (make)" >&2; exit 1; }
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$BUILD/?.so;;"

tag=prof
. bench/transport/nginx.sh

total() { # file -> total instructions
    sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$1" | head -n 1
}
run() { # row count -> callgrind file
    out="$tmp/cg.$1.$2"
    case "$1" in
        c_easy) cmd="$tmp/c_loop easy GET $base$PROF_PATH - n$2" ;;
        c_multi4) cmd="$tmp/c_loop multi GET $base$PROF_PATH - n$2 4" ;;
        *) cmd="${PROF_LUA:-$LUA} bench/transport/prof_driver.lua $1 $2 $base" ;;
    esac
    # shellcheck disable=SC2086
    valgrind --tool=callgrind --callgrind-out-file="$out" $cmd >/dev/null 2>"$tmp/vg.log" ||
        { cat "$tmp/vg.log" >&2; exit 1; }
    echo "$out"
}
printf '%-14s %12s\n' row "instr/req"
for row in $ROWS; do
    a=$(total "$(run "$row" "$N1")")
    b=$(total "$(run "$row" "$N2")")
    printf '%-14s %12.1f\n' "$row" "$(echo "($b - $a) / ($N2 - $N1)" | bc -l)"
done
