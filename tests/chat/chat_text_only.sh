#!/bin/bash
# chat_text_only.sh INTERNVL MODEL: a text-only conversation does not need the vision model.
# The same two-turn conversation on MODEL and on a copy without any vision.* / mlp1.* tensor
# (deleted with h5py) streams the same text, on one rank and under tp 2 x pp 2; the stripped
# copy given an image fails with a message naming a missing vision tensor.
set -eu
bin=$1 model=$2
py=${IVL_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$model" "$tmp/full.h5"
"$py" - "$tmp/full.h5" "$tmp/novision.h5" <<'PY'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    gone = [k for k in f["tensors"] if k.split(".")[0] in ("vision", "mlp1")]
    for k in gone:
        del f["tensors"][k]
print(f"removed {len(gone)} vision/projector tensors")
PY
q=$(printf 'Tell me a story.\n再讲一个。\n')
run() {   # run MODEL LAUNCH_PREFIX... -- FLAGS...
  local m=$1; shift
  local pre=() ; while [ "$1" != "--" ]; do pre+=("$1"); shift; done; shift
  echo "$q" | timeout 100 "${pre[@]}" "$bin" chat --model "$m" --max-new-tokens 12 "$@" 2>"$tmp/err"
}
full=$(run "$tmp/full.h5" --)
grep -q "text only: the vision model" "$tmp/err" || { echo "FAIL: no text-only notice"; cat "$tmp/err"; exit 1; }
stripped=$(run "$tmp/novision.h5" --)
[ "$stripped" = "$full" ] || { echo "FAIL: one rank, stripped model: $stripped / full: $full"; exit 1; }
echo "ok   one rank: same text without the vision tensors ($(echo "$full" | wc -c) bytes)"
mpi=(${MPIRUN:-mpirun} --allow-run-as-root --oversubscribe -np 4 -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
got=$(run "$tmp/novision.h5" "${mpi[@]}" -- --tp 2 --pp 2)
[ "$got" = "$full" ] || { echo "FAIL: tp 2 x pp 2, stripped model: $got / one rank: $full"; exit 1; }
echo "ok   tp 2 x pp 2: same text without the vision tensors"
img=$tmp/img.png
"$py" -c "from PIL import Image; Image.new('RGB', (64, 48), (200, 30, 30)).save('$img')"
if echo "hi" | timeout 60 "$bin" chat --model "$tmp/novision.h5" --image "$img" --max-new-tokens 2 \
     >/dev/null 2>"$tmp/err"; then
  echo "FAIL: an image on the stripped model did not fail"; exit 1
fi
grep -q "tensor vision\.[a-z_]* missing" "$tmp/err" || { echo "FAIL: the error does not name the vision tensor:"; cat "$tmp/err"; exit 1; }
echo "ok   with an image, the stripped model fails: $(grep -m1 -o 'tensor vision[^ ]* missing' "$tmp/err")"
