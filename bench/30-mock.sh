#!/bin/sh
# 30-mock.sh - requests per second served by instantly-mock (bin/instantly-mock),
# on one keep-alive connection and with 8 in flight, next to the mock's bare
# HTTP layer measured in the same run. make bench exports LUA_CPATH for the
# freshly built core; BUILD=dir picks another build folder.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
[ -f "$BUILD/instantly/core.so" ] || { echo "30-mock: build first (make BUILD=$BUILD)" >&2; exit 1; }
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$ROOT/$BUILD/?.so;;"
exec lua5.4 bench/mock/bench.lua "$@"
