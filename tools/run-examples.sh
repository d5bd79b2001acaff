#!/bin/sh
# run-examples.sh [--show] [NAME...] - run examples/*.lua (or the named
# ones) each against a fresh local mock (bin/instantly-mock, seed 1, on
# 127.0.0.1), the way a user would run them against the real API: the
# base URL and key come from INSTANTLY_BASE_URL / INSTANTLY_API_KEY.
# Fails if an example exits non-zero or prints nothing. One line per
# example; an example's output is shown only when it fails, or always with
# --show (used by `make demo`). Every mock started is stopped on exit.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD:-build}
export LUA_PATH="${LUA_PATH:-$root/lua/?.lua;$root/lua/?/init.lua;;}"
export LUA_CPATH="${LUA_CPATH:-$root/$build/?.so;;}"

# An example that hangs fails instead of stalling the run.
limit=${EXAMPLE_TIMEOUT:-120}
run_lua() {
    if command -v timeout >/dev/null 2>&1; then timeout "$limit" lua5.4 "$@"; else lua5.4 "$@"; fi
}

show=0
if [ "${1:-}" = "--show" ]; then show=1; shift; fi
names="$*"
if [ -z "$names" ]; then
    for f in examples/*.lua; do names="$names $(basename "$f" .lua)"; done
fi

tmp=$(mktemp -d)
mock_pid=""
stop_mock() {
    if [ -n "$mock_pid" ]; then
        kill "$mock_pid" 2>/dev/null || true
        wait "$mock_pid" 2>/dev/null || true
        mock_pid=""
    fi
}
cleanup() { stop_mock; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

key="inst_examples_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

start_mock() {
    : >"$tmp/mock.out"
    lua5.4 "$root/bin/instantly-mock" --host 127.0.0.1 --port 0 --seed 1 --api-key "$key" --quiet \
        >"$tmp/mock.out" 2>"$tmp/mock.err" &
    mock_pid=$!
    i=0
    while [ $i -lt 100 ]; do
        url=$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$tmp/mock.out" | head -n 1)
        [ -n "$url" ] && return 0
        kill -0 "$mock_pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    echo "examples: the mock did not start" >&2
    cat "$tmp/mock.err" >&2
    exit 1
}

status=0
for name in $names; do
    file="examples/$name.lua"
    [ -f "$file" ] || { echo "examples: no such example: $file" >&2; status=1; continue; }
    start_mock
    if [ $show = 1 ]; then
        echo "== $file against the mock at $url"
        # In the foreground of the terminal (progress bars, Ctrl-C): no timeout wrapper.
        if INSTANTLY_BASE_URL="$url" INSTANTLY_API_KEY="$key" lua5.4 "$file"; then
            :
        else
            echo "examples: $name FAILED" >&2; status=1
        fi
    else
        if INSTANTLY_BASE_URL="$url" INSTANTLY_API_KEY="$key" run_lua "$file" \
            >"$tmp/out" 2>"$tmp/err" </dev/null && [ -s "$tmp/out" ]; then
            echo "examples: $name ok ($(wc -l <"$tmp/out" | tr -d ' ') lines)"
        else
            echo "examples: $name FAILED" >&2
            cat "$tmp/out" "$tmp/err" >&2
            status=1
        fi
    fi
    stop_mock
done
exit $status
