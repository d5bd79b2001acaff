#!/bin/sh
# asan-report.sh DIR - judges the sanitizer reports `make asan` collected
# in DIR (ASan/LSan/UBSan write one file per process there, via log_path).
#
# The ASan runtime is preloaded into every process the suite starts, so
# helper programs the specs run (script, mktemp, ...) get leak-checked too,
# and some of them leak on purpose at exit. Reports that touch the Lua
# processes (lua5.4, liblua5.4, the instantly core) fail the run; the
# others are only counted, never allowed to change a spec's output.
set -eu
dir=$1
ours=0
foreign=0
others=""
for f in "$dir"/*; do
    [ -f "$f" ] || continue
    if grep -q -e 'instantly/core\.so' -e 'csrc/' -e 'lua5\.4' "$f"; then
        ours=$((ours + 1))
        echo "== $f" >&2
        cat "$f" >&2
    else
        foreign=$((foreign + 1))
        prog=$(grep -o '(/[^ +)]*+0x' "$f" | sed 's/^(//; s/+0x$//' | grep -v -e '/libc\.' -e 'sanitizer' \
               -e '/ld-linux' | head -1)
        case " $others " in *" ${prog:-?} "*) ;; *) others="$others ${prog:-?}" ;; esac
    fi
done
if [ "$foreign" -gt 0 ]; then
    echo "asan: ignored $foreign leak report(s) from helper programs:$others"
fi
if [ "$ours" -gt 0 ]; then
    echo "asan: $ours sanitizer report(s) from the Lua processes (above)" >&2
    exit 1
fi
echo "asan: no sanitizer reports from the Lua processes"
