"""Test images for tests/image, made at test time from real photos shipped by Debian
(imagemagick-6-doc, installed by scripts/install-deps.sh --tests) with Pillow, plus PNG
variants Pillow cannot write (16-bit RGB, 1/2/4-bit, Adam7 interlace, tRNS) from a small
PNG writer below."""
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

PHOTO_DIR = "/usr/share/doc/imagemagick-6-common/html/images"
MAGICKPP_DIR = "/usr/share/doc/imagemagick-6-common/html/www/Magick++"

# Real photos and drawings of several sizes, aspect ratios and modes (JPEG baseline and
# progressive, gray JPEG, RGBA/P/1-bit PNG, big ones that get downscaled).
PHOTOS = [
    PHOTO_DIR + "/bluebells_clipped.jpg",      # 384x288 photo
    PHOTO_DIR + "/bluebells_log.jpg",
    PHOTO_DIR + "/wizard.jpg",                 # 265x352 progressive
    PHOTO_DIR + "/examples.jpg",               # 794x3352, tall, downscaled
    PHOTO_DIR + "/configure.jpg",              # 502x479
    PHOTO_DIR + "/objects.jpg",                # grayscale JPEG
    PHOTO_DIR + "/rose.jpg",                   # 70x46
    PHOTO_DIR + "/frame.jpg",
    MAGICKPP_DIR + "/thumbnail-sample-plain.jpg",   # progressive
    MAGICKPP_DIR + "/montage-sample-framed.jpg",
    PHOTO_DIR + "/wizard.png",                 # 1104x1468 RGBA
    PHOTO_DIR + "/logo.png",                   # 2135x2048 RGBA
    PHOTO_DIR + "/julia-set.png",
    PHOTO_DIR + "/gaussian-blur.png",          # palette
    PHOTO_DIR + "/black.png",                  # 1-bit
    PHOTO_DIR + "/piechart.png",
    PHOTO_DIR + "/objects.png",                # L
]


def missing_photos():
    return [p for p in PHOTOS if not os.path.exists(p)]


def _chunk(tag, data):
    c = tag + data
    return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xffffffff)


def _pack(vals, depth):
    """One row of samples -> PNG bytes (big endian 16-bit, or packed 1/2/4-bit)."""
    if depth == 16:
        return vals.astype(">u2").tobytes()
    if depth == 8:
        return vals.astype(np.uint8).tobytes()
    bits = np.unpackbits(vals.astype(np.uint8).reshape(-1, 1), axis=1)[:, 8 - depth:]
    return np.packbits(bits.reshape(-1)).tobytes()


def write_png(path, img, color_type, depth, plte=None, trns=None, interlace=False):
    """img: (h, w) or (h, w, channels) samples already in the range of `depth`."""
    img = np.asarray(img)
    h, w = img.shape[:2]
    flat = img.reshape(h, w, -1)

    def scan(sub):
        out = b""
        for row in sub:
            out += b"\x00" + _pack(row.reshape(-1), depth)
        return out

    if interlace:
        raw = b""
        for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                               (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
            sub = flat[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += scan(sub)
    else:
        raw = scan(flat)
    data = b"\x89PNG\r\n\x1a\n"
    data += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0))
    if plte is not None:
        data += _chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).reshape(-1)))
    if trns is not None:
        data += _chunk(b"tRNS", trns)
    data += _chunk(b"IDAT", zlib.compress(raw, 6))
    data += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)
    return path


def strip_app14(jpeg_bytes):
    """Removes the Adobe APP14 segment (so a CMYK JPEG has no Adobe marker)."""
    out, i = bytearray(jpeg_bytes[:2]), 2
    while i < len(jpeg_bytes):
        marker = jpeg_bytes[i + 1]
        if marker == 0xDA:          # start of scan: copy the rest
            out += jpeg_bytes[i:]
            break
        n = struct.unpack(">H", jpeg_bytes[i + 2:i + 4])[0]
        if marker != 0xEE:
            out += jpeg_bytes[i:i + 2 + n]
        i += 2 + n
    return bytes(out)


def make_variants(d):
    """Writes the decoding variants and geometric extremes into directory d; returns paths."""
    base = Image.open(PHOTO_DIR + "/bluebells_clipped.jpg").convert("RGB")   # 384x288
    tall_src = Image.open(PHOTO_DIR + "/examples.jpg").convert("RGB")          # 794x3352
    a = np.asarray(base)
    h, w = a.shape[:2]
    gray = np.asarray(base.convert("L"))
    rng = np.random.RandomState(7)
    paths = []

    def save(name, im, **kw):
        p = os.path.join(d, name)
        im.save(p, **kw)
        paths.append(p)

    # JPEG variants
    save("gray.jpg", base.convert("L"), quality=90)
    save("progressive.jpg", base, quality=90, progressive=True)
    save("sub444.jpg", base, quality=95, subsampling=0)
    save("sub422.jpg", base, quality=80, subsampling=1)
    save("sub420_q30.jpg", base, quality=30, subsampling=2)
    save("odd_size.jpg", base.crop((3, 5, 3 + 301, 5 + 207)), quality=85)   # odd dims, 4:2:0
    save("cmyk_adobe.jpg", base.convert("CMYK"), quality=90)
    buf = io.BytesIO()
    base.convert("CMYK").save(buf, "JPEG", quality=90)
    p = os.path.join(d, "cmyk_no_adobe.jpg")
    with open(p, "wb") as f:
        f.write(strip_app14(buf.getvalue()))
    paths.append(p)
    # a JPEG named .png: the content decides
    p = os.path.join(d, "really_a_jpeg.png")
    base.save(p, "JPEG", quality=88)
    paths.append(p)

    # PNG variants Pillow writes
    save("rgb.png", base)
    save("gray8.png", base.convert("L"))
    rgba = base.copy()
    rgba.putalpha(Image.fromarray((np.arange(w)[None, :] * 255 // w * np.ones((h, 1))).astype(np.uint8)))
    save("rgba.png", rgba)
    save("la.png", rgba.convert("LA"))
    save("palette.png", base.convert("P", palette=Image.ADAPTIVE, colors=64), transparency=3)
    g16 = (gray.astype(np.uint16) * 257)
    g16[:40] = gray[:40] // 2            # some values below 255 (Pillow keeps them as is)
    save("gray16.png", Image.fromarray(g16, "I;16"))

    # PNG variants from the writer above
    a16 = a.astype(np.uint16) * 257 + rng.randint(0, 257, a.shape).astype(np.uint16)
    alpha16 = rng.randint(0, 65536, (h, w, 1)).astype(np.uint16)
    paths.append(write_png(os.path.join(d, "rgb16.png"), a16, 2, 16))
    paths.append(write_png(os.path.join(d, "rgba16.png"), np.concatenate([a16, alpha16], 2), 6, 16))
    paths.append(write_png(os.path.join(d, "la16.png"),
                           np.stack([a16[..., 0], alpha16[..., 0]], 2), 4, 16))
    for depth in (1, 2, 4):
        paths.append(write_png(os.path.join(d, "gray%d.png" % depth), gray >> (8 - depth), 0, depth))
    pal = rng.randint(0, 256, (16, 3))
    idx = (gray >> 4).astype(np.uint8)
    paths.append(write_png(os.path.join(d, "palette4_trns.png"), idx, 3, 4, plte=pal,
                           trns=bytes(range(0, 160, 10))))
    paths.append(write_png(os.path.join(d, "rgb_trns.png"), a, 2, 8, trns=struct.pack(">HHH", 10, 20, 30)))
    paths.append(write_png(os.path.join(d, "interlaced_rgb.png"), a, 2, 8, interlace=True))
    paths.append(write_png(os.path.join(d, "interlaced_gray2.png"), gray[:101, :77] >> 6, 0, 2,
                           interlace=True))
    paths.append(write_png(os.path.join(d, "interlaced_rgba16.png"),
                           np.concatenate([a16, alpha16], 2)[:37, :53], 6, 16, interlace=True))

    # geometry: very wide, very tall, tiny (crops/resizes of the photos, saved as PNG)
    save("wide.png", tall_src.crop((0, 1000, 794, 1040)).resize((3000, 40)))
    save("very_wide.png", base.resize((4000, 9)))
    save("tall.png", tall_src.crop((100, 0, 130, 3352)))
    save("very_tall.png", tall_src.resize((7, 3352)))
    save("tiny_1x1.png", base.resize((1, 1)))
    save("tiny_2x3.png", base.resize((2, 3)))
    save("tiny_7x1.png", base.resize((7, 1)))
    save("square_448.png", base.resize((448, 448)))
    save("exact_2x1.png", base.resize((896, 448)))
    save("big_photo.jpg", base.resize((1920, 1440)), quality=90)
    return paths
