"""core/image vs Pillow (python3-pil) + torch, bit for bit.

For every real photo (Debian's imagemagick-6-doc) and every variant made from them at test
time (make_variants.py: gray, CMYK with and without Adobe marker, progressive, subsampled,
palette/tRNS, 1/2/4/16-bit, RGBA/LA, interlaced PNG, very wide/tall/tiny; make_formats.py:
WebP lossy/lossless/alpha/animated, GIF palettes/frames/interlace/transparency, BMP 1-32 bit,
bitfields, RLE, OS/2, top-down, TIFF 1-16 bit gray/RGB/palette/CMYK, tiled, planar,
compressed, multi-page), plus the GIFs bundled with imagemagick-6-doc:
  (c) decoded RGB == Image.open(f).convert('RGB')
  (b) the uint8 tiles of dynamic_preprocess == Pillow's tiles (max_num 12, and 6/40 for some),
      the float32 tensors == torch ToTensor+Normalize exactly, bf16 == .to(torch.bfloat16);
  plus Pillow BICUBIC resizes to assorted sizes (up, down, one axis only).
usage: test_pil_parity.py IMAGE_TOOL WORKDIR"""
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_formats as mf  # noqa: E402
import make_variants as mv  # noqa: E402
import preprocess_ref as ref  # noqa: E402

tool, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
missing = mv.missing_photos()
if missing:
    sys.exit("missing test photos %s: run scripts/install-deps.sh --tests (imagemagick-6-doc)" % missing)

failures = []


def check(ok, msg):
    if not ok:
        failures.append(msg)
        print("FAIL:", msg)


def run(args):
    p = subprocess.run([tool] + args, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        return None, p.stdout + p.stderr
    return p.stdout, None


def first_diff(a, b):
    if a.shape != b.shape:
        return "shapes %s vs %s" % (a.shape, b.shape)
    d = np.argwhere(a != b)
    if len(d) == 0:
        return "equal"
    return "%d differing values, first at %s: %s vs %s" % (len(d), tuple(d[0]), a[tuple(d[0])], b[tuple(d[0])])


files = list(mv.PHOTOS) + mv.make_variants(work) + mf.make_formats(work) + mf.bundled_gifs()
rng = random.Random(5)
ntiles_total = 0
for f in files:
    name = os.path.relpath(f, work) if f.startswith(work) else os.path.basename(f)
    pil = Image.open(f).convert("RGB")
    want = np.asarray(pil)
    # (c) decoding
    out, err = run(["decode", f, os.path.join(work, "dec.rgb")])
    check(err is None, "%s: decode failed: %s" % (name, err))
    if err:
        continue
    W, H = map(int, out.split())
    got = np.fromfile(os.path.join(work, "dec.rgb"), np.uint8)
    check((W, H) == pil.size, "%s: size %dx%d, PIL %s" % (name, W, H, pil.size))
    got = got.reshape(H, W, 3)
    check(np.array_equal(got, want), "%s: RGB differs from PIL convert('RGB') (mode %s): %s"
          % (name, Image.open(f).mode, first_diff(got, want)))

    # (b) tiles + tensors
    # max_num 12 (the config's) for the photos, 6 for the variants (fewer tiles, same code),
    # and 40 (most candidates) for two.
    if name in ("bluebells_clipped.jpg", "examples.jpg"):
        max_nums = [12, 6, 40]
    else:
        max_nums = [6] if f.startswith(work) else [12]
    for max_num in max_nums:
        prefix = os.path.join(work, "t")
        out, err = run(["tiles", f, str(max_num), prefix])
        check(err is None, "%s: tiles failed: %s" % (name, err))
        if err:
            continue
        cols, rows, nt = map(int, out.split())
        tiles, (rc, rr) = ref.dynamic_preprocess(pil, 1, max_num, 448, True)
        check((cols, rows, nt) == (rc, rr, len(tiles)),
              "%s max=%d: grid %dx%d (%d tiles), reference %dx%d (%d)" % (name, max_num, cols, rows, nt, rc, rr, len(tiles)))
        if nt != len(tiles):
            continue
        ntiles_total += nt
        u8 = np.fromfile(prefix + ".u8", np.uint8).reshape(nt, 448, 448, 3)
        want_u8 = np.stack([np.asarray(t) for t in tiles])
        check(np.array_equal(u8, want_u8), "%s max=%d: uint8 tiles differ from PIL: %s" % (name, max_num, first_diff(u8, want_u8)))
        want_f = torch.stack([ref.to_tensor_normalize(t) for t in tiles])
        f32 = np.fromfile(prefix + ".f32", np.float32).reshape(nt, 3, 448, 448)
        check(np.array_equal(f32.view(np.uint32), want_f.numpy().view(np.uint32)),
              "%s max=%d: float32 tensor differs from torch: %s" % (name, max_num, first_diff(f32, want_f.numpy())))
        bf = np.fromfile(prefix + ".bf16", np.uint16).reshape(nt, 3, 448, 448)
        want_bf = want_f.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        check(np.array_equal(bf, want_bf), "%s max=%d: bf16 tensor differs from torch .to(bfloat16)" % (name, max_num))

    if os.path.splitext(f)[1] in mf.NEW_EXTS:
        continue        # the resizes below do not depend on the format: JPEG/PNG cover them
    # extra resizes: down by odd factors, up, one axis only, to 1 pixel
    sizes = [(max(1, W // 3 + 1), max(1, H // 2 + 3)), (W * 2 + 1, H + 7), (W, max(1, H // 5)),
             (max(1, W // 7), H), (1, 1), (rng.randint(1, 1000), rng.randint(1, 1000))]
    for (rw, rh) in sizes[:3] if W * H > 1e6 else sizes:
        out, err = run(["resize", f, str(rw), str(rh), os.path.join(work, "r.rgb")])
        check(err is None, "%s: resize failed: %s" % (name, err))
        if err:
            continue
        got = np.fromfile(os.path.join(work, "r.rgb"), np.uint8).reshape(rh, rw, 3)
        want_r = np.asarray(pil.resize((rw, rh), Image.BICUBIC))
        check(np.array_equal(got, want_r), "%s: resize to %dx%d differs from PIL: %s" % (name, rw, rh, first_diff(got, want_r)))

print("%d images, %d tiles compared bit for bit" % (len(files), ntiles_total))
by_ext = {}
for f in files:
    e = os.path.splitext(f)[1].lower()
    by_ext[e] = by_ext.get(e, 0) + 1
print("per extension:", ", ".join("%s %d" % kv for kv in sorted(by_ext.items())))
if failures:
    print("%d failures" % len(failures))
    sys.exit(1)
shutil.rmtree(work, ignore_errors=True)
print("OK")
