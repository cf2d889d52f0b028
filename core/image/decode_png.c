// decode_png.c - PNG to RGB with libpng, matching Pillow's PNG plugin + convert('RGB').
//
// Pillow modes per PNG type and what convert('RGB') then does (Pillow 9.4, checked with
// python3-pil by tests/image):
//   gray 1/2/4/8 bit      "1"/"L" (scaled by 255/85/17/1)   -> replicated
//   gray 16 bit           "I" (the 16-bit value)             -> CLAMPED to 0..255, replicated
//   gray+alpha 8/16       "LA" (16: high byte)               -> gray replicated, alpha dropped
//   RGB / RGBA 8/16       "RGB"/"RGBA" (16: high byte)       -> alpha dropped
//   palette (any tRNS)    "P"                                -> the palette colours
// tRNS, gAMA, sRGB, iCCP are ignored for the RGB values. A missing IEND is accepted (Pillow
// stops at the end of the image data); running out of data inside IDAT is "truncated".
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/image/image_internal.h"

typedef struct {
    const uint8_t *data;
    size_t size, off;
    int truncated;
    char msg[256];
} png_src;

static void on_read(png_structp png, png_bytep dst, size_t n) {
    png_src *s = png_get_io_ptr(png);
    if (n > s->size - s->off) {
        s->truncated = 1;
        png_error(png, "unexpected end of data");
    }
    memcpy(dst, s->data + s->off, n);
    s->off += n;
}

static void on_error(png_structp png, png_const_charp msg) {
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

int ivl_image_decode_png(const uint8_t *data, size_t size, const char *name,
                         int64_t max_pixels, ivl_image *out) {
    png_src src = {.data = data, .size = size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: cannot create the PNG decoder", name);
    }
    uint8_t *volatile pix = NULL;     // final RGB
    uint8_t *volatile raw = NULL;     // decoded rows when they are not RGB8 already
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pix);
        free(raw);
        free(rows);
        if (src.truncated)
            return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: PNG file is truncated (%zu bytes)",
                                  name, size);
        return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: corrupt PNG: %s", name, src.msg);
    }
    png_set_read_fn(png, &src, on_read);
    png_read_info(png, info);

    png_uint_32 w32, h32;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w32, &h32, &depth, &ctype, &interlace, NULL, NULL);
    int64_t w = w32, h = h32;
    if (w * h > max_pixels || w > (1 << 28) || h > (1 << 28)) {
        png_destroy_read_struct(&png, &info, NULL);
        return ivl_image_fail(IVL_IMAGE_E_TOO_LARGE,
                              "%s: PNG is %lldx%lld = %lld pixels, above the limit of %lld "
                              "(possible decompression bomb)", name, (long long)w, (long long)h,
                              (long long)(w * h), (long long)max_pixels);
    }
    // Pillow's "I" mode: 16-bit gray keeps its value and convert('RGB') clamps it.
    int gray16 = (ctype == PNG_COLOR_TYPE_GRAY && depth == 16);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);   // (+ tRNS alpha, dropped below)
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && !gray16) png_set_strip_16(png);                  // keeps the high byte
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    size_t want = (size_t)w * (gray16 ? 2 : ch);
    if (ch < 1 || ch > 4 || rowbytes != want) {
        png_destroy_read_struct(&png, &info, NULL);
        return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED,
                              "%s: PNG layout not handled (colour type %d, depth %d, %d channels)",
                              name, ctype, depth, ch);
    }
    pix = malloc((size_t)w * h * 3);
    int direct = (ch == 3 && !gray16);
    if (!direct) raw = malloc(rowbytes * h);
    rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!pix || (!direct && !raw) || !rows) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pix);
        free(raw);
        free(rows);
        return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: out of memory for %lldx%lld pixels", name,
                              (long long)w, (long long)h);
    }
    for (int64_t y = 0; y < h; y++) rows[y] = direct ? pix + y * w * 3 : raw + y * rowbytes;
    png_read_image(png, rows);      // handles interlacing; no png_read_end: IEND optional
    png_destroy_read_struct(&png, &info, NULL);

    if (!direct) {
        for (int64_t y = 0; y < h; y++) {
            const uint8_t *s = raw + y * rowbytes;
            uint8_t *d = pix + y * w * 3;
            for (int64_t x = 0; x < w; x++, d += 3) {
                if (gray16) {
                    unsigned v = ((unsigned)s[2 * x] << 8) | s[2 * x + 1];   // big endian
                    d[0] = d[1] = d[2] = (uint8_t)(v > 255 ? 255 : v);
                } else if (ch <= 2) {
                    d[0] = d[1] = d[2] = s[x * ch];
                } else {
                    memcpy(d, s + x * ch, 3);
                }
            }
        }
        free(raw);
    }
    free(rows);
    out->width = (int)w;
    out->height = (int)h;
    out->rgb = pix;
    return IVL_IMAGE_OK;
}
