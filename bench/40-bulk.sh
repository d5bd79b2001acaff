#!/bin/sh
# 40-bulk.sh - bulk lead workflows: CSV parse MB/s, importing 100,000 leads
# from CSV into the mock at concurrency 1, 4 and 8, peak RSS of that import
# against a 1,000-row one, and exporting them back (CSV and JSONL).
# See bench/bulk/bench.lua. make bench exports LUA_CPATH for the freshly
# built core; BUILD=dir picks another build folder, BENCH_ROWS the size.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
[ -f "$BUILD/instantly/core.so" ] || { echo "40-bulk: build first (make BUILD=$BUILD)" >&2; exit 1; }
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$ROOT/$BUILD/?.so;;"
exec lua5.4 bench/bulk/bench.lua "$@"
