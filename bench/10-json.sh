#!/bin/sh
# 10-json.sh - JSON decode/encode throughput against lua-cjson, same run.
# make bench exports LUA_CPATH for the freshly built core.
set -eu
exec lua5.4 bench/json_bench.lua "$@"
