#!/bin/sh
# rockcheck.sh - prove the rockspec installs offline and the module loads
# from the installed tree, away from the source checkout.
set -eu
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
luarocks --lua-version 5.4 make rockspec/instantly-scm-1.rockspec \
    --tree "$tree" --deps-mode=none >"$tree/.log" 2>&1 || { cat "$tree/.log" >&2; exit 1; }
cd "$tree"
LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua" \
LUA_CPATH="$tree/lib/lua/5.4/?.so" \
lua5.4 -e '
  local core = require "instantly.core"
  assert(core.VERSION, "core has no VERSION")
  local ok, inst = pcall(require, "instantly")
  if not ok and not tostring(inst):match("module .instantly. not found") then error(inst) end
  print("rockcheck: installed rock loads (core " .. core.VERSION .. ", libcurl " .. core.curl_version .. ")")
'
