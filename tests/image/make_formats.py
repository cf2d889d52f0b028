"""WebP, GIF, BMP and TIFF test images for tests/image, made at test time from a real photo
(Debian's imagemagick-6-doc): the files Pillow writes itself, plus small writers below for
the layouts Pillow cannot write (GIF with short/local palettes, frame offsets, out-of-range
indices; BMP 16/32-bit, bitfields, RLE4/RLE8, OS/2 and top-down; TIFF 16-bit RGB/RGBA/CMYK,
big-endian, tiled, planar, min-is-white, 2/4-bit, signed, associated alpha)."""
import io
import os
import struct

import numpy as np
from PIL import Image

import make_variants as mv

NEW_EXTS = (".webp", ".gif", ".bmp", ".tif", ".tiff")


def bundled_gifs():
    """The GIFs ImageMagick's docs ship (written by ImageMagick, not by Pillow)."""
    return sorted(os.path.join(mv.PHOTO_DIR, n) for n in os.listdir(mv.PHOTO_DIR) if n.endswith(".gif"))


# ---------------------------------------------------------------------------------------
# GIF writer: LZW with a clear code before the table would grow (every code is one literal
# at the initial code size + 1 bits), so any index pattern can be written.


def _lzw_literal(idx, min_code):
    clear, eoi = 1 << min_code, (1 << min_code) + 1
    width = min_code + 1
    # a clear code every (2^width - eoi - 2) literals keeps the code width fixed
    per = (1 << width) - eoi - 2
    codes = []
    for i, v in enumerate(idx):
        if i % per == 0:
            codes.append(clear)
        codes.append(int(v))
    codes.append(eoi)
    acc = nbits = 0
    out = bytearray()
    for c in codes:
        acc |= c << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 255)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 255)
    blocks = bytearray([min_code])
    for i in range(0, len(out), 255):
        blocks += bytes([len(out[i:i + 255])]) + out[i:i + 255]
    return bytes(blocks + b"\x00")


def _gif_table(pal):
    pal = np.asarray(pal, np.uint8).reshape(-1, 3)
    bits = max(1, int(np.ceil(np.log2(len(pal)))))
    full = np.zeros((1 << bits, 3), np.uint8)
    full[:len(pal)] = pal
    return bits, full.tobytes()


def write_gif(path, screen, frames, global_pal=None, background=0):
    """frames: list of dicts idx (h, w uint8), x, y, local_pal, interlace, transparency."""
    sw, sh = screen
    flags, gct = 0, b""
    if global_pal is not None:
        bits, gct = _gif_table(global_pal)
        flags = 0x80 | (bits - 1) | ((bits - 1) << 4)
    data = b"GIF89a" + struct.pack("<HHBBB", sw, sh, flags, background, 0) + gct
    for f in frames:
        idx = np.asarray(f["idx"], np.uint8)
        h, w = idx.shape
        if f.get("transparency") is not None:
            data += b"\x21\xf9\x04" + struct.pack("<BHB", 1, 10, f["transparency"]) + b"\x00"
        lflags, lct = 0, b""
        if f.get("local_pal") is not None:
            bits, lct = _gif_table(f["local_pal"])
            lflags = 0x80 | (bits - 1)
        rows = np.arange(h)
        if f.get("interlace"):
            lflags |= 0x40
            rows = np.concatenate([rows[0::8], rows[4::8], rows[2::4], rows[1::2]])
        data += b"\x2c" + struct.pack("<HHHHB", f.get("x", 0), f.get("y", 0), w, h, lflags) + lct
        data += _lzw_literal(idx[rows].reshape(-1), max(2, f.get("min_code", 8)))
    data += b"\x3b"
    with open(path, "wb") as fh:
        fh.write(data)
    return path


# ---------------------------------------------------------------------------------------
# BMP writer


def write_bmp(path, w, h, bits, rows_bytes=None, pal=None, header=40, compression=0,
              masks=None, topdown=False, colors=None, rle=None):
    """rows_bytes: list of h row byte strings in file order (padded here); rle: raw RLE bytes."""
    if rle is not None:
        pix = rle
    else:
        stride = ((w * bits + 31) >> 3) & ~3
        pix = b"".join(r + b"\x00" * (stride - len(r)) for r in rows_bytes)
    pal_bytes = b""
    if pal is not None:
        ent = 3 if header == 12 else 4
        pal_bytes = b"".join(bytes([c[2], c[1], c[0]]) + (b"\x00" if ent == 4 else b"") for c in pal)
    if header == 12:
        hd = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        hd = struct.pack("<IiiHHIIiiII", header, w, -h if topdown else h, 1, bits, compression,
                         len(pix), 2835, 2835, colors if colors is not None else 0, 0)
        if header >= 56:
            m = list(masks or (0, 0, 0, 0)) + [0] * 4
            hd += struct.pack("<IIII", *m[:4])
        hd += b"\x00" * (header - len(hd))
    extra = b""
    if compression == 3 and header == 40:
        extra = struct.pack("<III", *masks[:3])
    off = 14 + len(hd) + len(extra) + len(pal_bytes)
    data = b"BM" + struct.pack("<IHHI", off + len(pix), 0, 0, off) + hd + extra + pal_bytes + pix
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _rle8(idx):
    """Row-wise RLE8 (bottom-up rows): runs of equal values, absolute runs for variety, EOL."""
    out = bytearray()
    h, w = idx.shape
    for r in range(h - 1, -1, -1):
        row = idx[r]
        x = 0
        while x < w:
            n = 1
            while x + n < w and n < 255 and row[x + n] == row[x]:
                n += 1
            if n >= 3 or w - x < 3:
                out += bytes([n, row[x]])
                x += n
            else:
                k = min(w - x, 40)
                out += bytes([0, k]) + bytes(row[x:x + k])
                if k % 2:
                    out += b"\x00"
                x += k
        out += b"\x00\x00"
    return bytes(out + b"\x00\x01")


def _rle4(idx):
    out = bytearray()
    h, w = idx.shape
    for r in range(h - 1, -1, -1):
        row = idx[r]
        x = 0
        while x < w:
            if x + 1 < w and row[x] == row[x + 1]:
                n = 2
                while x + n < w and n < 255 and row[x + n] == row[x]:
                    n += 1
                out += bytes([n, (row[x] << 4) | row[x]])
                x += n
            elif w - x >= 8:
                k = 8                               # absolute run of 8 nibbles = 4 bytes
                out += bytes([0, k]) + bytes((row[x + i] << 4) | row[x + i + 1] for i in range(0, k, 2))
                x += k
            else:
                n = min(2, w - x)
                b2 = row[x + 1] if n == 2 else 0
                out += bytes([n, (row[x] << 4) | b2])
                x += n
        out += b"\x00\x00"
    # a delta escape at the very end is not used: Pillow reads 4 bytes for it
    return bytes(out + b"\x00\x01")


# ---------------------------------------------------------------------------------------
# TIFF writer: uncompressed, strips or tiles, contiguous or planar


def write_tiff(path, planes, photometric, bits, big_endian=False, tile=None, planar=1,
               extra=None, sample_format=None, colormap=None, override=None):
    """planes: (h, w, spp) array of sample values (spp >= 1); bits 1/2/4/8/16. override:
    {tag: ("H" or "L", [values])} written as given (bad files)."""
    a = np.asarray(planes)
    if a.ndim == 2:
        a = a[..., None]
    h, w, spp = a.shape
    bo = ">" if big_endian else "<"

    def pack_rows(arr):   # arr (rows, cols, n) -> bytes, rows byte aligned
        out = b""
        for row in arr:
            v = row.reshape(-1)
            if bits == 16:
                out += v.astype(bo + "u2").tobytes()
            elif bits == 8:
                out += v.astype(np.uint8).tobytes()
            else:
                b = np.unpackbits(v.astype(np.uint8).reshape(-1, 1), axis=1)[:, 8 - bits:]
                out += np.packbits(b.reshape(-1)).tobytes()
        return out

    chunks = []
    if tile:
        tw, th = tile
        for p in (range(spp) if planar == 2 else [None]):
            for ty in range(0, h, th):
                for tx in range(0, w, tw):
                    blk = np.zeros((th, tw, 1 if p is not None else spp), a.dtype)
                    src = a[ty:ty + th, tx:tx + tw] if p is None else a[ty:ty + th, tx:tx + tw, p:p + 1]
                    blk[:src.shape[0], :src.shape[1]] = src
                    chunks.append(pack_rows(blk))
    else:
        rps = max(1, h // 3)
        for p in (range(spp) if planar == 2 else [None]):
            for y in range(0, h, rps):
                src = a[y:y + rps] if p is None else a[y:y + rps, :, p:p + 1]
                chunks.append(pack_rows(src))
    tags = {256: ("L", [w]), 257: ("L", [h]), 258: ("H", [bits] * spp), 259: ("H", [1]),
            262: ("H", [photometric]), 277: ("H", [spp]), 284: ("H", [planar])}
    if extra:
        tags[338] = ("H", list(extra))
    if sample_format:
        tags[339] = ("H", [sample_format] * spp)
    if colormap is not None:
        tags[320] = ("H", list(np.asarray(colormap, np.uint16).T.reshape(-1)))
    if tile:
        tags[322] = ("L", [tile[0]])
        tags[323] = ("L", [tile[1]])
        off_tag, cnt_tag = 324, 325
    else:
        tags[278] = ("L", [max(1, h // 3)])
        off_tag, cnt_tag = 273, 279
    tags.update(override or {})
    # layout: header, pixel chunks, then the IFD and its out-of-line values
    body = b"".join(chunks)
    offs, pos = [], 8
    for c in chunks:
        offs.append(pos)
        pos += len(c)
    tags[off_tag] = ("L", offs)
    tags[cnt_tag] = ("L", [len(c) for c in chunks])
    ifd_pos = 8 + len(body)
    ifd_pos += ifd_pos % 2
    n = len(tags)
    ext_pos = ifd_pos + 2 + 12 * n + 4
    entries, ext = b"", b""
    for tag in sorted(tags):
        typ, vals = tags[tag]
        code, size = (3, 2) if typ == "H" else (4, 4)
        raw = struct.pack(bo + typ * len(vals), *vals)
        if len(raw) <= 4:
            entries += struct.pack(bo + "HHI", tag, code, len(vals)) + raw + b"\x00" * (4 - len(raw))
        else:
            entries += struct.pack(bo + "HHII", tag, code, len(vals), ext_pos + len(ext))
            ext += raw
            if len(ext) % 2:
                ext += b"\x00"
    head = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(bo + "I", ifd_pos)
    data = head + body + b"\x00" * (ifd_pos - 8 - len(body))
    data += struct.pack(bo + "H", n) + entries + struct.pack(bo + "I", 0) + ext
    with open(path, "wb") as fh:
        fh.write(data)
    return path


# ---------------------------------------------------------------------------------------


def make_formats(d, size=None):
    """Writes WebP/GIF/BMP/TIFF variants into d; returns their paths. size=(w, h) shrinks the
    photo first (the fuzz seeds of tests/fuzz/make_image_seeds.py)."""
    base = Image.open(mv.PHOTO_DIR + "/bluebells_clipped.jpg").convert("RGB")     # 384x288
    if size:
        base = base.resize(size)
    a = np.asarray(base)
    h, w = a.shape[:2]
    gray = np.asarray(base.convert("L"))
    rng = np.random.RandomState(11)
    rgba = base.copy()
    rgba.putalpha(Image.fromarray((np.arange(w)[None, :] * 255 // w * np.ones((h, 1))).astype(np.uint8)))
    frames = [base, base.rotate(30), base.transpose(Image.FLIP_LEFT_RIGHT)]
    paths = []

    def save(name, im, **kw):
        p = os.path.join(d, name)
        im.save(p, **kw)
        paths.append(p)

    def add(p):
        paths.append(p)

    # WebP (Pillow + libwebp): lossy, lossless, alpha, animated
    save("lossy.webp", base, quality=80)
    save("lossy_q20_odd.webp", base.crop((1, 3, 1 + 257, 3 + 171)), quality=20)
    save("lossless.webp", base, lossless=True)
    save("alpha_lossy.webp", rgba, quality=70)
    save("alpha_lossless.webp", rgba, lossless=True)
    save("gray.webp", base.convert("L"), quality=90)
    frames[0].save(os.path.join(d, "anim.webp"), save_all=True, append_images=frames[1:], duration=100)
    add(os.path.join(d, "anim.webp"))
    rgba.save(os.path.join(d, "anim_alpha.webp"), save_all=True, append_images=[base], duration=50,
              lossless=True)
    add(os.path.join(d, "anim_alpha.webp"))

    # GIF from Pillow
    save("palette.gif", base.convert("P", palette=Image.ADAPTIVE, colors=200))
    save("gray.gif", base.convert("L"))
    save("rgb_web.gif", base)
    save("bilevel.gif", base.convert("1"))
    save("transparent.gif", base.convert("P", palette=Image.ADAPTIVE, colors=64), transparency=5)
    save("interlaced.gif", base, interlace=True)
    frames[0].save(os.path.join(d, "anim.gif"), save_all=True, append_images=frames[1:], duration=100)
    add(os.path.join(d, "anim.gif"))
    # GIF from the writer
    idx = (gray >> 4).astype(np.uint8)                                       # 0..15
    pal16 = rng.randint(0, 256, (16, 3))
    pal4 = rng.randint(0, 256, (4, 3))
    add(write_gif(os.path.join(d, "short_palette.gif"), (w, h), [{"idx": idx}], global_pal=pal4))
    add(write_gif(os.path.join(d, "local_palette.gif"), (w, h),
                  [{"idx": idx, "local_pal": pal16}], global_pal=pal4))
    add(write_gif(os.path.join(d, "no_palette.gif"), (w, h), [{"idx": gray}]))
    add(write_gif(os.path.join(d, "gray_ramp_palette.gif"), (w, h), [{"idx": idx}],
                  global_pal=[(i, i, i) for i in range(16)]))
    add(write_gif(os.path.join(d, "frame_inside.gif"), (w, h),
                  [{"idx": idx[:100, :150], "x": 30, "y": 20}], global_pal=pal16))
    add(write_gif(os.path.join(d, "frame_inside_trns.gif"), (w, h),
                  [{"idx": idx[:100, :150], "x": 30, "y": 20, "transparency": 7}], global_pal=pal16))
    add(write_gif(os.path.join(d, "frame_outside.gif"), (100, 80),
                  [{"idx": idx[:120, :150], "x": 10, "y": 5}], global_pal=pal16))
    add(write_gif(os.path.join(d, "interlaced_local.gif"), (w, h),
                  [{"idx": idx[:101, :77], "interlace": True, "local_pal": pal16}], global_pal=pal4))
    add(write_gif(os.path.join(d, "two_frames_trns.gif"), (w, h),
                  [{"idx": idx, "transparency": 3}, {"idx": idx[::-1]}], global_pal=pal16))

    # BMP from Pillow: RGB (24), L (8-bit gray ramp), P (8-bit), 1 (1-bit)
    save("rgb.bmp", base)
    save("gray.bmp", base.convert("L"))
    save("palette.bmp", base.convert("P", palette=Image.ADAPTIVE, colors=16))
    save("bilevel.bmp", base.convert("1"))
    # BMP from the writer
    rows = lambda arr: [bytes(r) for r in arr[::-1]]          # bottom-up file order
    bgr = a[..., ::-1]
    r5, g5, b5 = (a[..., 0] >> 3).astype(np.uint16), (a[..., 1] >> 3).astype(np.uint16), (a[..., 2] >> 3).astype(np.uint16)
    v555 = (r5 << 10) | (g5 << 5) | b5
    v565 = (r5 << 11) | ((a[..., 1] >> 2).astype(np.uint16) << 5) | b5
    add(write_bmp(os.path.join(d, "rgb555.bmp"), w, h, 16, rows(v555.astype("<u2").view(np.uint8).reshape(h, -1))))
    add(write_bmp(os.path.join(d, "rgb565_bitfields.bmp"), w, h, 16,
                  rows(v565.astype("<u2").view(np.uint8).reshape(h, -1)), compression=3,
                  masks=(0xF800, 0x7E0, 0x1F)))
    add(write_bmp(os.path.join(d, "rgb555_bitfields_v5.bmp"), w, h, 16,
                  rows(v555.astype("<u2").view(np.uint8).reshape(h, -1)), header=124, compression=3,
                  masks=(0x7C00, 0x3E0, 0x1F, 0)))
    alpha = rng.randint(0, 256, (h, w, 1)).astype(np.uint8)
    add(write_bmp(os.path.join(d, "bgrx32.bmp"), w, h, 32, rows(np.concatenate([bgr, alpha], 2).reshape(h, -1))))
    add(write_bmp(os.path.join(d, "bgra32_v4.bmp"), w, h, 32, rows(np.concatenate([bgr, alpha], 2).reshape(h, -1)),
                  header=108, compression=3, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)))
    add(write_bmp(os.path.join(d, "rgba32_v5.bmp"), w, h, 32, rows(np.concatenate([a, alpha], 2).reshape(h, -1)),
                  header=124, compression=3, masks=(0xFF, 0xFF00, 0xFF0000, 0xFF000000)))
    add(write_bmp(os.path.join(d, "abgr32_v5.bmp"), w, h, 32,
                  rows(np.concatenate([alpha, bgr], 2).reshape(h, -1)),
                  header=124, compression=3, masks=(0xFF000000, 0xFF0000, 0xFF00, 0xFF)))
    add(write_bmp(os.path.join(d, "topdown24.bmp"), w, h, 24, [bytes(r) for r in bgr.reshape(h, -1)], topdown=True))
    add(write_bmp(os.path.join(d, "os2_24.bmp"), w, h, 24, rows(bgr.reshape(h, -1)), header=12))
    add(write_bmp(os.path.join(d, "os2_pal8.bmp"), w, h, 8, rows(idx), header=12, pal=pal16.tolist() * 16))
    pack4 = lambda arr: [bytes((r[0::2] << 4) | np.append(r[1::2], np.zeros(len(r) % 2, np.uint8))) for r in arr]
    add(write_bmp(os.path.join(d, "pal4.bmp"), w, h, 4, pack4(idx[::-1]), pal=pal16.tolist()))
    add(write_bmp(os.path.join(d, "pal4_odd.bmp"), 77, 31, 4, pack4(idx[:31, :77][::-1]), pal=pal16.tolist()))
    add(write_bmp(os.path.join(d, "pal8_short.bmp"), w, h, 8, rows(idx), pal=pal4.tolist(), colors=4))
    add(write_bmp(os.path.join(d, "pal8_gray_ramp_short.bmp"), w, h, 8, rows(gray >> 2),
                  pal=[(i, i, i) for i in range(64)], colors=64))
    add(write_bmp(os.path.join(d, "pal1_colors.bmp"), 101, 37, 1,
                  [bytes(np.packbits(r)) for r in (gray[:37, :101] > 128)[::-1]],
                  pal=[(200, 10, 30), (5, 250, 100)]))
    add(write_bmp(os.path.join(d, "rle8.bmp"), w, h, 8, pal=pal16.tolist(), compression=1, rle=_rle8(idx)))
    idx8 = (gray >> 2).astype(np.uint8)
    add(write_bmp(os.path.join(d, "rle8_64.bmp"), w, h, 8, pal=rng.randint(0, 256, (64, 3)).tolist(),
                  compression=1, rle=_rle8(idx8)))
    add(write_bmp(os.path.join(d, "rle4.bmp"), w, h, 4, pal=pal16.tolist(), compression=2, rle=_rle4(idx)))
    add(write_bmp(os.path.join(d, "rle4_odd.bmp"), 77, 31, 4, pal=pal16.tolist(), compression=2,
                  rle=_rle4(idx[:31, :77])))

    # TIFF from Pillow (+ libtiff for the compressions)
    for c in ("raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"):
        save("rgb_%s.tif" % c, base, compression=c)
    save("gray.tif", base.convert("L"))
    save("gray_lzw.tif", base.convert("L"), compression="tiff_lzw")
    save("bilevel.tif", base.convert("1"))
    save("bilevel_g4.tif", base.convert("1"), compression="group4")
    save("cmyk.tif", base.convert("CMYK"))
    save("cmyk_lzw.tif", base.convert("CMYK"), compression="tiff_lzw")
    save("palette.tif", base.convert("P", palette=Image.ADAPTIVE, colors=64))
    save("rgba.tif", rgba)
    save("la.tif", rgba.convert("LA"))
    g16 = gray.astype(np.uint16) * 257
    g16[:40] = gray[:40] // 2
    save("gray16.tif", Image.fromarray(g16, "I;16"))
    frames[1].save(os.path.join(d, "multipage.tif"), save_all=True, append_images=[frames[0], frames[2]])
    add(os.path.join(d, "multipage.tif"))
    # TIFF from the writer
    a16 = a.astype(np.uint16) * 257 + rng.randint(0, 257, a.shape).astype(np.uint16)
    alpha16 = rng.randint(0, 65536, (h, w, 1)).astype(np.uint16)
    add(write_tiff(os.path.join(d, "rgb16.tif"), a16, 2, 16))
    add(write_tiff(os.path.join(d, "rgb16_be.tif"), a16, 2, 16, big_endian=True))
    add(write_tiff(os.path.join(d, "rgba16.tif"), np.concatenate([a16, alpha16], 2), 2, 16, extra=[2]))
    add(write_tiff(os.path.join(d, "rgb_tiled.tif"), a, 2, 8, tile=(64, 48)))
    add(write_tiff(os.path.join(d, "rgb_planar.tif"), a, 2, 8, planar=2))
    add(write_tiff(os.path.join(d, "rgb_planar_tiled_be.tif"), a[:100, :130], 2, 8, planar=2,
                   tile=(32, 32), big_endian=True))
    add(write_tiff(os.path.join(d, "gray_miniswhite.tif"), gray, 0, 8))
    add(write_tiff(os.path.join(d, "gray4.tif"), gray >> 4, 1, 4))
    add(write_tiff(os.path.join(d, "gray2_odd.tif"), gray[:51, :77] >> 6, 1, 2))
    add(write_tiff(os.path.join(d, "gray4_miniswhite.tif"), gray >> 4, 0, 4))
    add(write_tiff(os.path.join(d, "gray16_be.tif"), g16, 1, 16, big_endian=True))
    s16 = g16.astype(np.int32) - 20000
    add(write_tiff(os.path.join(d, "gray16_signed.tif"), s16.astype(np.int16).view(np.uint16), 1, 16,
                   sample_format=2))
    cmyk = np.asarray(base.convert("CMYK")).astype(np.uint16)
    add(write_tiff(os.path.join(d, "cmyk_planar.tif"), cmyk, 5, 8, planar=2))
    premul = (a.astype(np.uint32) * alpha // 255).astype(np.uint8)
    add(write_tiff(os.path.join(d, "rgb_assoc_alpha.tif"), np.concatenate([premul, alpha], 2), 2, 8, extra=[1]))
    add(write_tiff(os.path.join(d, "rgbx.tif"), np.concatenate([a, alpha], 2), 2, 8, extra=[0]))
    add(write_tiff(os.path.join(d, "palette4.tif"), idx, 3, 4, colormap=(pal16 * 257).tolist()))
    return paths
