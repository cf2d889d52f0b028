#!/bin/sh
# run_long.sh BUILD_DIR SECONDS [TARGET...] - the long fuzz runs recorded in README.md: each
# target in turn (one at a time, one core, nice 19) for SECONDS, on a corpus kept in
# BUILD_DIR/fuzz-corpus/<target> (seeded from corpus/<target>; it grows across runs). Crash
# files land in BUILD_DIR/fuzz-artifacts/<target>/. One summary line per run is appended to
# BUILD_DIR/fuzz-runs.log: date, target, seconds, execs, coverage, crashes.
set -u
build=$1 secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
targets=${*:-"fuzz_safetensors fuzz_config fuzz_tokenizer fuzz_model_file fuzz_image fuzz_chat fuzz_decode fuzz_msg fuzz_tar fuzz_image_formats"}
# Scratch files of the targets go under BUILD_DIR (a crash skips their clean-up).
mkdir -p "$build/fuzz-tmp"
export TMPDIR="$build/fuzz-tmp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-fast_unwind_on_malloc=0}"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
for t in $targets; do
    corp=$build/fuzz-corpus/$t art=$build/fuzz-artifacts/$t
    mkdir -p "$corp" "$art"
    cp -n "$here/corpus/$t"/* "$corp/" 2>/dev/null
    log=$art/last.log
    nice -n 19 "$build/tests/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=60 \
        -max_len=65536 -artifact_prefix="$art/" -print_final_stats=1 "$corp" > "$log" 2>&1
    rc=$?
    execs=$(grep -o 'number_of_executed_units: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    crashes=$(ls "$art" | grep -c -E '^(crash|leak|timeout|oom)-')
    echo "$(date -u +%FT%TZ) $t secs=$secs rc=$rc execs=${execs:-?} cov=${cov:-?} corpus=$(ls "$corp" | wc -l) artifacts=$crashes" \
        >> "$build/fuzz-runs.log"
done
