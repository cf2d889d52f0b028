// decode_bmp.c - Windows BMP to RGB, a small reader that follows Pillow 9.4's BmpImagePlugin
// + convert('RGB') rule for rule (there is no BMP library in Debian that Pillow itself uses).
//
// Accepted, as Pillow accepts them:
//   headers   OS/2 v1 (12 bytes: 16-bit sizes, 3-byte palette entries) and Windows v3/v4/v5
//             (40, 64, 108, 124 bytes); a height with its top byte 0xFF is a top-down image
//   depths    1/4/8-bit palette, 16-bit (5-5-5 by default, 5-6-5 or 5-5-5 with BITFIELDS),
//             24-bit BGR, 32-bit BGRX or any of Pillow's six BITFIELDS layouts (alpha dropped)
//   RLE8/RLE4 decoded like Pillow's Python BmpRleDecoder, quirks included: a delta escape
//             skips two bytes before reading (right, up); absolute runs of RLE4 read n/2
//             bytes; runs are word aligned on the file offset; data that ends before the
//             image is full is an error (Pillow: "not enough image data")
// Palette rules: the colour count is biClrUsed or 1 << bits; the palette is read right after
// the header; a palette that is the gray ramp (2 colours: black, white; else entry i == i)
// makes the image "1"/"L", i.e. the pixel value is the index itself. An index past the end of
// the palette maps to (i, i, i), the gray ramp Pillow's palettes start from (checked against
// Pillow). Gray-ramp palettes on 4-bit data, or a
// 2-colour ramp on 8-bit data, are decoded by Pillow with the wrong raw mode (garbage); we
// refuse them as unsupported instead. Pixel data starts at bfOffBits (Pillow's quirk: when
// that points right after the header of a <= 8-bit image, the palette size is added).
// 16-bit samples are expanded as Pillow's unpackers do: v * 255 / 31 (or / 63).
#include <stdlib.h>
#include <string.h>

#include "core/image/image_internal.h"

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static unsigned le16(const uint8_t *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }

typedef struct {
    const uint8_t *data;
    size_t size;
    const char *name;
    int64_t w, h;
    int bits, topdown, gray;      // gray: "1"/"L" mode (value = index)
    uint8_t pal[256][3];
    int ncolors;
} bmp;

// RLE8/RLE4 as BmpRleDecoder: fills idx (w*h indices in data order). Returns 0, or an
// ivl_image_status.
static int rle_decode(const bmp *b, size_t off, int rle4, uint8_t *idx) {
    size_t total = (size_t)(b->w * b->h), n = 0, x = 0, w = (size_t)b->w;
    const uint8_t *d = b->data;
    size_t size = b->size;
    memset(idx, 0, total);
#define PUT(v) do { if (n < total) idx[n] = (uint8_t)(v); n++; } while (0)
    while (n < total) {
        if (off + 2 > size) break;
        unsigned count = d[off], byte = d[off + 1];
        off += 2;
        if (count) {                                    // encoded run
            if (x + count > w) count = x < w ? (unsigned)(w - x) : 0;
            for (unsigned i = 0; i < count; i++)
                PUT(rle4 ? ((i & 1) ? (byte & 15) : (byte >> 4)) : byte);
            x += count;
        } else if (byte == 0) {                         // end of line
            while (n % w) PUT(0);
            x = 0;
        } else if (byte == 1) {                         // end of bitmap
            break;
        } else if (byte == 2) {                         // delta (Pillow reads 2 + 2 bytes)
            if (off + 2 > size) break;
            off += 2;
            if (off + 2 > size)
                return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: BMP RLE data is truncated "
                                      "inside a delta escape", b->name);
            unsigned right = d[off], up = d[off + 1];
            off += 2;
            size_t skip = right + (size_t)up * w;
            if (skip > total - (n < total ? n : total)) skip = total - (n < total ? n : total);
            for (size_t i = 0; i < skip; i++) PUT(0);
            x = n % w;
        } else {                                        // absolute run
            size_t want = rle4 ? byte / 2 : byte;
            size_t got = size - off < want ? size - off : want;
            for (size_t i = 0; i < got; i++) {
                if (rle4) {
                    PUT(d[off + i] >> 4);
                    PUT(d[off + i] & 15);
                } else {
                    PUT(d[off + i]);
                }
            }
            off += got;
            if (got < want) break;
            x += byte;
            if (off % 2) off++;
        }
    }
#undef PUT
    if (n < total)
        return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: BMP RLE data ends before the image is "
                              "complete (%zu of %zu pixels; Pillow: not enough image data)",
                              b->name, n, total);
    return IVL_IMAGE_OK;
}

int ivl_image_decode_bmp(const uint8_t *data, size_t size, const char *name,
                         int64_t max_pixels, ivl_image *out) {
    bmp b;
    memset(&b, 0, sizeof b);
    b.data = data;
    b.size = size;
    b.name = name;
    if (size < 18)
        return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: BMP file is truncated (%zu bytes)", name,
                              size);
    uint32_t offset = le32(data + 10), hsize = le32(data + 14);
    if (hsize != 12 && hsize != 40 && hsize != 64 && hsize != 108 && hsize != 124)
        return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED, "%s: BMP header of %u bytes is not "
                              "supported (12, 40, 64, 108 or 124 are)", name, hsize);
    if (14 + (size_t)hsize > size)
        return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: BMP file is truncated in its header "
                              "(%zu bytes)", name, size);
    const uint8_t *hd = data + 18;            // header after its size field
    uint32_t compression = 0, colors = 0, masks[4] = {0, 0, 0, 0};
    size_t pos = 14 + hsize;                  // where the palette (or masks) start
    int pal_entry = 4;
    if (hsize == 12) {
        b.w = le16(hd);
        b.h = le16(hd + 2);
        b.bits = (int)le16(hd + 6);
        pal_entry = 3;
    } else {
        b.topdown = hd[7] == 0xFF;
        b.w = le32(hd);
        b.h = b.topdown ? (int64_t)((1ULL << 32) - le32(hd + 4)) : (int64_t)le32(hd + 4);
        b.bits = (int)le16(hd + 10);
        compression = le32(hd + 12);
        colors = le32(hd + 28);
        if (compression == 3) {
            if (hsize >= 56) {
                for (int i = 0; i < 4; i++) masks[i] = le32(hd + 36 + 4 * i);
            } else {
                if (pos + 12 > size)
                    return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: BMP file is truncated in "
                                          "its colour masks", name);
                for (int i = 0; i < 3; i++) masks[i] = le32(data + pos + 4 * i);
                pos += 12;
            }
        }
    }
    if (b.bits != 1 && b.bits != 4 && b.bits != 8 && b.bits != 16 && b.bits != 24 && b.bits != 32)
        return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED, "%s: BMP pixel depth %d is not supported "
                              "(Pillow refuses it too)", name, b.bits);
    if (!colors) colors = b.bits < 32 ? 1u << b.bits : 0;
    if (offset == 14 + hsize && b.bits <= 8) offset += 4 * colors;   // Pillow's quirk

    // 16/24/32-bit layouts: byte positions (or 5/6-bit fields) of R, G, B.
    enum { L_PAL, L_BGR15, L_BGR16, L_BYTES } layout = L_PAL;
    int rpos = 2, gpos = 1, bpos = 0;         // bytes in a little-endian pixel
    if (compression == 3) {
        uint32_t r = masks[0], g = masks[1], bl = masks[2], a = masks[3];
        if (b.bits == 32 && r == 0xFF0000 && g == 0xFF00 && bl == 0xFF && (a == 0 || a == 0xFF000000)) {
            layout = L_BYTES;                                       // BGRX / BGRA
        } else if (b.bits == 32 && r == 0xFF000000 && g == 0xFF0000 && bl == 0xFF00 &&
                   (a == 0 || a == 0xFF)) {
            layout = L_BYTES, rpos = 3, gpos = 2, bpos = 1;         // XBGR / ABGR
        } else if (b.bits == 32 && r == 0xFF && g == 0xFF00 && bl == 0xFF0000 && a == 0xFF000000) {
            layout = L_BYTES, rpos = 0, gpos = 1, bpos = 2;         // RGBA
        } else if (b.bits == 32 && !r && !g && !bl && !a) {
            layout = L_BYTES;                                       // Pillow: BGRA
        } else if (b.bits == 24 && r == 0xFF0000 && g == 0xFF00 && bl == 0xFF) {
            layout = L_BYTES;
        } else if (b.bits == 16 && r == 0xF800 && g == 0x7E0 && bl == 0x1F) {
            layout = L_BGR16;
        } else if (b.bits == 16 && r == 0x7C00 && g == 0x3E0 && bl == 0x1F) {
            layout = L_BGR15;
        } else {
            return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED, "%s: BMP bitfields layout (%d bits, "
                                  "masks %x %x %x %x) is not supported (Pillow refuses it too)",
                                  name, b.bits, r, g, bl, a);
        }
    } else if (compression == 0) {
        layout = b.bits == 16 ? L_BGR15 : b.bits >= 24 ? L_BYTES : L_PAL;
    } else if (compression == 1 || compression == 2) {
        if ((compression == 1 && b.bits != 8) || (compression == 2 && b.bits != 4))
            return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED, "%s: BMP RLE%d with %d bits per pixel "
                                  "is not supported", name, compression == 1 ? 8 : 4, b.bits);
    } else {
        return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED, "%s: BMP compression %u (JPEG/PNG inside "
                              "BMP or unknown) is not supported (Pillow refuses it too)", name,
                              compression);
    }
    int st = ivl_image_check_size(name, "BMP", b.w, b.h, max_pixels);
    if (st) return st;

    if (b.bits <= 8) {
        if (colors == 0 || colors > 256)
            return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED, "%s: BMP palette of %u colours is not "
                                  "supported (1..256 are)", name, colors);
        size_t avail = pos < size ? (size - pos) / (size_t)pal_entry : 0;
        int n = (int)(avail < colors ? avail : colors), gray = 1;
        for (int i = 0; i < n; i++) {
            const uint8_t *e = data + pos + (size_t)i * pal_entry;
            b.pal[i][0] = e[2], b.pal[i][1] = e[1], b.pal[i][2] = e[0];
        }
        for (int i = 0; i < (int)colors; i++) {
            int want = colors == 2 ? (i ? 255 : 0) : i;
            if (i >= n || b.pal[i][0] != want || b.pal[i][1] != want || b.pal[i][2] != want) gray = 0;
        }
        b.ncolors = n;
        b.gray = gray;
        if (gray && !((colors == 2 && b.bits == 1) || (colors != 2 && b.bits == 8)))
            return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED, "%s: BMP with a %u-entry gray palette "
                                  "on %d-bit data is not supported (Pillow decodes it with the "
                                  "wrong raw mode)", name, colors, b.bits);
    }

    size_t npix = (size_t)(b.w * b.h);
    uint8_t *pix = malloc(npix * 3);
    uint8_t *idx = b.bits <= 8 ? malloc(npix) : NULL;
    if (!pix || (b.bits <= 8 && !idx)) {
        free(pix);
        free(idx);
        return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: out of memory for %lldx%lld pixels", name,
                              (long long)b.w, (long long)b.h);
    }
    if (offset == 0) offset = (uint32_t)(pos + (b.bits <= 8 ? (size_t)colors * pal_entry : 0));
    if (compression == 1 || compression == 2) {
        st = rle_decode(&b, offset, compression == 2, idx);
        if (st) {
            free(pix);
            free(idx);
            return st;
        }
    } else {
        size_t stride = (size_t)((((b.w * b.bits) + 31) >> 3) & ~3LL);
        size_t rowbytes = (size_t)((b.w * b.bits + 7) / 8);
        if (offset > size || (size - offset) < (size_t)(b.h - 1) * stride + rowbytes) {
            free(pix);
            free(idx);
            return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: BMP file is truncated (%zu bytes, "
                                  "the %lldx%lld pixels need %zu from offset %u)", name, size,
                                  (long long)b.w, (long long)b.h,
                                  (size_t)(b.h - 1) * stride + rowbytes, offset);
        }
        for (int64_t r = 0; r < b.h; r++) {   // r: row in file order
            const uint8_t *s = data + offset + (size_t)r * stride;
            int64_t y = b.topdown ? r : b.h - 1 - r;
            if (b.bits <= 8) {
                uint8_t *d = idx + y * b.w;
                for (int64_t x = 0; x < b.w; x++) {
                    int64_t bit = x * b.bits;
                    d[x] = (uint8_t)((s[bit >> 3] >> (8 - b.bits - (bit & 7))) & ((1 << b.bits) - 1));
                }
                continue;
            }
            uint8_t *d = pix + (size_t)(y * b.w) * 3;
            for (int64_t x = 0; x < b.w; x++, d += 3) {
                if (layout == L_BYTES) {
                    const uint8_t *p = s + x * (b.bits / 8);
                    d[0] = p[rpos], d[1] = p[gpos], d[2] = p[bpos];
                } else {
                    unsigned v = le16(s + 2 * x);
                    if (layout == L_BGR16) {
                        d[0] = (uint8_t)(((v >> 11) & 31) * 255 / 31);
                        d[1] = (uint8_t)(((v >> 5) & 63) * 255 / 63);
                    } else {
                        d[0] = (uint8_t)(((v >> 10) & 31) * 255 / 31);
                        d[1] = (uint8_t)(((v >> 5) & 31) * 255 / 31);
                    }
                    d[2] = (uint8_t)((v & 31) * 255 / 31);
                }
            }
        }
    }
    if (idx) {
        if (compression == 1 || compression == 2) {   // RLE data is in file row order
            uint8_t *flip = b.topdown ? NULL : malloc((size_t)b.w);
            if (!b.topdown && !flip) {
                free(pix);
                free(idx);
                return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: out of memory", name);
            }
            for (int64_t r = 0; flip && r < b.h / 2; r++) {
                uint8_t *a = idx + r * b.w, *z = idx + (b.h - 1 - r) * b.w;
                memcpy(flip, a, (size_t)b.w);
                memcpy(a, z, (size_t)b.w);
                memcpy(z, flip, (size_t)b.w);
            }
            free(flip);
        }
        for (size_t i = 0; i < npix; i++) {
            uint8_t v = idx[i], *d = pix + 3 * i;
            if (b.gray) {
                d[0] = d[1] = d[2] = (b.bits == 1) ? (v ? 255 : 0) : v;
            } else if (v < b.ncolors) {
                memcpy(d, b.pal[v], 3);
            } else {        // past the palette: Pillow's palette starts as the gray ramp
                d[0] = d[1] = d[2] = v;
            }
        }
        free(idx);
    }
    out->width = (int)b.w;
    out->height = (int)b.h;
    out->rgb = pix;
    return IVL_IMAGE_OK;
}
