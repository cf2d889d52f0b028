#!/bin/bash
# bytes_read.sh INTERNVL DATA: each rank reads only its share of the LLM weights.
# By design every rank holds the whole ViT + projector (tiles are sharded, weights are not),
# and 1/(tp*pp) of the LLM: its stage's layers, its tp rows/columns, its vocabulary rows; only
# the RMSNorm vectors are replicated over tp. The model file reader counts the bytes of every
# read; the test checks each rank's count against vision + LLM/4 (+ norms) for tp 2 x pp 2.
set -eu
bin=$1 data=$2
model=$data/h5/v15-tiny.h5
in=$data/ref/v15-tiny/one_image.in.h5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {
  timeout 100 ${MPIRUN:-mpirun} --allow-run-as-root --oversubscribe -np $1 -x IVL_LOG_LEVEL=debug \
    -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 "$bin" forward --model "$model" --inputs "$in" \
    --dump "$tmp/o.h5" --max-new-tokens 2 --tp $2 --pp $3 2>&1 | grep -o 'rank [0-9]* read [0-9]* bytes'
}
"$bin" info "$model" > "$tmp/info"
run 1 1 1 > "$tmp/one"
run 4 2 2 > "$tmp/four"
/usr/bin/python3 - "$tmp/info" "$tmp/one" "$tmp/four" <<'PY'
import re, sys
info = open(sys.argv[1]).read()
count = lambda part: int(re.search(rf"^\s*{part}\s+(\d+)", info, re.M).group(1))
vision_b = 2 * (count("vision") + count("projector"))   # bf16 in the file
llm_b = 2 * count("llm")
one = [int(l.split()[3]) for l in open(sys.argv[2])]
four = [int(l.split()[3]) for l in open(sys.argv[3])]
print(f"vision+projector {vision_b} B, llm {llm_b} B; one rank read {one}; tp2 x pp2 ranks read {four}")
assert one == [vision_b + llm_b], "a single rank must read the whole model exactly once"
assert len(four) == 4
norms = 2 * llm_b // 100   # generous bound for the replicated RMSNorm vectors (< 1% here)
for r, b in enumerate(four):
    share = b - vision_b
    assert share <= llm_b / 4 + norms, f"rank {r} read {share} B of the LLM, more than 1/4 of {llm_b}"
llm_total = sum(b - vision_b for b in four)
assert llm_b <= llm_total <= llm_b + 4 * norms, f"ranks together read {llm_total} B of a {llm_b} B LLM"
print("ok: every rank read the vision model and only its quarter of the LLM")
PY
