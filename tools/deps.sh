#!/bin/sh
# deps.sh GROUP... - make sure the Debian packages a make target needs are
# installed. As root it installs what is missing with apt-get, quietly: one
# line per group, apt's full log only when it fails. Otherwise it names the
# missing packages and fails, so nothing half-works.
#
# Groups: run (what the SDK needs at run time), build (compile the core),
# demo (`make demo`: build + the mock), test (`make test`), and the extras
# lint, asan, valgrind, bench. `sh tools/deps.sh --list GROUP...` prints the
# packages (the README's apt-get line is checked against it by a spec).
set -eu

# libcurl4 only *recommends* ca-certificates, and apt-get here runs with
# --no-install-recommends: without it no HTTPS call can verify a peer.
pkgs_run="lua5.4 libcurl4 ca-certificates"
pkgs_build="$pkgs_run gcc make pkg-config liblua5.4-dev libcurl4-openssl-dev"
pkgs_demo="$pkgs_build lua-socket"
pkgs_test="$pkgs_demo lua-busted lua-cjson lua-argparse luarocks lua-ldoc lua-discount bsdutils openssl gzip nginx-light"
pkgs_lint="lua-check cppcheck"
pkgs_asan="clang libclang-rt-14-dev"
pkgs_valgrind="valgrind"
pkgs_fresh="mmdebstrap git"
pkgs_bench="nginx-light python3-requests lua-socket lua-cjson time"

list=0
if [ "${1:-}" = "--list" ]; then list=1; shift; fi

missing_in() {
    eval "_want=\"\$pkgs_$1\""
    _missing=""
    for p in $_want; do
        case " $_missing $seen " in *" $p "*) continue ;; esac
        if [ $list = 1 ] || ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            _missing="$_missing $p"
        fi
    done
    echo "$_missing"
}

seen=""
status=0
updated=0
for g in "$@"; do
    eval "_known=\${pkgs_$g+x}"
    [ -n "$_known" ] || { echo "deps: unknown group '$g'" >&2; exit 2; }
    missing=$(missing_in "$g")
    seen="$seen $missing"
    if [ $list = 1 ]; then
        printf '%s\n' "${missing# }"
        continue
    fi
    [ -z "$missing" ] && continue
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "deps: installing $g group:$missing"
        log=$(mktemp)
        export DEBIAN_FRONTEND=noninteractive
        # shellcheck disable=SC2086
        if ! { [ $updated = 1 ] || apt-get update -q; } >"$log" 2>&1 ||
           ! apt-get install -y -q --no-install-recommends $missing >>"$log" 2>&1; then
            cat "$log" >&2
            rm -f "$log"
            echo "deps: apt-get failed for the $g group (log above)" >&2
            exit 1
        fi
        rm -f "$log"
        updated=1
    else
        echo "deps: missing Debian packages for $g:$missing" >&2
        echo "deps: install them (sudo apt-get install --no-install-recommends$missing) or run make as root" >&2
        status=1
    fi
done
exit $status
