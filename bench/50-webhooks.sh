#!/bin/sh
# 50-webhooks.sh - end-to-end webhook latency on the mock (control-plane
# action -> on_event in a receiver), median of 100, next to the bare
# control-plane round trip measured in the same run (bench/webhooks.lua).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
[ -f "$BUILD/instantly/core.so" ] || { echo "50-webhooks: build first (make BUILD=$BUILD)" >&2; exit 1; }
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$ROOT/$BUILD/?.so;;"
exec lua5.4 bench/webhooks.lua "${WEBHOOK_BENCH_N:-100}"
