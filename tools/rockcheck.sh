#!/bin/sh
# rockcheck.sh - prove the rock tells the truth. Builds the rockspec offline
# from a copy of the source (the checkout is left as it was: no
# instantly/core.so, no csrc/*.o) into an empty tree, then, with LUA_PATH and
# LUA_CPATH restricted to that tree plus the files of the rock's *declared*
# dependencies (taken from their Debian packages), requires every module the
# rock installs and starts both commands it installs. Any module that needs
# something undeclared fails here with "module 'x' not found".
#   sh tools/rockcheck.sh [ROCKSPEC]   (default rockspec/instantly-scm-1.rockspec)
set -eu
spec=${1:-rockspec/instantly-scm-1.rockspec}
case $spec in /*) ;; *) spec=$(pwd)/$spec ;; esac
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
tree=$work/tree
deps=$work/deps
src=$work/src
mkdir -p "$tree" "$deps/share" "$deps/lib" "$src"

# A copy of the tracked (and new, not ignored) files: luarocks builds in
# the source directory.
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src" 2>/dev/null ||
    { echo "rockcheck: cannot copy the source tree" >&2; exit 1; }

# Declared dependencies -> the Debian package that provides them here.
declared=$(SPEC=$spec lua5.4 -e '
  local env = {}
  assert(loadfile(os.getenv("SPEC"), "t", env))()
  for _, d in ipairs(env.dependencies or {}) do
    local name = d:match("^%s*([%w_%-]+)")
    if name ~= "lua" then print(name) end
  end')
for rock in $declared; do
    case $rock in
        luasocket) pkg=lua-socket ;;
        argparse) pkg=lua-argparse ;;
        *) echo "rockcheck: no Debian package known for dependency '$rock' (add it here)" >&2; exit 1 ;;
    esac
    dpkg-query -W "$pkg" >/dev/null 2>&1 || { echo "rockcheck: $pkg ($rock) is not installed" >&2; exit 1; }
    for f in $(dpkg -L "$pkg"); do
        case $f in
            /usr/share/lua/5.4/*.lua) rel=${f#/usr/share/lua/5.4/}; d=$deps/share ;;
            /usr/lib/*/lua/5.4/*.so) rel=${f#/usr/lib/*/lua/5.4/}; d=$deps/lib ;;
            *) continue ;;
        esac
        mkdir -p "$d/$(dirname "$rel")"
        ln -s "$f" "$d/$rel"
    done
done

(cd "$src" && luarocks --lua-version 5.4 make "$spec" --tree "$tree" --deps-mode=none) \
    >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; echo "rockcheck: luarocks make failed" >&2; exit 1; }

LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;$deps/share/?.lua;$deps/share/?/init.lua"
LUA_CPATH="$tree/lib/lua/5.4/?.so;$deps/lib/?.so"
export LUA_PATH LUA_CPATH
cd "$work"

# Every module the rockspec installs, each in a fresh state.
modules=$(SPEC=$spec lua5.4 -e '
  local env = {}
  assert(loadfile(os.getenv("SPEC"), "t", env))()
  local names = {}
  for name in pairs(env.build.modules) do names[#names + 1] = name end
  table.sort(names)
  print(table.concat(names, "\n"))')
failed=0
n=0
for m in $modules; do
    n=$((n + 1))
    if ! out=$(lua5.4 -e "require '$m'" 2>&1); then
        echo "rockcheck: $m does not load from the installed tree:" >&2
        echo "$out" | sed -n '1,3p' >&2
        failed=1
    fi
done
[ $failed = 0 ] || exit 1
core=$(lua5.4 -e 'local c = require "instantly.core"; io.write(c.VERSION, ", libcurl ", c.curl_version)')
echo "rockcheck: $n installed modules load with only the declared dependencies (core $core)"

# The installed commands, through luarocks' wrappers.
"$tree/bin/instantly" --help >"$work/out" 2>&1 || { cat "$work/out" >&2; echo "rockcheck: installed instantly fails" >&2; exit 1; }
grep -q '^Usage: instantly' "$work/out" || { cat "$work/out" >&2; exit 1; }
lua5.4 -e '
  local mock = require "instantly.mock"
  local srv = assert(mock.start{ rate_limits = false })
  local c = require("instantly").new{ api_key = srv.api_key, base_url = srv.url }
  local ws, err = c.workspaces:get()
  srv:stop()
  assert(ws, tostring(err))
  print("rockcheck: installed instantly-mock serves the installed client (workspace " .. ws.id .. ")")
'
