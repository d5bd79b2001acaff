#!/bin/sh
# docs.sh [OUTDIR] - build the HTML API reference with LDoc (lua-ldoc) into
# docs/html (or OUTDIR). The per-entity modules (client.<entity>) are
# generated from the entity definitions first, so every catalog operation
# is documented without a hand-kept list. Quiet on success; on failure
# prints LDoc's output and exits non-zero. Called by `make docs` and by
# `make test` (docs-test).
set -eu
cd "$(dirname "$0")/.."
out=${1:-docs/html}
src=build/docs-src
log=$(mktemp)
trap 'rm -f "$log"' EXIT INT TERM

command -v ldoc >/dev/null 2>&1 || { echo "docs: ldoc not found (apt-get install lua-ldoc)" >&2; exit 1; }
lua5.4 tools/gen-types.lua --ldoc "$src"
mkdir -p "$out"
if ! ldoc -d "$out" . >"$log" 2>&1; then
    cat "$log" >&2
    echo "docs: ldoc failed" >&2
    exit 1
fi
# Every entity page exists and names every one of its methods.
if ! lua5.4 tools/gen-types.lua --ldoc-check "$out" 2>"$log"; then
    cat "$log" >&2
    exit 1
fi
