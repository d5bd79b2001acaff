#!/bin/sh
# docs.sh [OUTDIR] - build the HTML API reference with LDoc (lua-ldoc) into
# docs/html (or OUTDIR). The per-entity modules (client.<entity>) are
# generated from the entity definitions first, so every catalog operation
# is documented without a hand-kept list. Markdown is rendered by
# lua-discount (config.ld: format = "discount"). Quiet on success; any LDoc
# warning (a line beyond its two progress lines) fails, with LDoc's output.
# Called by `make docs` and, through spec/docs_spec.lua, once by `make test`.
#   sh tools/docs.sh [OUTDIR [CONFIG]]
set -eu
cd "$(dirname "$0")/.."
out=${1:-docs/html}
config=${2:-config.ld}
src=build/docs-src
log=$(mktemp)
trap 'rm -f "$log"' EXIT INT TERM

command -v ldoc >/dev/null 2>&1 || { echo "docs: ldoc not found (apt-get install lua-ldoc)" >&2; exit 1; }
lua5.4 tools/gen-types.lua --ldoc "$src"
mkdir -p "$out"
if ! ldoc -c "$config" -d "$out" . >"$log" 2>&1; then
    cat "$log" >&2
    echo "docs: ldoc failed" >&2
    exit 1
fi
if grep -v -e '^reading configuration from ' -e '^output written to ' "$log" | grep -q .; then
    grep -v -e '^reading configuration from ' -e '^output written to ' "$log" >&2
    echo "docs: ldoc warnings (above) fail the docs check" >&2
    exit 1
fi
# Every entity page exists and names every one of its methods.
if ! lua5.4 tools/gen-types.lua --ldoc-check "$out" 2>"$log"; then
    cat "$log" >&2
    exit 1
fi
