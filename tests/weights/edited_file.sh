#!/bin/sh
# edited_file.sh INTERNVL H5 OUTDIR - a model file whose tensors no longer match its config
# (hand-edited: a weight with 3 rows too many; an embedding with rows cut) is refused when it
# is opened, with the tensor's name and both shapes, not run (too many rows) or ended by an
# internal check inside the model (too few).
set -u
bin=$1 h5=$2 out=$3
mkdir -p "$out"
fail() { echo "edited_file: FAIL: $*"; exit 1; }
edit() { # edit NAME ROWS-DELTA OUT.h5
  cp "$h5" "$3"
  /usr/bin/python3 - "$3" "$1" "$2" <<'PY' || exit 1
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r+")
name, delta = "tensors/" + sys.argv[2], int(sys.argv[3])
d = f[name]; a = d[()]; attrs = dict(d.attrs)
del f[name]
b = np.concatenate([a, a[:delta]], axis=0) if delta > 0 else a[:delta]
nd = f.create_dataset(name, data=b)
for k, v in attrs.items(): nd.attrs[k] = v
f.close()
PY
}
edit llm.layers.0.gate 3 "$out/rows.h5"
msg=$("$bin" chat --model "$out/rows.h5" --max-new-tokens 4 "hi" 2>&1); rc=$?
echo "$msg" | tail -2
[ $rc -ne 0 ] || fail "a tensor with 3 extra rows was accepted"
echo "$msg" | grep -q "tensor llm.layers.0.gate has shape \[163, 64\], but its config needs \[160, 64\]" || fail "message"
edit llm.lm_head -9 "$out/head.h5"
msg=$("$bin" chat --model "$out/head.h5" --max-new-tokens 4 "hi" 2>&1); rc=$?
echo "$msg" | tail -2
[ $rc -ne 0 ] || fail "an LM head with 9 rows cut was accepted"
echo "$msg" | grep -q "tensor llm.lm_head has shape" || fail "message"
echo "$msg" | grep -q "FATAL" && fail "an internal check fired instead of the message"
echo "edited_file: ok"
