#!/bin/bash
# gpu_check.sh - one script for a machine with one NVIDIA GPU (H100/H200/A100...): builds the
# CUDA backend, checks every op against the CPU backend, measures the card's GEMM ceiling and
# copy bandwidth, and benchmarks the ops at the real model shapes. Prints a block to paste
# into bench/RESULTS.md. Designed to finish in about 5 minutes; each step has a timeout.
#
#   bench/gpu_check.sh [--dry-run] [--arch ARCHS] [--build DIR] [--out DIR]
#
#   --dry-run   no GPU needed: prerequisites + build (+ the binary's "no CUDA device" exit);
#               what CI/tests can check on a GPU-less machine (tests/cuda: cuda_gpu_check_dryrun)
#   --arch      CMAKE_CUDA_ARCHITECTURES (default: native on a GPU, 75 for --dry-run)
#   --build     build directory (default: <repo>/build-gpucheck)
#   --out       where logs and results.md go (default: the build directory)
#
# Needs only: bash, coreutils (timeout), CMake >= 3.24, gcc/g++ with OpenMP, the CUDA
# toolkit (nvcc; /usr/local/cuda/bin is searched), and for the run the NVIDIA driver. The
# engine's Debian deps (MPI, HDF5, protobuf-c, OpenBLAS, ...) are NOT needed: when the full
# project cannot be configured (the usual case on a rented GPU box), the script builds the
# standalone target bench/gpu_check/CMakeLists.txt (CUDA module + CPU backend + bench).
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DRY=0 ARCH="" BUILD="$ROOT/build-gpucheck" OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --arch) ARCH=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$OUT" ] || OUT=$BUILD
mkdir -p "$BUILD" "$OUT" || exit 2
LOG="$OUT/gpu_check.log"
: > "$LOG"
T0=$(date +%s)
FAILED=()
say() { echo "== [$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }
die() { echo "gpu_check: ERROR: $*" | tee -a "$LOG" >&2; exit 2; }
# run_step NAME TIMEOUT CMD... : runs with a timeout, output to the terminal and the log.
run_step() {
  local name=$1 to=$2; shift 2
  say "$name (timeout ${to}s)"
  timeout --kill-after=10 "$to" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then say "$name: TIMED OUT"; FAILED+=("$name (timeout)");
  elif [ "$rc" -ne 0 ]; then say "$name: FAILED (exit $rc)"; FAILED+=("$name (exit $rc)"); fi
  return "$rc"
}

# ---------------------------------------------------------------- 1. prerequisites
say "prerequisites"
export PATH="$PATH:/usr/local/cuda/bin"
for t in cmake gcc g++ nvcc timeout readelf; do
  command -v "$t" >/dev/null 2>&1 || die "'$t' not found (need CMake >= 3.24, gcc/g++, the CUDA toolkit, coreutils, binutils)"
done
CMV=$(cmake --version | head -1 | awk '{print $3}')
printf '%s\n%s\n' "3.24" "$CMV" | sort -V -C || die "CMake $CMV is too old (need >= 3.24)"
echo "#include <omp.h>
int main(void){return omp_get_max_threads()>0?0:1;}" > "$BUILD/omp_probe.c"
gcc -fopenmp "$BUILD/omp_probe.c" -o "$BUILD/omp_probe" 2>>"$LOG" || die "gcc cannot build OpenMP code (install libgomp / gcc)"
NVCCV=$(nvcc --version | grep -o 'release [0-9.]*' | awk '{print $2}')
echo "cmake $CMV, gcc $(gcc -dumpversion), nvcc $NVCCV, $(nproc) cores" | tee -a "$LOG"
HAVE_GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  HAVE_GPU=1
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee -a "$LOG"
fi
if [ $DRY -eq 0 ] && [ $HAVE_GPU -eq 0 ]; then
  die "no GPU visible (nvidia-smi -L failed); use --dry-run to check the build only"
fi
if [ -z "$ARCH" ]; then
  if [ $HAVE_GPU -eq 1 ]; then ARCH=native; else ARCH=75; fi
fi
JOBS=$(nproc); [ "$JOBS" -gt 16 ] && JOBS=16
[ $DRY -eq 1 ] && JOBS=2    # the dry run happens on shared 2-core CI/dev machines

# ---------------------------------------------------------------- 2. build
# Full project if its dependencies are here (also builds `internvl` for the end-to-end step),
# else the standalone CUDA check build.
MODE=""
if [ "${IVL_GPU_CHECK_STANDALONE:-0}" = 0 ] && timeout 120 cmake -S "$ROOT" -B "$BUILD/full" -DIVL_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_BUILD_TYPE=Release >"$BUILD/full-configure.log" 2>&1; then
  MODE=full; BDIR="$BUILD/full"; TARGETS="ivl_cuda bench_cuda_ops gpu_e2e"
  [ $DRY -eq 0 ] && TARGETS="$TARGETS internvl"
else
  [ "${IVL_GPU_CHECK_STANDALONE:-0}" = 0 ] && { echo "full project does not configure here (missing engine deps, see $BUILD/full-configure.log):"; grep -m3 -i -e "could not find" -e "not found" -e "error" "$BUILD/full-configure.log"; } | tee -a "$LOG"
  MODE=standalone; BDIR="$BUILD/standalone"; TARGETS="ivl_cuda bench_cuda_ops gpu_e2e"
  run_step "configure (standalone, CUDA arch $ARCH)" 120 cmake -S "$ROOT/bench/gpu_check" -B "$BDIR" \
    -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_BUILD_TYPE=Release ${IVL_GPU_CHECK_SHIM:+-DIVL_GPU_CHECK_SHIM=ON} \
    || die "standalone configure failed (see $LOG)"
fi
say "build mode: $MODE, CUDA architectures: $ARCH"
run_step "build ($TARGETS, -j$JOBS)" 240 cmake --build "$BDIR" -j "$JOBS" --target $TARGETS \
  || die "build failed (see $LOG)"
BENCH="$BDIR/bench/bench_cuda_ops"; [ -x "$BENCH" ] || BENCH="$BDIR/bench_cuda_ops"
MODULE="$BDIR/core/cuda/libivl_cuda.so"
[ -x "$BENCH" ] && [ -f "$MODULE" ] || die "build produced no bench_cuda_ops / libivl_cuda.so"
if readelf -d "$MODULE" | grep -q 'NEEDED.*libcuda\.so'; then die "$MODULE links libcuda.so (driver API)"; fi
say "built in $(( $(date +%s) - T0 ))s"

if [ $DRY -eq 1 ]; then
  if [ $HAVE_GPU -eq 0 ]; then
    out=$("$BENCH" --check 2>&1); rc=$?
    echo "$out" | tail -3 | tee -a "$LOG"
    if [ $rc -eq 0 ] || ! echo "$out" | grep -q "no CUDA device"; then
      die "without a GPU bench_cuda_ops must fail with 'no CUDA device' (exit $rc)"
    fi
  fi
  say "dry run ok (mode $MODE)"
  exit 0
fi

# ---------------------------------------------------------------- 3. op checks, CUDA vs CPU
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
run_step "op checks: CUDA vs CPU backend" 150 "$BENCH" --check
run_step "op checks again with IVL_CUDA_DEBUG_SYNC=1 (quick)" 120 env IVL_CUDA_DEBUG_SYNC=1 "$BENCH" --check --quick

# The pre-Ampere paths on this card (IVL_CUDA_EMULATE_CC, core/cuda/backend_cuda.cu): fp16
# compute with the WMMA attention (sm_75) and with the CUDA-core attention only (sm_61, the
# GTX 1080 Ti path). Same binary: this checks the fp16 kernels and the dispatch, not the
# older instruction sets.
run_step "op checks emulating sm_75 (fp16, WMMA attention)" 120 env IVL_CUDA_EMULATE_CC=75 "$BENCH" --check --quick
run_step "op checks emulating sm_61 (fp16, no tensor-core attention)" 120 env IVL_CUDA_EMULATE_CC=61 "$BENCH" --check --quick

# compute-sanitizer over the quick checks (every kernel, small shapes): out-of-bounds and
# misaligned accesses, races in shared memory are not covered (memcheck only).
CSAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
if [ "${IVL_GPU_CHECK_MEMCHECK:-0}" = 1 ] && [ -z "$CSAN" ]; then say "compute-sanitizer not found: memcheck step skipped"; fi
if [ "${IVL_GPU_CHECK_MEMCHECK:-0}" = 1 ] && [ -n "$CSAN" ]; then
  run_step "compute-sanitizer memcheck, quick op checks" 200 "$CSAN" --tool memcheck \
    --error-exitcode 9 "$BENCH" --check --quick
fi

# ---------------------------------------------------------------- 4. ceilings + model shapes
run_step "benchmarks at model shapes" 180 "$BENCH" --bench --tiles 8 --prefill 2048 --ctx 1024 \
  | tee "$OUT/bench.txt"

# ---------------------------------------------------------------- 5. end to end
# The whole model (bench/gpu_e2e.c): the three families' architectures CUDA vs CPU (image
# embeddings, prefill logits, greedy tokens and where they diverge), then real-size Mini-2B
# throughput (and the 26B with IVL_GPU_CHECK_BIG=1: ~51 GB of random bf16 weights).
E2E="$BDIR/bench/gpu_e2e"; [ -x "$E2E" ] || E2E="$BDIR/gpu_e2e"
run_step "end to end: three families CUDA vs CPU, real-size throughput" 240 \
  "$E2E" ${IVL_GPU_CHECK_BIG:+--big} | tee "$OUT/e2e.txt"
run_step "end to end emulating sm_75 (fp16): three families CUDA vs CPU, Mini-2B" 150 \
  env IVL_CUDA_EMULATE_CC=75 "$E2E" | tee "$OUT/e2e-sm75.txt"

# ---------------------------------------------------------------- 6. results
{
  sed -n '/^### CUDA backend/,/^```$/p' "$OUT/bench.txt" | sed -n '1,/^```$/p'
  sed -n '/^```$/,$p' "$OUT/bench.txt" | sed '1d'
  echo
  echo "op checks: $(grep -h '^checks:' "$LOG" | tr '\n' ' ')"
  echo; echo '```'; cat "$OUT/e2e.txt" 2>/dev/null; echo "# emulating sm_75 (fp16):"; cat "$OUT/e2e-sm75.txt" 2>/dev/null; echo '```'
  echo "build: $MODE, nvcc $NVCCV, arch $ARCH, $(( $(date +%s) - T0 )) s total"
} > "$OUT/results.md"
say "results (paste into bench/RESULTS.md):"
cat "$OUT/results.md"
if [ ${#FAILED[@]} -gt 0 ]; then
  say "FAILED steps: ${FAILED[*]}"
  exit 1
fi
say "all steps passed"
