#!/bin/sh
# run_layout.sh INTERNVL COMPARE DATA FAMILY TP PP [VIT_TP]: runs `internvl forward` under
# mpirun with the layout and compares with the single-rank engine output (tests/models).
# IVL_COMM in the environment (e.g. staged: MPI through host copies, the GPU fallback path)
# is passed to every rank.
set -eu
bin=$1 cmp=$2 data=$3 f=$4 tp=$5 pp=$6 vtp=${7:-1}
np=$((tp * pp))
out=$data/parallel/$f.tp$tp.pp$pp.vit$vtp${IVL_COMM:+.$IVL_COMM}.out.h5
export IVL_COMM=${IVL_COMM:-}
mkdir -p "$data/parallel"
rm -f "$out"
timeout 100 "${MPIRUN:-mpirun}" --allow-run-as-root --oversubscribe -np $np \
  -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 -x IVL_COMM \
  "$bin" forward --model "$data/h5/$f.h5" --inputs "$data/ref/$f/batch3.in.h5" \
  --dump "$out" --max-new-tokens 32 --tp $tp --pp $pp --vit-tp $vtp
"$cmp" "$data/engine/$f/batch3.out.h5" "$out" 0 0 --no-layers --tol 1e-5
