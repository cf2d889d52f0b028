#!/bin/sh
# valgrind_forward.sh INTERNVL DATA - memcheck of a small end-to-end job: `internvl forward`
# on the mini2b-tiny test model (text-only prompt, 2 new tokens: model load, tokenizer-free
# prefill + decode, the HDF5 dump). Any invalid access, use of uninitialised memory or
# definite leak in our code fails (--error-exitcode); Open MPI's own leaks are suppressed.
# OpenBLAS is pinned to its Haswell kernels: valgrind does not emulate AVX-512.
set -eu
bin=$1 data=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
supp=
[ -f /usr/share/openmpi/openmpi-valgrind.supp ] && supp=--suppressions=/usr/share/openmpi/openmpi-valgrind.supp
export OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --track-origins=yes --num-callers=40 $supp \
    --suppressions="$here/valgrind-openmpi.supp" \
    "$bin" forward --model "$data/h5/mini2b-tiny.h5" \
    --inputs "$data/ref/mini2b-tiny/${VG_INPUT:-text_only}.in.h5" --dump "$work/o.h5" \
    --max-new-tokens 2
echo "valgrind_forward: clean"
