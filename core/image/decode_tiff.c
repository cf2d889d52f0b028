// decode_tiff.c - the first page of a TIFF with libtiff, as Pillow 9.4's TIFF plugin +
// convert('RGB') give it.
//
// libtiff decompresses (none, LZW, Deflate, PackBits, JPEG, CCITT, ..., predictors, fill
// order, byte order) and hands out the raw samples; the samples then go through Pillow's
// unpacker and convert('RGB') rules (TiffImagePlugin.OPEN_INFO, Unpack.c, Convert.c):
//   gray 1/2/4/8 bit  (photometric 0 or 1)  "1"/"L": scaled to 8 bit, inverted when
//                                            min-is-white; replicated
//   gray 16 bit       "I;16"/"I;16B"/"I"     the value CLAMPED to 0..255 (as PNG's 16-bit gray);
//                                            signed samples clamp negatives to 0; min-is-white
//                                            is NOT inverted (Pillow's table maps it to "I;16")
//   gray + alpha      "LA"                   alpha dropped
//   RGB 8/16 bit      "RGB"/"RGBA"/"RGBX"    16 bit: the high byte; extra samples dropped,
//                                            except associated alpha ("RGBa"): the colour is
//                                            un-premultiplied as Pillow's unpackRGBa does
//                                            (c * 255 / a, clipped; a = 0 gives black)
//   palette 1..8 bit  "P"                    colormap entry >> 8 (16-bit TIFF colormap)
//   CMYK 8/16 bit     "CMYK"                 16 bit: high byte; Pillow's cmyk2rgb (as JPEG,
//                                            but TIFF ink values are not inverted)
// Not decoded (unsupported): YCbCr, CIELab, float and 32-bit samples, more than 16 bits.
// The Orientation tag IS applied (FLIP/ROTATE/TRANSPOSE as ImageOps.exif_transpose maps
// them): Pillow's TIFF loader transposes the page itself (TiffImageFile.load_end), so
// Image.open(f).convert('RGB') is upright for TIFF, unlike every other format. Only the
// first page (IFD) is read. libtiff's messages go to a per-file handler (thread-safe), never to stderr.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

#include "core/image/image_internal.h"

typedef struct {
    const uint8_t *data;
    size_t size;
    toff_t off;
    int read_past_end;
    char msg[256];
} tiff_src;

static tmsize_t on_read(thandle_t h, void *dst, tmsize_t n) {
    tiff_src *s = h;
    if (n < 0) return -1;
    size_t left = s->off < s->size ? s->size - (size_t)s->off : 0, k = (size_t)n;
    if (k > left) {
        k = left;
        s->read_past_end = 1;
    }
    if (k) memcpy(dst, s->data + s->off, k);
    s->off += k;
    return (tmsize_t)k;
}

static tmsize_t on_write(thandle_t h, void *src, tmsize_t n) { (void)h; (void)src; (void)n; return -1; }

static toff_t on_seek(thandle_t h, toff_t off, int whence) {
    tiff_src *s = h;
    uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? s->off : s->size;
    s->off = base + off;
    return s->off;
}

static int on_close(thandle_t h) { (void)h; return 0; }
static toff_t on_size(thandle_t h) { return ((tiff_src *)h)->size; }

static int on_error(TIFF *t, void *user, const char *module, const char *fmt, va_list ap) {
    (void)t;
    (void)module;
    tiff_src *s = user;
    if (!s->msg[0]) vsnprintf(s->msg, sizeof s->msg, fmt, ap);   // keep the first one
    return 1;
}

static int on_warning(TIFF *t, void *user, const char *module, const char *fmt, va_list ap) {
    (void)t; (void)user; (void)module; (void)fmt; (void)ap;
    return 1;
}

// Sample `i` of a packed row of `bits`-bit samples (MSB first, as libtiff hands them out
// after applying FillOrder); 16-bit samples are in host order.
static inline unsigned sample_at(const uint8_t *row, int64_t i, int bits) {
    switch (bits) {
    case 8: return row[i];
    case 16: { uint16_t v; memcpy(&v, row + 2 * i, 2); return v; }
    default: {
        int64_t bit = i * bits;
        unsigned byte = row[bit >> 3];
        return (byte >> (8 - bits - (bit & 7))) & ((1u << bits) - 1);
    }
    }
}

static int fail_tiff(TIFF *t, tiff_src *s, const char *name, const char *what) {
    if (t) TIFFClose(t);
    if (s->read_past_end)
        return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: TIFF file is truncated (%zu bytes) %s%s%s",
                              name, s->size, what, s->msg[0] ? ": " : "", s->msg);
    return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: corrupt TIFF %s: %s", name, what,
                          s->msg[0] ? s->msg : "libtiff error");
}

// Reads every sample of the first page into samp[(y * w + x) * spp + c] (one uint16 each).
static int read_samples(TIFF *t, tiff_src *s, const char *name, int64_t w, int64_t h, int spp,
                        int bits, int planar, uint16_t *samp) {
    int nplanes = planar == PLANARCONFIG_SEPARATE ? spp : 1;
    int per = planar == PLANARCONFIG_SEPARATE ? 1 : spp;   // samples per pixel in a buffer
    if (TIFFIsTiled(t)) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
        tmsize_t tsize = TIFFTileSize(t), trow = TIFFTileRowSize(t);
        if (tw == 0 || th == 0 || tsize <= 0 || trow <= 0 ||
            (int64_t)trow * th > (int64_t)tsize)
            return fail_tiff(t, s, name, "tile layout");
        uint8_t *buf = _TIFFmalloc(tsize);
        if (!buf) return fail_tiff(t, s, name, "(no memory for a tile)");
        for (int p = 0; p < nplanes; p++)
            for (int64_t ty = 0; ty < h; ty += th)
                for (int64_t tx = 0; tx < w; tx += tw) {
                    if (TIFFReadTile(t, buf, (uint32_t)tx, (uint32_t)ty, 0, (uint16_t)p) < 0) {
                        _TIFFfree(buf);
                        return fail_tiff(t, s, name, "in a tile");
                    }
                    for (int64_t y = 0; y < (int64_t)th && ty + y < h; y++) {
                        const uint8_t *row = buf + y * trow;
                        for (int64_t x = 0; x < (int64_t)tw && tx + x < w; x++)
                            for (int c = 0; c < per; c++)
                                samp[((ty + y) * w + tx + x) * spp + p + c] =
                                    (uint16_t)sample_at(row, x * per + c, bits);
                    }
                }
        _TIFFfree(buf);
        return IVL_IMAGE_OK;
    }
    tmsize_t sl = TIFFScanlineSize(t);
    if (sl <= 0 || (int64_t)sl * 8 < w * per * bits) return fail_tiff(t, s, name, "scanline size");
    uint8_t *buf = _TIFFmalloc(sl);
    if (!buf) return fail_tiff(t, s, name, "(no memory for a scanline)");
    for (int p = 0; p < nplanes; p++)
        for (int64_t y = 0; y < h; y++) {
            if (TIFFReadScanline(t, buf, (uint32_t)y, (uint16_t)p) < 0) {
                _TIFFfree(buf);
                return fail_tiff(t, s, name, "in the image data");
            }
            for (int64_t x = 0; x < w; x++)
                for (int c = 0; c < per; c++)
                    samp[(y * w + x) * spp + p + c] = (uint16_t)sample_at(buf, x * per + c, bits);
        }
    _TIFFfree(buf);
    return IVL_IMAGE_OK;
}

static inline uint8_t clip8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

int ivl_image_decode_tiff(const uint8_t *data, size_t size, const char *name,
                          int64_t max_pixels, ivl_image *out) {
    tiff_src src = {.data = data, .size = size};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: cannot set up the TIFF decoder", name);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, &src);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, &src);
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)1 << 30);
    // "rm": read-only, no memory-mapping (our handle is a buffer, not a file).
    TIFF *t = TIFFClientOpenExt(name, "rm", &src, on_read, on_write, on_seek, on_close, on_size,
                                NULL, NULL, opts);
    TIFFOpenOptionsFree(opts);
    if (!t) return fail_tiff(NULL, &src, name, "header");

    uint32_t w32 = 0, h32 = 0;
    uint16_t bits = 1, spp = 1, photo = 0, planar = PLANARCONFIG_CONTIG, fmt = SAMPLEFORMAT_UINT;
    uint16_t nextra = 0, *extra = NULL;
    TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w32);
    TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h32);
    TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &fmt);
    TIFFGetFieldDefaulted(t, TIFFTAG_EXTRASAMPLES, &nextra, &extra);
    if (!TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photo)) {
        TIFFClose(t);
        return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED, "%s: TIFF without a PhotometricInterpretation "
                              "tag is not supported (Pillow refuses it too)", name);
    }
    int64_t w = w32, h = h32;
    int st = ivl_image_check_size(name, "TIFF", w, h, max_pixels);
    if (st) {
        TIFFClose(t);
        return st;
    }
    int ok_bits = bits == 1 || bits == 2 || bits == 4 || bits == 8 || bits == 16;
    int gray = photo == PHOTOMETRIC_MINISWHITE || photo == PHOTOMETRIC_MINISBLACK;
    int ok = ok_bits && spp >= 1 && spp <= 8 && fmt != SAMPLEFORMAT_IEEEFP &&
             (fmt != SAMPLEFORMAT_INT || (gray && bits == 16)) &&
             ((gray && (bits <= 8 || bits == 16)) ||
              (photo == PHOTOMETRIC_RGB && spp >= 3 && bits >= 8) ||
              (photo == PHOTOMETRIC_PALETTE && bits <= 8) ||
              (photo == PHOTOMETRIC_SEPARATED && spp >= 4 && bits >= 8));
    if (!ok) {
        TIFFClose(t);
        return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED,
                              "%s: TIFF with photometric %u, %u samples of %u bits (format %u) is "
                              "not supported (gray, RGB, palette and CMYK of 1-16 bits are); "
                              "convert it to PNG first", name, photo, spp, bits, fmt);
    }
    uint16_t *cmap[3] = {NULL, NULL, NULL};
    if (photo == PHOTOMETRIC_PALETTE &&
        !TIFFGetField(t, TIFFTAG_COLORMAP, &cmap[0], &cmap[1], &cmap[2])) {
        TIFFClose(t);
        return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: corrupt TIFF: palette image without a "
                              "ColorMap", name);
    }
    uint8_t pal[256][3];     // copied now: the colormap belongs to t, closed before the mapping
    for (unsigned i = 0; photo == PHOTOMETRIC_PALETTE && i < (1u << bits); i++)
        for (int c = 0; c < 3; c++) pal[i][c] = (uint8_t)(cmap[c][i] >> 8);
    // Associated (premultiplied) alpha right after RGB: Pillow's "RGBa" rawmodes.
    int assoc = photo == PHOTOMETRIC_RGB && spp >= 4 && nextra >= 1 && extra &&
                extra[0] == EXTRASAMPLE_ASSOCALPHA;

    size_t npix = (size_t)w * (size_t)h;
    uint16_t *samp = malloc(npix * spp * sizeof(uint16_t));
    uint8_t *pix = malloc(npix * 3);
    if (!samp || !pix) {
        free(samp);
        free(pix);
        TIFFClose(t);
        return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: out of memory for %lldx%lld pixels", name,
                              (long long)w, (long long)h);
    }
    st = read_samples(t, &src, name, w, h, spp, bits, planar, samp);   // closes t on failure
    if (st) {
        free(samp);
        free(pix);
        return st;
    }
    TIFFClose(t);

    unsigned maxv = (1u << bits) - 1;
    for (size_t i = 0; i < npix; i++) {
        const uint16_t *s = samp + i * spp;
        uint8_t *d = pix + 3 * i;
        if (gray) {
            uint8_t v;
            if (bits == 16)     // "I;16" / "I": clamped, never inverted
                v = fmt == SAMPLEFORMAT_INT ? clip8((int16_t)s[0]) : clip8(s[0]);
            else {
                v = (uint8_t)(s[0] * 255u / maxv);
                if (photo == PHOTOMETRIC_MINISWHITE) v = (uint8_t)(255 - v);
            }
            d[0] = d[1] = d[2] = v;
        } else if (photo == PHOTOMETRIC_PALETTE) {
            memcpy(d, pal[s[0]], 3);
        } else {
            unsigned v[4];
            int n = photo == PHOTOMETRIC_SEPARATED ? 4 : (assoc ? 4 : 3);
            for (int c = 0; c < n; c++) v[c] = bits == 16 ? s[c] >> 8 : s[c];
            if (photo == PHOTOMETRIC_SEPARATED) {
                for (int c = 0; c < 3; c++) d[c] = ivl_cmyk_channel(v[c], v[3]);
            } else if (assoc) {
                unsigned a = v[3];
                for (int c = 0; c < 3; c++)
                    d[c] = a == 0 ? 0 : a == 255 ? (uint8_t)v[c] : clip8((int)(v[c] * 255 / a));
            } else {
                for (int c = 0; c < 3; c++) d[c] = (uint8_t)v[c];
            }
        }
    }
    free(samp);
    out->width = (int)w;
    out->height = (int)h;
    out->rgb = pix;
    st = ivl_image_apply_orientation(out, ivl_image_tiff_orientation(data, size));
    if (st) ivl_image_free(out);
    return st;
}
