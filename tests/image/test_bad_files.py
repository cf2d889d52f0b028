"""Bad input to core/image: every case must give a clear error of the right kind naming the
file (image_tool prints "ERROR <kind>: <message>", exit 2), never a crash; where Pillow
decodes a damaged file anyway (corrupt JPEG scan data, missing IEND) we must give the same
pixels.
usage: test_bad_files.py IMAGE_TOOL WORKDIR"""
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_formats as mf  # noqa: E402
import make_variants as mv  # noqa: E402

tool, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = []


def check(ok, msg):
    if not ok:
        failures.append(msg)
        print("FAIL:", msg)


def write(name, data):
    p = os.path.join(work, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def decode(path):
    p = subprocess.run([tool, "decode", path, os.path.join(work, "out.rgb")], capture_output=True,
                       text=True, timeout=60)
    check(p.returncode >= 0, "%s: image_tool died with signal %d" % (path, -p.returncode))
    return p


def expect_error(path, kind):
    p = decode(path)
    line = p.stdout.strip()
    ok = p.returncode == 2 and line.startswith("ERROR %s:" % kind) and path in line
    check(ok, "%s: expected a '%s' error naming the file, got rc=%d %r %r"
          % (os.path.basename(path), kind, p.returncode, line, p.stderr[-300:]))
    return line


def pil_fails(path):
    try:
        Image.open(path).convert("RGB")
        return False
    except Exception:
        return True


def expect_same_as_pil(path):
    p = decode(path)
    check(p.returncode == 0, "%s: expected to decode (Pillow does), got %r" % (path, p.stdout))
    if p.returncode == 0:
        w, h = map(int, p.stdout.split())
        got = np.fromfile(os.path.join(work, "out.rgb"), np.uint8).reshape(h, w, 3)
        check(np.array_equal(got, np.asarray(Image.open(path).convert("RGB"))),
              "%s: pixels differ from Pillow's" % path)


base = Image.open(mv.PHOTO_DIR + "/bluebells_clipped.jpg").convert("RGB")
buf = io.BytesIO()
base.save(buf, "JPEG", quality=90)
jpg = buf.getvalue()
buf = io.BytesIO()
base.save(buf, "JPEG", quality=90, progressive=True)
pjpg = buf.getvalue()
buf = io.BytesIO()
base.save(buf, "PNG")
png = buf.getvalue()

# empty, text, missing, other formats
expect_error(write("empty.jpg", b""), "empty")
expect_error(write("notes.jpg", b"this is a caption file, not a picture\n" * 20), "not_image")
expect_error(write("random.png", bytes(np.random.RandomState(1).randint(0, 256, 5000, np.uint8))), "not_image")
expect_error(os.path.join(work, "does_not_exist.jpg"), "io")
expect_error(write("icon.ico", b"\x00\x00\x01\x00" + bytes(200)), "not_image")   # not decoded
# truncated JPEG (baseline and progressive) at several points; Pillow fails them all too
for label, data in (("baseline", jpg), ("progressive", pjpg)):
    for frac in (0.02, 0.3, 0.7, 0.99):
        p = write("trunc_%s_%d.jpg" % (label, int(frac * 100)), data[:int(len(data) * frac)])
        check(pil_fails(p), "%s: Pillow decodes it; the test's premise is wrong" % p)
        expect_error(p, "truncated")
p = write("only_soi.jpg", jpg[:3])
expect_error(p, "truncated")
# missing just the EOI marker
p = write("no_eoi.jpg", jpg[:-2])
if pil_fails(p):
    expect_error(p, "truncated")
else:
    expect_same_as_pil(p)

# corrupt JPEG: garbage in the header -> error; garbage in the scan data -> libjpeg and
# Pillow both go on with a warning, so the pixels must match Pillow's
bad = bytearray(jpg)
sof = bad.index(b"\xff\xc0")
bad[sof + 9] = 7                        # component count 3 -> 7 in SOF0
expect_error(write("bad_sof.jpg", bytes(bad)), "corrupt")
bad = bytearray(jpg)
dqt = bad.index(b"\xff\xdb")
bad[dqt + 2:dqt + 4] = b"\x00\x01"      # impossible DQT length
expect_error(write("bad_dqt.jpg", bytes(bad)), "corrupt")
bad = bytearray(jpg)
sos = bad.index(b"\xff\xda")
rng = np.random.RandomState(3)
for k in rng.randint(sos + 20, len(bad) - 10, 40):
    if 0xFF not in bad[k - 1:k + 2]:     # neither make nor break a marker
        bad[k] = rng.randint(0, 255)
p = write("scan_garbage.jpg", bytes(bad))
if pil_fails(p):
    line = decode(p)
    check(line.returncode == 2, "%s: Pillow fails it, we should too" % p)
else:
    expect_same_as_pil(p)

# oversized dimensions, found from the header before decoding
bad = bytearray(jpg)
bad[sof + 5:sof + 9] = struct.pack(">HH", 30000, 30000)     # 900 Mpixel
expect_error(write("bomb.jpg", bytes(bad)), "too_large")


def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)


bomb = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)) + \
    png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + png_chunk(b"IEND", b"")
expect_error(write("bomb.png", bomb), "too_large")

# truncated / corrupt PNG
for frac in (0.01, 0.5, 0.9):
    p = write("trunc_%d.png" % int(frac * 100), png[:max(9, int(len(png) * frac))])
    check(pil_fails(p), "%s: Pillow decodes it; the test's premise is wrong" % p)
    expect_error(p, "truncated")
p = write("no_iend.png", png[:-12])        # Pillow accepts a missing IEND
expect_same_as_pil(p)
bad = bytearray(png)
i = bad.index(b"IDAT")
bad[i + 10:i + 30] = b"\x00" * 20           # zlib stream damaged
expect_error(write("bad_zlib.png", bytes(bad)), "corrupt")
zero_w = png[:8] + png_chunk(b"IHDR", b"\x00\x00\x00\x00" + png[20:29]) + png[33:]   # width 0, valid CRC
expect_error(write("zero_width.png", zero_w), "corrupt")
bad = bytearray(png)
bad[29] ^= 0x55                             # IHDR CRC wrong
expect_error(write("bad_crc.png", bytes(bad)), "corrupt")


# ---- WebP, GIF, BMP, TIFF: truncation, bombs, corrupt headers (same rules as JPEG/PNG) ----
fdir = os.path.join(work, "formats")
os.makedirs(fdir)
made = {os.path.basename(p): p for p in mf.make_formats(fdir)}
for name in ("lossy.webp", "lossless.webp", "anim.webp", "palette.gif", "interlaced.gif",
             "rgb.bmp", "palette.bmp", "rle8.bmp", "rle4.bmp", "rgb555.bmp", "rgb_raw.tif",
             "rgb_tiff_lzw.tif", "rgb_jpeg.tif", "rgb_tiled.tif", "gray16.tif", "cmyk.tif"):
    with open(made[name], "rb") as fh:
        data = fh.read()
    for frac in (0.05, 0.5, 0.95):
        p = write("trunc_%d_%s" % (int(frac * 100), name), data[:int(len(data) * frac)])
        if pil_fails(p):
            line = expect_error(p, "truncated")
        else:
            expect_same_as_pil(p)
# later frames / pages cut off: Pillow decodes the first, so do we (same pixels)
for name in ("anim.gif", "multipage.tif"):
    with open(made[name], "rb") as fh:
        data = fh.read()
    p = write("cut_late_" + name, data[:int(len(data) * 0.8)])
    check(not pil_fails(p), "%s: Pillow fails it; the test's premise is wrong" % p)
    expect_same_as_pil(p)

# bombs: sizes from the headers, refused before decoding
with open(made["lossless.webp"], "rb") as fh:
    wl = bytearray(fh.read())
i = wl.index(b"VP8L") + 8                  # signature 0x2f, then 14-bit width-1, height-1
wl[i + 1:i + 5] = struct.pack("<I", (16383 | (16383 << 14)) | (struct.unpack("<I", bytes(wl[i + 1:i + 5]))[0] & ~((1 << 28) - 1)))
expect_error(write("bomb.webp", bytes(wl)), "too_large")
expect_error(mf.write_gif(os.path.join(work, "bomb.gif"), (60000, 60000), [{"idx": np.zeros((2, 2), np.uint8)}],
                          global_pal=[(0, 0, 0), (255, 255, 255)]), "too_large")
expect_error(mf.write_gif(os.path.join(work, "bomb_frame.gif"), (10, 10),
                          [{"idx": np.zeros((2, 2), np.uint8), "x": 65000, "y": 65000}],
                          global_pal=[(0, 0, 0), (255, 255, 255)]), "too_large")
expect_error(mf.write_bmp(os.path.join(work, "bomb.bmp"), 30000, 30000, 24, rle=b"\x00" * 64), "too_large")
expect_error(mf.write_tiff(os.path.join(work, "bomb.tif"), np.zeros((4, 4), np.uint8), 1, 8,
                           override={256: ("L", [30000]), 257: ("L", [30000])}), "too_large")
for p in ("bomb.webp", "bomb.gif", "bomb_frame.gif", "bomb.bmp", "bomb.tif"):
    check(pil_fails(os.path.join(work, p)), "%s: Pillow decodes it; the test's premise is wrong" % p)

# corrupt headers / data
with open(made["lossy.webp"], "rb") as fh:
    wb = bytearray(fh.read())
i = wb.index(b"VP8 ") + 8
wb[i + 3:i + 6] = b"\x00\x00\x00"           # VP8 frame start code destroyed
expect_error(write("bad_vp8.webp", bytes(wb)), "corrupt")
with open(made["palette.gif"], "rb") as fh:
    gb = bytearray(fh.read())
i = 13 + ((3 << ((gb[10] & 7) + 1)) if gb[10] & 0x80 else 0)   # after the global table
while gb[i] == 0x21:                         # skip extension blocks
    i += 2
    while gb[i]:
        i += gb[i] + 1
    i += 1
check(gb[i] == 0x2c, "bad_lzw.gif: image descriptor not found")
gb[i + 10] = 11                              # code size 11: giflib refuses it (> 8)
p = write("bad_lzw.gif", bytes(gb))
if pil_fails(p):
    line = decode(p)
    check(line.returncode == 2 and "ERROR " in line.stdout and p in line.stdout,
          "%s: Pillow fails it, we should give an error naming the file: %r" % (p, line.stdout))
else:
    expect_same_as_pil(p)
# LZW data that ends (end code) before the frame is full: both refuse it as truncated
idx = (np.arange(40 * 30) % 16).astype(np.uint8)
bits, gct = mf._gif_table(np.random.RandomState(0).randint(0, 256, (16, 3)))
early = b"GIF89a" + struct.pack("<HHBBB", 40, 30, 0x80 | (bits - 1) | ((bits - 1) << 4), 0, 0) + gct
early += b"\x2c" + struct.pack("<HHHHB", 0, 0, 40, 30, 0) + mf._lzw_literal(idx[:600], 8) + b"\x3b"
p = write("early_end.gif", early)
check(pil_fails(p), "%s: Pillow decodes it; the test's premise is wrong" % p)
expect_error(p, "truncated")
expect_error(write("gif_no_image.gif", b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0) + b"\x3b"), "corrupt")
with open(made["rgb.bmp"], "rb") as fh:
    bb = bytearray(fh.read())
b2 = bytearray(bb)
b2[14:18] = struct.pack("<I", 52)            # unknown header size
expect_error(write("bad_header.bmp", bytes(b2)), "unsupported")
b2 = bytearray(bb)
b2[28:30] = struct.pack("<H", 7)             # 7 bits per pixel
expect_error(write("bad_depth.bmp", bytes(b2)), "unsupported")
b2 = bytearray(bb)
b2[30:34] = struct.pack("<I", 4)             # JPEG inside BMP
expect_error(write("jpeg_in.bmp", bytes(b2)), "unsupported")
b2 = bytearray(bb)
b2[18:22] = struct.pack("<I", 0)             # width 0
expect_error(write("zero_width.bmp", bytes(b2)), "corrupt")
for p in ("bad_header.bmp", "bad_depth.bmp", "jpeg_in.bmp", "zero_width.bmp", "gif_no_image.gif", "bad_vp8.webp"):
    check(pil_fails(os.path.join(work, p)), "%s: Pillow decodes it; the test's premise is wrong" % p)
with open(made["rgb_raw.tif"], "rb") as fh:
    tb = bytearray(fh.read())
t2 = bytearray(tb)
t2[4:8] = struct.pack("<I", len(tb) + 1000)   # first IFD past the end of the file
p = write("bad_ifd.tif", bytes(t2))
line = decode(p)
check(line.returncode == 2 and line.stdout.startswith("ERROR ") and p in line.stdout,
      "%s: expected an error naming the file, got %r" % (p, line.stdout))
check(pil_fails(p), "%s: Pillow decodes it; the test's premise is wrong" % p)
expect_error(mf.write_tiff(os.path.join(work, "float.tif"), np.zeros((4, 4), np.uint16), 1, 16,
                           override={258: ("H", [32]), 339: ("H", [3])}), "unsupported")
expect_error(mf.write_tiff(os.path.join(work, "ycbcr.tif"), np.zeros((4, 4, 3), np.uint8), 6, 8), "unsupported")

if failures:
    print("%d failures" % len(failures))
    sys.exit(1)
shutil.rmtree(work, ignore_errors=True)
print("OK: bad files give clear errors")
