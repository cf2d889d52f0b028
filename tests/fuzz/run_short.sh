#!/bin/sh
# run_short.sh FUZZER SEEDS WORKDIR SECONDS - one short libFuzzer run for ctest: the seeds are
# copied to WORKDIR/corpus (new inputs land there, not in the repo), one job, 2 GB RSS limit,
# a crash file goes to WORKDIR/ and fails the test.
set -eu
fz=$1 seeds=$2 work=$3 secs=$4
rm -rf "$work"
mkdir -p "$work/corpus"
cp "$seeds"/* "$work/corpus/"
here=$(cd "$(dirname "$0")" && pwd)
# Scratch files of the targets go under WORKDIR (a crash skips their clean-up).
mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-fast_unwind_on_malloc=0}"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
exec "$fz" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
    -artifact_prefix="$work/" -print_final_stats=1 "$work/corpus"
