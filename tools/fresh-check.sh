#!/bin/sh
# fresh-check.sh - `make fresh-check`: the README's two commands on a bare
# Debian 12 machine. Builds a minimal bookworm root with mmdebstrap
# (variant minbase, plus only the README's prerequisites: git and make; we
# are root inside), from the mirror apt on this machine already uses;
# copies a clean clone of HEAD into it; runs `make demo` and then
# `make test` there, exactly as the README says; prints the time of each;
# and unmounts and removes the root whatever happens.
#
# Not part of .ci/run: it needs the package mirror and minutes. Run it
# before closing work that touches dependencies (tools/deps.sh) or set-up.
# Needs root (mmdebstrap, chroot, mount). FRESH_KEEP=1 keeps the root for a
# look after a failure (its path is printed; remove it yourself).
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)

[ "$(id -u)" = 0 ] || { echo "fresh-check: needs root (mmdebstrap, chroot, mount)" >&2; exit 1; }
sh tools/deps.sh fresh

# The mirror apt already uses: deb822 .sources files first, then one-line
# sources.list entries; only Debian's main component is needed.
mirrors=$(
    {
        cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
            /^URIs:/ { uri = $2 } /^Suites:/ { $1 = ""; suites = $0 }
            /^$/ { if (uri != "") { n = split(suites, s, " "); for (i = 1; i <= n; i++) print "deb " uri " " s[i] " main" } uri = ""; suites = "" }
            END { if (uri != "") { n = split(suites, s, " "); for (i = 1; i <= n; i++) print "deb " uri " " s[i] " main" } }'
        grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '$2 !~ /^\[/ { print "deb " $2 " " $3 " main" }'
    } | grep -E ' bookworm(-updates|-security)? main$' | sort -u
)
[ -n "$mirrors" ] || mirrors="deb http://deb.debian.org/debian bookworm main"

root=$(mktemp -d /var/tmp/instantly-fresh.XXXXXX)
mounted=""
cleanup() {
    status=$?
    for m in $mounted; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    if [ "${FRESH_KEEP:-0}" = 1 ]; then
        echo "fresh-check: root kept at $root"
    elif ! grep -q " $root/" /proc/mounts; then
        rm -rf --one-file-system "$root"
    else
        echo "fresh-check: $root still has mounts; not removed" >&2; status=1
    fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s; }
t0=$(now)
echo "fresh-check: building a Debian 12 minbase root (+ git make) in $root"
echo "$mirrors" | sed 's/^/fresh-check:   /'
log="$root.log"
# shellcheck disable=SC2086
if ! echo "$mirrors" | mmdebstrap --variant=minbase --include=git,make --quiet \
        bookworm "$root" - >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; echo "fresh-check: mmdebstrap failed" >&2; exit 1
fi
rm -f "$log"
echo "fresh-check: root ready in $(( $(now) - t0 )) s"

# A chroot is not a booted machine: services a package installs (nginx-light)
# must not start in it. Name resolution comes from the host.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc" && mounted="$root/proc $mounted"
mount --bind /dev "$root/dev" && mounted="$root/dev $mounted"
mount --bind /dev/pts "$root/dev/pts" && mounted="$root/dev/pts $mounted"

# A clean clone of HEAD (committed work only), as a new user would get it.
git clone -q --no-hardlinks "$src" "$root/root/instantly"
echo "fresh-check: cloned $(git -C "$root/root/instantly" log -1 --format='%h %s')"

run() {
    echo "fresh-check: === $1 ==="
    t=$(now)
    if chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            sh -c "cd /root/instantly && $1"; then
        echo "fresh-check: $1 passed in $(( $(now) - t )) s"
    else
        echo "fresh-check: $1 FAILED after $(( $(now) - t )) s" >&2
        exit 1
    fi
}
run "make demo"
run "make test"
echo "fresh-check: both commands passed on a bare Debian 12 root ($(( $(now) - t0 )) s in all)"
