#!/usr/bin/env bash
# sanitize.sh - the whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (gcc).
#   scripts/sanitize.sh [build-dir]      default build dir: build-asan
# CI runs it after scripts/test.sh. Builds with -DIVL_SANITIZE=ON -DIVL_CUDA=OFF and runs ctest
# with LeakSanitizer on, Open MPI's own leaks suppressed (docs env.md section 8: Open MPI 4.1
# leaks ~120 KB per rank, and its frames only match suppressions with the slow unwinder).
# Ranks launched on this node inherit mpirun's environment, so the exported ASAN_OPTIONS,
# LSAN_OPTIONS and UBSAN_OPTIONS reach them (OMPI_MCA_mca_base_env_list cannot be used: Open MPI
# refuses it together with the tests' own -x options).
# Environment: CTEST_ARGS (extra ctest arguments, e.g. "-L weights"), JOBS (default nproc),
# SANITIZE_EXCLUDE: a ctest -E regex of tests left out (default: the Pillow parity sweep over
# every photo, the realvocab layout repeats, the multi-turn chat and e2e-bench runs and the
# quantization accuracy sweep, ~25% of the time, whose code the other tests and the fuzz
# targets already run under ASan: sched_unit and serve_curl cover prefix reuse, the caption
# tests the caption pipeline, quant_forward_vs_ref the quantized kernels; SANITIZE_EXCLUDE=
# runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
BUILD=${1:-build-asan}
JOBS=${JOBS:-$(nproc)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
t0=$(date +%s)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIVL_SANITIZE=ON -DIVL_CUDA=OFF
cmake --build "$BUILD" -j "$JOBS"
t1=$(date +%s)
echo "sanitize.sh: built in $(( t1 - t0 )) s"

# detect_leaks stays on everywhere; abort_on_error gives a core-less hard failure ctest sees;
# halt_on_error for UBSan too (the build has -fno-sanitize-recover=undefined already).
export ASAN_OPTIONS="fast_unwind_on_malloc=0:detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$SRC/scripts/lsan-openmpi.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Python tests that load our shared libraries (none today) would need LD_PRELOAD of libasan.
cd "$BUILD"
EXCLUDE=${SANITIZE_EXCLUDE-image_pil_parity|layout_mini2b-realvocab_|chat_prefix|bench_e2e_caption|quant_accuracy}
ctest --output-on-failure --no-tests=error -j "$JOBS" --timeout 900 -LE "fuzz|gpu" ${EXCLUDE:+-E "$EXCLUDE"} ${CTEST_ARGS:-}
echo "sanitize.sh: tests passed in $(( $(date +%s) - t1 )) s (total $(( $(date +%s) - t0 )) s)"
