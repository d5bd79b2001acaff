#!/bin/sh
# fuzz.sh SECONDS - libFuzzer (with ASan + UBSan) on the JSON decoder and on
# decode -> encode -> decode (spec/fuzz/json_fuzz.c, with its memory
# oracle against lua-cjson), after the allocation-
# failure sweep (spec/fuzz/json_oom.c). Starts from the
# committed corpus in spec/fuzz/corpus, then merges what it found back into
# a minimal set so the committed corpus stays small. Crashes land in
# build-fuzz/ as crash-* files; the last lines give the exec count.
set -eu
seconds=${1:-600}
# Large enough for the amplification shapes (issue 11) to matter.
max_len=${FUZZ_MAX_LEN:-131072}
out=build-fuzz
bin=$out/json_fuzz
corpus=spec/fuzz/corpus
mkdir -p "$out" "$corpus"

cflags="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
# shellcheck disable=SC2046
clang -std=c99 -Wall -Wextra -Werror $cflags $(pkg-config --cflags lua5.4) -Icsrc \
    spec/fuzz/json_fuzz.c csrc/json.c -o "$bin" $(pkg-config --libs lua5.4)

# First the allocation-failure sweep, under the same sanitizers.
# shellcheck disable=SC2046
clang -std=c99 -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
    $(pkg-config --cflags lua5.4) -Icsrc spec/fuzz/json_oom.c csrc/json.c -o "$out/json_oom" \
    $(pkg-config --libs lua5.4) -lm
"$out/json_oom"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$corpus"/* "$work"/ 2>/dev/null || true
lua5.4 spec/fuzz/seeds.lua "$work"   # the memory-amplification shapes

echo "fuzz: running $bin for ${seconds}s"
# -detect_leaks=0: the Lua state lives across inputs (its collector frees
# later, and the memory oracle pauses it), so libFuzzer's per-input leak
# scan would run on nearly every input and cost 90% of the time. Freeing
# on every failure path is proven by the allocation-failure sweep above.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
"$bin" -detect_leaks=0 -max_total_time="$seconds" -max_len="$max_len" -timeout=20 -rss_limit_mb=2048 \
    -dict=spec/fuzz/json.dict -artifact_prefix="$out/" -print_final_stats=1 \
    "$work" >"$out/fuzz.log" 2>&1 || { tail -60 "$out/fuzz.log"; exit 1; }

# Keep only the inputs that add coverage (edges, not hit counts: fewer
# files), cut to 16 KB so the committed corpus stays small; the large
# shapes come back from seeds.lua on every run.
min=$(mktemp -d "$work/../min.XXXXXX")
"$bin" -merge=1 -use_counters=0 -max_len=16384 "$min" "$work" >>"$out/fuzz.log" 2>&1
rm -f "$corpus"/*
for f in "$min"/*; do
    cp "$f" "$corpus/$(basename "$f")"
done
rm -rf "$min"

grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$out/fuzz.log" || true
echo "fuzz: corpus now $(ls "$corpus" | wc -l) files, $(du -sk "$corpus" | cut -f1) KB in $corpus"
