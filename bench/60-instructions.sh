#!/bin/sh
# 60-instructions.sh - issue 14's rows once more, counted in instructions
# (valgrind's callgrind) instead of timed. Timings on a shared machine
# move with its load and with where the collector's work falls (see
# docs/benchmarks.md, eighth round); an instruction count hardly moves
# (for the same code and inputs only the number of turns of the wait loop
# and where collections fall vary: 1-4 % between runs here). It is
# not the target (the
# targets are req/s, in bench/20-transport.sh) but the figure that shows
# whether a change moved anything: instructions left out of a loop are not
# the time it saves (cache misses are not counted), but a count that did
# not go down did not save time either.
#
# For each row, the instructions of N1 and of N2 requests (or calls) in one
# process each: per request = (I(N2) - I(N1)) / (N2 - N1), which leaves out
# start-up and module loading. Ratio = baseline / SDK, so that higher is
# better as in the timed tables. Rows, against nginx on 127.0.0.1 (the
# bodies of bench/20-transport.sh):
#   small GET, sequential     c_easy       / sdk_client  (client.workspaces:get())
#   small GET, 4 in flight    c_multi, 4   / sdk_gather  (client:gather, 4)
#   page of 100 campaigns     luasocket+cjson / sdk_client (campaigns:list)
#   POST 1000 leads           luasocket+cjson / sdk_client (leads:add_many)
#   JSON decode / encode      lua-cjson    / core.json_decode / json_encode
#                             (bench/json_bench.lua --run)
# Without valgrind it says so and stops (exit 0). BENCH_INSTR_SCALE=k
# multiplies the request counts (default 1: about 70 s in all here).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if ! command -v valgrind >/dev/null 2>&1; then
    echo "60-instructions: valgrind not found, skipped (apt install valgrind)"
    exit 0
fi
. bench/transport/core_build.sh
LUA=${LUA:-lua5.4}
K=${BENCH_INSTR_SCALE:-1}
[ -f "$BUILD/instantly/core.so" ] || { echo "60-instructions: build first (make BUILD=$BUILD)" >&2; exit 1; }
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$BUILD/?.so;;"

tmp=$(mktemp -d)
chmod 755 "$tmp"             # nginx workers may run as nobody
nginx_pid=
cleanup() {
    if [ -n "$nginx_pid" ]; then
        kill "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' HUP TERM

tag=60-instructions
. bench/transport/nginx.sh

# instr FILE -> the total callgrind counted
instr() {
    sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$1" | head -n 1
}
# per N1 N2 KIND ARGS... -> instructions a request. KIND "c": ARGS is a
# c_loop command taking "nCOUNT" where @N@ stands; "lua": the arguments of
# a lua_rows.lua row in slice mode ("serve" among them), told "n COUNT" on
# its input; "json": json_bench.lua --run with the count appended.
per() {
    n1=$1 n2=$2 kind=$3
    shift 3
    for n in "$n1" "$n2"; do
        out="$tmp/cg.$n"
        case "$kind" in
            c) cmd=$(echo "$*" | sed "s/@N@/n$n/")
               # shellcheck disable=SC2086
               valgrind --tool=callgrind --callgrind-out-file="$out" $cmd </dev/null >/dev/null 2>"$tmp/vg.log" ;;
            lua) printf 'n %s\nq\n' "$n" |
               valgrind --tool=callgrind --callgrind-out-file="$out" "$LUA" bench/transport/lua_rows.lua "$@" \
                   >/dev/null 2>"$tmp/vg.log" ;;
            json) valgrind --tool=callgrind --callgrind-out-file="$out" "$LUA" bench/json_bench.lua --run "$@" "$n" \
                   </dev/null >/dev/null 2>"$tmp/vg.log" ;;
        esac || { echo "60-instructions: a $kind row failed: $*" >&2; cat "$tmp/vg.log" >&2; exit 1; }
    done
    echo "$(instr "$tmp/cg.$n1") $(instr "$tmp/cg.$n2") $n1 $n2" |
        awk '{ printf "%.0f", ($2 - $1) / ($4 - $3) }'
}

small="$base/api/v2/workspaces/current"
page="$base/api/v2/campaigns"
leads="$base/api/v2/leads/add"
body="$tmp/www/leads_body.json"

row() { # workload baseline_name baseline sdk_name sdk
    awk -v w="$1" -v bn="$2" -v b="$3" -v sn="$4" -v s="$5" 'BEGIN {
        f = "%.1f k"; bs = sprintf(f, b / 1000); ss = sprintf(f, s / 1000)
        if (b >= 1e6) bs = sprintf("%.2f M", b / 1e6)
        if (s >= 1e6) ss = sprintf("%.2f M", s / 1e6)
        printf "%-30s %-17s %10s   %-13s %10s   %5.2fx\n", w, bn, bs, sn, ss, b / s }'
}

echo "instructions a request or call (callgrind, hardly moved by the load; ratio = baseline / SDK)"
printf '%-30s %-17s %10s   %-13s %10s   %6s\n' workload baseline instr SDK instr ratio
row "small GET, sequential" c_easy "$(per $((20 * K)) $((220 * K)) c "$tmp/c_loop easy GET $small - @N@")" \
    sdk_client "$(per $((20 * K)) $((220 * K)) lua sdk_client small GET "$small" - serve)"
row "small GET, 4 in flight" c_multi "$(per $((20 * K)) $((220 * K)) c "$tmp/c_loop multi GET $small - @N@ 4")" \
    sdk_gather "$(per $((20 * K)) $((220 * K)) lua sdk_gather small GET "$small" - serve 4)"
row "page of 100 campaigns" luasocket+cjson "$(per $((4 * K)) $((24 * K)) lua luasocket+cjson page GET "$page" - serve)" \
    sdk_client "$(per $((4 * K)) $((24 * K)) lua sdk_client page GET "$page" - serve)"
row "POST 1000 leads" luasocket+cjson "$(per $((2 * K)) $((12 * K)) lua luasocket+cjson leads POST "$leads" "$body" serve)" \
    sdk_client "$(per $((2 * K)) $((12 * K)) lua sdk_client leads POST "$leads" "$body" serve)"
row "JSON decode, 100-campaign page" lua-cjson "$(per $((2 * K)) $((12 * K)) json decode cjson)" \
    json_decode "$(per $((2 * K)) $((12 * K)) json decode ours)"
row "JSON encode, 1000-lead body" lua-cjson "$(per $((2 * K)) $((12 * K)) json encode cjson)" \
    json_encode "$(per $((2 * K)) $((12 * K)) json encode ours)"
