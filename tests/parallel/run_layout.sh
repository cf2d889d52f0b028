#!/bin/sh
# run_layout.sh INTERNVL COMPARE DATA FAMILY TP PP [VIT_TP]: runs `internvl forward` under
# mpirun with the layout and compares with the single-rank engine output (tests/models).
set -eu
bin=$1 cmp=$2 data=$3 f=$4 tp=$5 pp=$6 vtp=${7:-1}
np=$((tp * pp))
out=$data/parallel/$f.tp$tp.pp$pp.vit$vtp.out.h5
mkdir -p "$data/parallel"
rm -f "$out"
timeout 100 "${MPIRUN:-mpirun}" --allow-run-as-root --oversubscribe -np $np \
  -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
  "$bin" forward --model "$data/h5/$f.h5" --inputs "$data/ref/$f/batch3.in.h5" \
  --dump "$out" --max-new-tokens 32 --tp $tp --pp $pp --vit-tp $vtp
"$cmp" "$data/engine/$f/batch3.out.h5" "$out" 0 0 --no-layers --tol 1e-5
