#!/usr/bin/env bash
# test.sh - configure, build and run every test (what CI runs through .ci/run):
#   1. the normal build (+ the CUDA module when nvcc is there) and all of ctest,
#   2. scripts/sanitize.sh: the suite again under ASan + UBSan with LeakSanitizer,
#   3. scripts/fuzz.sh: each libFuzzer target briefly on its seed corpus.
#   scripts/test.sh [build-dir]     default build dir: build
# Environment: IVL_CUDA (AUTO/ON/OFF, default AUTO: the CUDA module is compiled and linked
# when nvcc is at /usr/local/cuda, even without a GPU), CTEST_ARGS (extra ctest arguments),
# IVL_TEST_QUICK=1 (step 1 only).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
# mpirun as root on a small box (env.md section 2)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
t0=$(date +%s)
# IVL_TESTS=ON explicitly: the demo (scripts/demo.sh) configures the same folder without tests
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DIVL_TESTS=ON -DIVL_CUDA="${IVL_CUDA:-AUTO}"
cmake --build "$BUILD" -j "$(nproc)"
echo "test.sh: built in $(( $(date +%s) - t0 )) s"
cd "$BUILD"
ctest --output-on-failure --no-tests=error -j "$(nproc)" --timeout 600 ${CTEST_ARGS:-}
echo "test.sh: all tests passed in $(( $(date +%s) - t0 )) s"
cd ..
if [ "${IVL_TEST_QUICK:-0}" != 1 ]; then
  scripts/sanitize.sh
  scripts/fuzz.sh
  echo "test.sh: tests, sanitizer suite and fuzz runs passed in $(( $(date +%s) - t0 )) s"
fi
