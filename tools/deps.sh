#!/bin/sh
# deps.sh GROUP... - make sure the Debian packages a make target needs are
# installed. As root it installs what is missing with apt-get; otherwise it
# names the missing packages and fails, so nothing half-works.
set -eu

pkgs_build="gcc make pkg-config lua5.4 liblua5.4-dev libcurl4-openssl-dev"
pkgs_test="$pkgs_build lua-busted lua-cjson lua-socket lua-argparse luarocks lua-ldoc bsdutils openssl gzip nginx-light"
pkgs_lint="lua-check cppcheck"
pkgs_asan="clang libclang-rt-14-dev"
pkgs_valgrind="valgrind"
pkgs_bench="nginx-light python3-requests lua-socket lua-cjson time"

want=""
for g in "$@"; do
    eval "want=\"\$want \$pkgs_$g\""
done

missing=""
for p in $want; do
    case " $missing " in *" $p "*) continue ;; esac
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >&2
else
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: install them (sudo apt-get install$missing) or run make as root" >&2
    exit 1
fi
