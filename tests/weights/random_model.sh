#!/bin/sh
# random_model.sh INTERNVL DATA - `internvl convert --random-weights`: a model file of a
# preset's sizes with random weights and a given tokenizer loads and answers through the
# product (chat with an image, 2 ranks with tp 2 give the same tokens as 1 rank); a tokenizer
# with more tokens than the preset's vocabulary is refused before anything is written.
set -u
bin=$1 data=$2
tok=$data/hf/mini2b-tiny          # 1509 tokens
out=$data/random-model; rm -rf "$out"; mkdir -p "$out"
fail() { echo "random_model: FAIL: $*"; exit 1; }
"$bin" convert --random-weights demo --tokenizer-from "$tok" --out "$out/demo.h5" --no-progress ||
  fail "convert --random-weights demo"
"$bin" info "$out/demo.h5" | grep -q "vocab 4096" || fail "info does not show the preset's vocabulary"
img=$(dirname "$0")/../../docs/samples/house.jpg
one=$("$bin" chat --model "$out/demo.h5" --image "$img" --max-tiles 2 --max-new-tokens 6 \
      "Describe the image." 2>/dev/null) || fail "chat on 1 rank"
two=$(${MPIRUN:-mpirun} --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 \
      "$bin" chat --model "$out/demo.h5" --image "$img" --max-tiles 2 --max-new-tokens 6 --tp 2 \
      "Describe the image." 2>/dev/null) || fail "chat on 2 ranks"
[ "$one" = "$two" ] || fail "tp 2 answered '$two', one rank '$one'"
msg=$("$bin" convert --random-weights tiny-mini2b --tokenizer-from "$tok" --out "$out/bad.h5" 2>&1)
[ $? -ne 0 ] || fail "a tokenizer larger than the vocabulary was accepted"
echo "$msg" | grep -q "1509 tokens, more than the 1024" || fail "message: $msg"
ls "$out"/bad.h5* >/dev/null 2>&1 && fail "a file was left behind"
echo "random_model: ok (answer '$one')"
