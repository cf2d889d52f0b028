#!/bin/sh
# run_layout.sh INTERNVL COMPARE DATA FAMILY KIND TP PP: a quantized model under mpirun with
# the layout gives the same tokens and logits (1e-5) as one rank with the same file.
set -eu
bin=$1 cmp=$2 data=$3 f=$4 k=$5 tp=$6 pp=$7
np=$((tp * pp))
q=$data/quant
model=$q/h5/$f-$k.h5
in=$data/ref/$f/batch3.in.h5
one=$q/engine/$f-$k.batch3.tp1.out.h5
out=$q/engine/$f-$k.batch3.tp$tp.pp$pp.out.h5
mkdir -p "$q/engine"
rm -f "$one" "$out"
OMP_NUM_THREADS=1 "$bin" forward --model "$model" --inputs "$in" --dump "$one" --max-new-tokens 32
timeout 100 "${MPIRUN:-mpirun}" --allow-run-as-root --oversubscribe -np $np \
  -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
  "$bin" forward --model "$model" --inputs "$in" --dump "$out" --max-new-tokens 32 --tp $tp --pp $pp
"$cmp" "$one" "$out" 0 0 --no-layers --tol 1e-5
