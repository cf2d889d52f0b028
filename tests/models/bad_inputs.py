"""`internvl forward` refuses bad input before any compute, with a clear message and no
output file: image-token count != tiles x 256 (fewer and more), a prompt longer than the
context, a token id outside the vocabulary, pixel_values of the wrong size, a model file
missing a tensor, a model file of another format version.
usage: bad_inputs.py INTERNVL DATA_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

internvl, data = sys.argv[1:3]
fails = 0


def expect(name, model, inputs, pattern, tmp):
    global fails
    out = os.path.join(tmp, "out.h5")
    p = subprocess.run([internvl, "forward", "--model", model, "--inputs", inputs, "--dump", out,
                        "--max-new-tokens", "4"], capture_output=True, text=True, timeout=120)
    msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    ok = p.returncode != 0 and pattern in p.stderr and not os.path.exists(out) and \
        not any(f.startswith("out.h5") for f in os.listdir(tmp))
    fails += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: rc {p.returncode}: {msg[:200]}")


with tempfile.TemporaryDirectory() as tmp:
    fam = "mini2b-tiny"
    model = f"{data}/h5/{fam}.h5"
    src = f"{data}/ref/{fam}/one_image.in.h5"
    with h5py.File(src) as f:
        ids = f["input_ids"][...]
        pix = f["pixel_values"][...]
    ctx_id = int(np.bincount(ids.ravel()).argmax())   # the most frequent id is <IMG_CONTEXT>

    def write(name, ids, pix=None):
        p = os.path.join(tmp, name)
        with h5py.File(p, "w") as f:
            f["input_ids"] = ids
            if pix is not None:
                f["pixel_values"] = pix
        return p

    pos = np.flatnonzero(ids == ctx_id)
    expect("one <IMG_CONTEXT> too few", model, write("few.h5", np.delete(ids, pos[0]), pix),
           "must match", tmp)
    expect("one <IMG_CONTEXT> too many", model,
           write("many.h5", np.insert(ids, pos[0], ctx_id), pix), "must match", tmp)
    expect("image tokens but no pixel_values", model, write("nopix.h5", ids), "must match", tmp)
    expect("pixel_values 224x224", model, write("small.h5", ids, pix[:, :, :224, :224].copy()),
           "pixel_values must be", tmp)
    expect("token id outside the vocabulary", model,
           write("vocab.h5", np.array([1, 5, 10 ** 6, 7], np.int64)), "outside the vocabulary", tmp)
    # mini4b-tiny: LongRoPE, 16384 positions (no dynamic extension)
    expect("prompt longer than the context", f"{data}/h5/mini4b-tiny.h5",
           write("long.h5", np.full(16400, 5, np.int64)), "exceeds the model's context", tmp)
    broken = os.path.join(tmp, "missing.h5")
    shutil.copy(model, broken)
    with h5py.File(broken, "a") as f:
        del f["tensors/llm.layers.1.down"]
    expect("model file missing a tensor", broken, write("text.h5", np.array([1, 5, 6, 7], np.int64)),
           "llm.layers.1.down", tmp)
    other = os.path.join(tmp, "v2.h5")
    shutil.copy(model, other)
    with h5py.File(other, "a") as f:
        f.attrs["format_version"] = 2
    expect("model file of another format version", other, os.path.join(tmp, "text.h5"),
           "format version", tmp)
sys.exit(1 if fails else 0)
