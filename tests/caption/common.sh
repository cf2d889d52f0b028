# common.sh - shared settings of the caption tests (sourced).
# usage of every test: <test>.sh INTERNVL IVL_TEST_DATA
set -u
BIN=$1
DATA=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${IVL_PYTHON:-/usr/bin/python3}
MODEL=$DATA/h5/mini2b-tiny.h5
W=$DATA/caption                      # data + single-rank reference, made by ref.sh
MPI="${MPIRUN:-mpirun} --allow-run-as-root --oversubscribe --mca mpi_yield_when_idle 1 \
     -x OPENBLAS_NUM_THREADS=1 -x OMP_NUM_THREADS=1"
# Small and fast: 8 new tokens, at most 2 tiles (+ thumbnail), 4 images per folder/list output.
ARGS="--model $MODEL --max-new-tokens 8 --max-tiles 2 --chunk 4 --threads 2 --log-interval 5"
INPUTS="--input $W/data/dir --input $W/data/list.txt --input $W/data/shards/{00000..00002}.tar"
CHECK="$PY $HERE/check_jsonl.py"
EXP=$W/data/expected.json

fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "$MODEL" ] || fail "$MODEL missing (made by the h5_models fixture, tests/models)"
