#!/bin/bash
# bytes_read.sh INTERNVL DATA: on a quantized file (v15-tiny int4, group 16) each rank reads
# only its share of the language model: one rank reads every stored byte once (packed
# integers, scales, zero points and the float tensors); at tp 2 x pp 2 each rank reads the
# vision model plus a quarter of the layers' bytes and half of its stage's end (embedding or
# LM head), + the replicated RMSNorm vectors,
# so the quantized tensors are cut by hyperslabs like the float ones.
set -eu
bin=$1 data=$2
model=$data/quant/h5/v15-tiny-int4g16.h5
in=$data/ref/v15-tiny/one_image.in.h5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {
  timeout 100 ${MPIRUN:-mpirun} --allow-run-as-root --oversubscribe -np $1 -x IVL_LOG_LEVEL=debug \
    -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 "$bin" forward --model "$model" --inputs "$in" \
    --dump "$tmp/o.h5" --max-new-tokens 2 --tp $2 --pp $3 2>&1 | grep -o 'rank [0-9]* read [0-9]* bytes'
}
run 1 1 1 > "$tmp/one"
run 4 2 2 > "$tmp/four"
/usr/bin/python3 - "$model" "$tmp/one" "$tmp/four" <<'PY'
import sys
import h5py
vision_b = llm_b = ends_b = 0
with h5py.File(sys.argv[1], "r") as f:
    for name, d in f["tensors"].items():
        b = d.size * d.id.get_type().get_size()   # stored size (bf16: 2; h5py widens it)
        if name.startswith("llm."):
            llm_b += b
            if name.startswith(("llm.embed", "llm.lm_head")):
                ends_b = max(ends_b, b)   # the bf16 embedding (first stage) vs int4 head (last)
        else:
            vision_b += b
one = [int(l.split()[3]) for l in open(sys.argv[2])]
four = [int(l.split()[3]) for l in open(sys.argv[3])]
print(f"vision+projector {vision_b} B, llm {llm_b} B (int4 + scales + zeros + floats); "
      f"one rank read {one}; tp2 x pp2 ranks read {four}")
assert one == [vision_b + llm_b], "a single rank must read the whole model exactly once"
assert len(four) == 4
norms = llm_b // 50   # generous bound for the replicated RMSNorm vectors
for r, b in enumerate(four):
    share = b - vision_b
    # a quarter of the layers; half of the embedding (bf16, first stage) or of the int4 LM
    # head (last stage): the two ends are not the same size any more
    bound = (llm_b - ends_b) / 4 + ends_b / 2 + norms
    assert share <= bound, f"rank {r} read {share} B of the LLM, more than its share {bound:.0f} of {llm_b}"
total = sum(b - vision_b for b in four)
assert llm_b <= total <= llm_b + 4 * norms, f"ranks together read {total} B of a {llm_b} B LLM"
print("ok: every rank read the vision model and only its quarter of the quantized LLM")
PY
