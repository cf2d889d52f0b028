"""Seeds of fuzz_image_formats (corpus/fuzz_image_formats/): every WebP/GIF/BMP/TIFF variant
of tests/image/make_formats.py made from a 24x18 copy of the test photo, each prefixed with
the selector byte the target reads (decoder in bits 0-1, big-endian TIFF in bit 2, pixel
limit 2^(12 + (b >> 3) % 10) = 2^20 here).
usage: /usr/bin/python3 tests/fuzz/make_image_seeds.py   (needs imagemagick-6-doc)"""
import os
import shutil
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "image"))
import make_formats as mf  # noqa: E402

out = os.path.join(here, "corpus", "fuzz_image_formats")
os.makedirs(out, exist_ok=True)
tmp = tempfile.mkdtemp()
sel = {".webp": 0, ".gif": 1, ".bmp": 2, ".tif": 3}
n = 0
for p in mf.make_formats(tmp, size=(24, 18)):
    with open(p, "rb") as fh:
        data = fh.read()
    b = sel[os.path.splitext(p)[1]] | (8 << 3)
    if data[:2] == b"MM":
        b |= 4
    with open(os.path.join(out, os.path.basename(p)), "wb") as fh:
        fh.write(bytes([b]) + data)
    n += 1
shutil.rmtree(tmp)
print("%d seeds in %s" % (n, out))
