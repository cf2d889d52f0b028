#!/bin/sh
# bench/scaling_runs.sh - the measured MPI runs bench/SCALING.md checks its model against:
# the `demo` preset (random weights, seconds per run) at 1, 2 and 4 ranks in several
# layouts, every phase, one thread per rank (2 cores here: 4 ranks are oversubscribed).
#
#   bench/scaling_runs.sh BUILD_DIR OUT.jsonl
set -eu
build=$1
out=$2
: > "$out"
bench="$build/launcher/internvl bench --preset demo --random-weights --threads 1 --warmup 1 --repeats 5
  --tiles 4 --prompt-lens 256 --batch-sizes 1,4,16 --context-lens 256 --e2e-tiles 1,2,1,2
  --e2e-prompt 32 --e2e-output 8 --peak-gemm-n 1024 --copy-mib 64 --json $out --append"
mpi="mpirun --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
timeout 300 $bench
for layout in "2 --tp 2" "2 --pp 2" "4 --tp 4" "4 --pp 4" "4 --tp 2 --pp 2"; do
    np=${layout%% *}
    args=${layout#* }
    timeout 300 $mpi -np "$np" $bench $args
done
