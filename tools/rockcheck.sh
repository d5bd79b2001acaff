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
# instantly-mock from the installed tree: mock.start finds luarocks' bin
# wrapper; LuaSocket comes from the system tree (hence the trailing ;;).
LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" \
LUA_CPATH="$tree/lib/lua/5.4/?.so;;" \
lua5.4 -e '
  local mock = require "instantly.mock"
  local srv = assert(mock.start{ rate_limits = false })
  local c = require("instantly.mock.client").new(srv.url, { api_key = srv.api_key })
  local status = c:request("GET", "/workspaces/current")
  c:close()
  srv:stop()
  assert(status == 200, "installed instantly-mock answered " .. tostring(status))
  print("rockcheck: installed instantly-mock serves")
'
