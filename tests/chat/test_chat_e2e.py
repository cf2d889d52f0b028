"""`internvl chat` end to end against the Python pipeline (issue 4 (e)).

For a test checkpoint and a real photo, the Python side builds what the official pipeline
would feed the model, independently of the engine:
  pixel values  tests/image/preprocess_ref.py (PIL bicubic dynamic tiling + torch normalise),
  prompt ids    tests/text: the InternVL template (spec 8.1/8.2) + the HF slow tokenizer rules,
  tokens        tests/reference/internvl_ref.py (greedy, stop at the template separator),
  answer text   the HF slow-tokenizer decode of those tokens (skip special).
Then `internvl chat` runs under a pseudo-terminal (as a user sees it) and must
  - stream exactly that answer text (plus the final newline),
  - dump pixel_values bit-identical, input_ids identical, generated_ids identical.

usage: test_chat_e2e.py INTERNVL HF_DIR MODEL_H5 IMAGE MAX_TILES
"""
import os
import pty
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for sub in ("image", "text", "reference"):
    sys.path.insert(0, os.path.join(TESTS, sub))
import preprocess_ref  # noqa: E402
from hf_slow_ref import SlowTokenizer  # noqa: E402
from test_chat import TEMPLATES, build_query  # noqa: E402

QUESTION = "Describe this picture in detail. 图中有什么？"
MAX_NEW = 24


def run_under_pty(cmd):
    """Runs cmd with stdout on a pseudo-terminal; returns everything it wrote there."""
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 4096)
        except OSError:   # EIO: the child closed the terminal
            break
        if not b:
            break
        chunks.append(b)
    err = p.stderr.read().decode(errors="replace")
    rc = p.wait()
    os.close(master)
    if rc != 0:
        sys.exit(f"internvl chat failed (rc {rc}):\n{err}")
    # the terminal turns \n into \r\n
    return b"".join(chunks).replace(b"\r\n", b"\n")


def main():
    internvl, hf, model, image_path, max_tiles = sys.argv[1:6]
    max_tiles = int(max_tiles)
    import json
    cfg = json.load(open(os.path.join(hf, "config.json")))
    tname = cfg["template"]
    tok = SlowTokenizer(hf)

    img = Image.open(image_path).convert("RGB")
    tiles, grid = preprocess_ref.dynamic_preprocess(img, 1, max_tiles, 448, True)
    pixels = torch.stack([preprocess_ref.to_tensor_normalize(t) for t in tiles]).numpy()
    query = build_query(tname, {"question": QUESTION, "tiles": [len(tiles)]})
    ids = tok.encode(query, add_special=True)
    print(f"{image_path}: {img.size[0]}x{img.size[1]} -> grid {grid}, {len(tiles)} tiles, "
          f"{len(ids)} prompt ids")

    with tempfile.TemporaryDirectory() as tmp:
        inp, ref_out, dump = (os.path.join(tmp, n) for n in ("in.h5", "ref.h5", "dump.h5"))
        with h5py.File(inp, "w") as f:
            f["input_ids"] = np.array(ids, np.int64)
            f["pixel_values"] = pixels.astype(np.float32)
        subprocess.run([sys.executable, os.path.join(TESTS, "reference", "internvl_ref.py"),
                        "--hf", hf, "--inputs", inp, "--out", ref_out,
                        "--max-new-tokens", str(MAX_NEW)], check=True)
        with h5py.File(ref_out) as f:
            ref_ids = [int(t) for t in f["generated_ids"][0] if t >= 0]
            stop = int(f.attrs["stop_id"])
        answer_ids = ref_ids[:-1] if ref_ids and ref_ids[-1] == stop else ref_ids
        expected = tok.decode(answer_ids, skip_special=True)

        out = run_under_pty([internvl, "chat", "--model", model, "--image", image_path,
                             "--max-tiles", str(max_tiles), "--max-new-tokens", str(MAX_NEW),
                             "--dump", dump, QUESTION])
        with h5py.File(dump) as f:
            e_pix = f["pixel_values"][...]
            e_ids = f["input_ids"][0].tolist()
            e_gen = [int(t) for t in f["generated_ids"][0] if t >= 0]

    fails = []
    if e_pix.shape != pixels.shape or not np.array_equal(e_pix, pixels):
        diff = np.abs(e_pix - pixels).max() if e_pix.shape == pixels.shape else "shape"
        fails.append(f"pixel_values differ from PIL+torch (max diff {diff})")
    if e_ids != ids:
        first = next((i for i, (a, b) in enumerate(zip(e_ids, ids)) if a != b), min(len(e_ids), len(ids)))
        fails.append(f"input_ids differ at {first} (engine {len(e_ids)} ids, python {len(ids)})")
    if e_gen != ref_ids:
        fails.append(f"generated ids differ: engine {e_gen} reference {ref_ids}")
    if out != (expected + "\n").encode():
        fails.append(f"streamed text differs:\n  engine   {out!r}\n  expected {(expected + chr(10)).encode()!r}")
    for f in fails:
        print("FAIL", f)
    if fails:
        sys.exit(1)
    print(f"ok: pixels bit-exact, {len(ids)} prompt ids equal, {len(ref_ids)} tokens equal, "
          f"streamed {len(out)} bytes equal")


if __name__ == "__main__":
    main()
