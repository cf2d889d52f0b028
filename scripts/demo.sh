#!/usr/bin/env bash
# demo.sh - builds the engine and runs its main job on the built-in demo model.
#   scripts/demo.sh [build-dir]        (after scripts/install-deps.sh; default build dir: build)
# The demo model is a random-weight checkpoint in the exact Mini-InternVL-Chat-2B-V1-5 layout
# (tests/gen/make_demo.sh): the pipeline is real, the words it produces are meaningless.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DIVL_TESTS=OFF -DIVL_CUDA="${IVL_CUDA:-AUTO}" >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target internvl
BIN=$BUILD/launcher/internvl
DEMO=$BUILD/demo
mkdir -p "$DEMO"

echo "== 1. a Hugging Face checkpoint folder (random weights, real layout)"
tests/gen/make_demo.sh "$DEMO/hf"
echo "== 2. internvl convert: HF folder -> one HDF5 model file"
"$BIN" convert --hf "$DEMO/hf" --out "$DEMO/demo.h5"
"$BIN" info "$DEMO/demo.h5"
echo "== 3. internvl chat: one question about a bundled image (random weights: gibberish)"
"$BIN" chat --model "$DEMO/demo.h5" --image docs/samples/house.jpg --max-tiles 6 \
  --max-new-tokens 32 "Describe the image."
echo "== 4. the main job: internvl caption of the bundled image folder on 4 MPI ranks"
echo "      (tensor parallel 2 x pipeline parallel 2; resumable JSON Lines output)"
rm -rf "$DEMO/captions"
mpirun --allow-run-as-root --oversubscribe -np 4 -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
  "$BIN" caption --model "$DEMO/demo.h5" --tp 2 --pp 2 --input docs/samples \
  --out "$DEMO/captions" --max-tiles 4 --max-new-tokens 24 --progress log
echo "== captions written to $DEMO/captions/:"
ls -l "$DEMO/captions"
head -c 600 "$DEMO"/captions/*.jsonl; echo
