// decode_jpeg.c - JPEG to RGB with libjpeg(-turbo), matching Pillow's JPEG plugin.
//
// Pillow decodes with libjpeg's defaults (JDCT_ISLOW, fancy upsampling), asks for
// JCS_GRAYSCALE / JCS_RGB / JCS_CMYK by the number of components, and reads every
// 4-component JPEG as Adobe-inverted CMYK ("CMYK;I", JpegImagePlugin: "assume adobe
// conventions"), whether or not an Adobe marker is present. We do the same, then apply
// Pillow's convert('RGB') (L: replicate; CMYK: cmyk2rgb in Convert.c).
//
// libjpeg's default error handler exit()s: errors longjmp back here instead. Its warnings
// are ignored as Pillow ignores them, except "premature end of data" (JWRN_JPEG_EOF, which
// jpeg_mem_src raises when the data runs out): Pillow fails such a file with "image file is
// truncated", so we fail it too.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "core/image/image_internal.h"

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int truncated;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void on_error_exit(j_common_ptr c) {
    jpeg_err *e = (jpeg_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

static void on_emit_message(j_common_ptr c, int level) {
    jpeg_err *e = (jpeg_err *)c->err;
    if (level >= 0) return;                    // trace messages
    if (c->err->msg_code == JWRN_JPEG_EOF) {
        e->truncated = 1;
        c->err->format_message(c, e->msg);
        longjmp(e->jb, 1);
    }
    c->err->num_warnings++;                    // corrupt-data warnings: go on, as Pillow
}

static void on_output_message(j_common_ptr c) { (void)c; }

// Pillow's MULDIV255(a, b): a*b/255 rounded, without a division.
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

// Convert.c cmyk2rgb on Pillow's inverted CMYK (each input byte is 255 - the stored one).
static void cmyk_inv_row_to_rgb(const uint8_t *in, uint8_t *out, int w) {
    for (int x = 0; x < w; x++, in += 4, out += 3) {
        int nk = 255 - (255 - in[3]);
        for (int c = 0; c < 3; c++) {
            int v = nk - muldiv255(255 - in[c], nk);
            out[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

int ivl_image_decode_jpeg(const uint8_t *data, size_t size, const char *name,
                          int64_t max_pixels, ivl_image *out) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    memset(&jerr, 0, sizeof jerr);
    uint8_t *volatile pix = NULL;
    uint8_t *volatile row = NULL;

    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = on_error_exit;
    jerr.pub.emit_message = on_emit_message;
    jerr.pub.output_message = on_output_message;
    if (setjmp(jerr.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(pix);
        free(row);
        if (jerr.truncated)
            return ivl_image_fail(IVL_IMAGE_E_TRUNCATED,
                                  "%s: JPEG file is truncated (%s; %zu bytes)", name, jerr.msg, size);
        return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: corrupt JPEG: %s", name, jerr.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    int w = (int)cinfo.image_width, h = (int)cinfo.image_height, nc = cinfo.num_components;
    if ((int64_t)w * h > max_pixels) {
        jpeg_destroy_decompress(&cinfo);
        return ivl_image_fail(IVL_IMAGE_E_TOO_LARGE,
                              "%s: JPEG is %dx%d = %lld pixels, above the limit of %lld "
                              "(possible decompression bomb)", name, w, h, (long long)w * h,
                              (long long)max_pixels);
    }
    if (nc == 1) cinfo.out_color_space = JCS_GRAYSCALE;
    else if (nc == 3) cinfo.out_color_space = JCS_RGB;
    else if (nc == 4) cinfo.out_color_space = JCS_CMYK;      // libjpeg turns YCCK into CMYK
    else {
        jpeg_destroy_decompress(&cinfo);
        return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED,
                              "%s: JPEG with %d colour components is not supported (1, 3 or 4)",
                              name, nc);
    }
    jpeg_start_decompress(&cinfo);
    int oc = cinfo.output_components;
    pix = malloc((size_t)w * h * 3);
    if (oc != 3) row = malloc((size_t)w * oc);
    if (!pix || (oc != 3 && !row)) {
        jpeg_destroy_decompress(&cinfo);
        free(pix);
        free(row);
        return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: out of memory for %dx%d pixels", name, w, h);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = pix + (size_t)cinfo.output_scanline * w * 3;
        JSAMPROW rp = oc == 3 ? dst : row;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) {   // cannot happen with a memory source
            jpeg_destroy_decompress(&cinfo);
            free(pix);
            free(row);
            return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: JPEG decoder stalled", name);
        }
        if (oc == 1) {
            for (int x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
        } else if (oc == 4) {
            cmyk_inv_row_to_rgb(row, dst, w);
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->width = w;
    out->height = h;
    out->rgb = pix;
    return IVL_IMAGE_OK;
}
