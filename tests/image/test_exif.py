"""EXIF orientation vs Pillow (python3-pil): for every orientation 1..8, an absent tag and
values Pillow has no transposition for (0, 9, a SHORT pair), in JPEG (APP1), PNG (eXIf,
zTXt "Raw profile type exif" as ImageMagick writes it, iTXt XMP tiff:Orientation, XMP with an
eXIf that has no orientation), WebP (EXIF chunk) and TIFF (the IFD's own tag; Pillow's TIFF
loader applies it on open, so for TIFF both commands must equal the plain Pillow load):
  image_tool decode-exif == ImageOps.exif_transpose(Image.open(f)).convert('RGB'), bit for bit;
  image_tool decode      == Image.open(f).convert('RGB') (off by default, as the reference).
usage: test_exif.py IMAGE_TOOL WORKDIR"""
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_variants as mv  # noqa: E402

tool, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = []


def check(ok, msg):
    if not ok:
        failures.append(msg)
        print("FAIL:", msg)


def exif_bytes(orientation, big_endian=False):
    """A minimal EXIF TIFF block with tag 0x0112 (SHORT) or without it (None); a tuple
    gives a SHORT array."""
    bo = ">" if big_endian else "<"
    entries = [(0x010F, 2, 4, b"cam\x00")]        # Make, so the IFD is never empty
    if orientation is not None:
        if isinstance(orientation, tuple):
            entries.append((0x0112, 3, len(orientation), struct.pack(bo + "HH", *orientation)))
        else:
            entries.append((0x0112, 3, 1, struct.pack(bo + "H", orientation) + b"\x00\x00"))
    out = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(bo + "I", 8)
    out += struct.pack(bo + "H", len(entries))
    for tag, typ, cnt, val in entries:
        out += struct.pack(bo + "HHI", tag, typ, cnt) + val[:4].ljust(4, b"\x00")
    return b"Exif\x00\x00" + out + b"\x00\x00\x00\x00"


def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)


def png_with(chunks_after_ihdr, im):
    b = io.BytesIO()
    im.save(b, "PNG")
    d = b.getvalue()
    return d[:33] + b"".join(chunks_after_ihdr) + d[33:]


base = Image.open(mv.PHOTO_DIR + "/bluebells_clipped.jpg").convert("RGB").crop((10, 20, 71, 57))  # 61x37
files = []


def save(name, data):
    p = os.path.join(work, name)
    with open(p, "wb") as f:
        f.write(data)
    files.append(p)


for o in list(range(1, 9)) + [None, 0, 9, (6, 6)]:
    tag = "none" if o is None else "pair" if isinstance(o, tuple) else str(o)
    ex = exif_bytes(o, big_endian=(tag in ("3", "6")))
    for fmt, ext in (("JPEG", "jpg"), ("WEBP", "webp"), ("TIFF", "tif")):
        b = io.BytesIO()
        kw = {"quality": 90} if fmt != "TIFF" else {}
        base.save(b, fmt, exif=ex, **kw)
        save("o%s.%s" % (tag, ext), b.getvalue())
    save("o%s_exif.png" % tag, png_with([chunk(b"eXIf", ex[6:])], base))
    hexs = ex.hex()
    raw = "\nexif\n%8d\n" % len(ex) + "\n".join(hexs[i:i + 72] for i in range(0, len(hexs), 72)) + "\n"
    save("o%s_rawprofile.png" % tag, png_with([chunk(b"zTXt", b"Raw profile type exif\x00\x00" +
                                                     zlib.compress(raw.encode()))], base))
    if isinstance(o, int) and 0 <= o <= 9:
        for style, xmp in (("attr", '<x:xmpmeta><rdf:Description tiff:Orientation="%d"/></x:xmpmeta>' % o),
                           ("elem", "<x:xmpmeta><tiff:Orientation>%d</tiff:Orientation></x:xmpmeta>" % o)):
            it = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp.encode()
            save("o%s_xmp_%s.png" % (tag, style), png_with([chunk(b"iTXt", it)], base))
        # XMP used only when the EXIF block has no orientation
        save("o%s_xmp_after_exif.png" % tag, png_with([chunk(b"eXIf", exif_bytes(None)[6:]),
              chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" +
                    ('<d tiff:Orientation="%d"/>' % o).encode())], base))
# JPEG with two Exif APP1 segments: the first decides
b = io.BytesIO()
base.save(b, "JPEG", quality=90, exif=exif_bytes(6))
d = b.getvalue()
second = exif_bytes(3)
seg = b"\xff\xe1" + struct.pack(">H", len(second) + 2) + second
i = d.index(b"\xff\xdb")
save("two_app1.jpg", d[:i] + seg + d[i:])

applied = 0
for f in files:
    name = os.path.basename(f)
    im = Image.open(f)
    try:
        # Pillow's TIFF loader applies the Orientation already; its exif_transpose then
        # transposes again (a Pillow 9.4 bug we do not copy): upright is the plain load
        want = np.asarray((Image.open(f) if f.endswith(".tif") else ImageOps.exif_transpose(im)).convert("RGB"))
    except Exception as e:          # Pillow cannot parse the EXIF block: we do not transpose
        want = np.asarray(Image.open(f).convert("RGB"))
        print("note: %s: Pillow's exif_transpose raised %r; expecting no transposition" % (name, e))
    plain = np.asarray(Image.open(f).convert("RGB"))
    applied += not np.array_equal(want, plain) or want.shape != plain.shape
    for cmd, ref in (("decode-exif", want), ("decode", plain)):
        p = subprocess.run([tool, cmd, f, os.path.join(work, "o.rgb")], capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "%s %s: %s" % (cmd, name, p.stdout + p.stderr))
        if p.returncode:
            continue
        w, h = map(int, p.stdout.split()[:2])
        got = np.fromfile(os.path.join(work, "o.rgb"), np.uint8).reshape(h, w, 3)
        check(got.shape == ref.shape and np.array_equal(got, ref),
              "%s %s: differs from Pillow (%s vs %s)" % (cmd, name, got.shape, ref.shape))
print("%d files, %d transposed by Pillow, all compared bit for bit" % (len(files), applied))
check(applied >= 7 * 5, "only %d files were transposed: the test lost its cases" % applied)
if failures:
    print("%d failures" % len(failures))
    sys.exit(1)
shutil.rmtree(work, ignore_errors=True)
print("OK")
