# core_build.sh - sourced by bench/20-transport.sh and
# bench/60-instructions.sh (from the repository root, with ROOT set):
# sets BUILD, the absolute folder of the core under test: $BUILD if given,
# else the folder `make` put first on LUA_CPATH (so `make BUILD=x bench`
# measures x), else build/.
if [ -z "${BUILD:-}" ]; then
    first=${LUA_CPATH:-}
    first=${first%%;*}
    BUILD=build
    if [ -n "$first" ] && [ -f "${first%/?.so}/instantly/core.so" ]; then BUILD=${first%/?.so}; fi
fi
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
