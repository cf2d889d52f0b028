// decode_gif.c - the first frame of a GIF with giflib, as Pillow 9.4's GIF plugin +
// convert('RGB') give it.
//
// Pillow's rules for frame 0 (GifImagePlugin._seek / load_prepare), copied here:
//   * the image is the logical screen, grown to hold the first frame's rectangle if that
//     reaches past it;
//   * the frame's colour table is its local one if present, else the global one; a table
//     that is the identity gray ramp (entry i == (i, i, i) for every entry) is "not
//     needed": the frame is mode "L" and the pixel value is the index itself. No table at
//     all also gives "L";
//   * the canvas starts filled with the graphic control extension's transparent index when
//     there is one, else with index 0; the frame's pixels are written inside its rectangle,
//     the transparent index included (frame 0 is not blended);
//   * convert('RGB') maps every index through the table, transparency ignored. An index past
//     the end of a short table maps to (i, i, i): Pillow's palette starts as the gray ramp
//     and the table overwrites only its first entries (checked by tests/image).
// Only the first image is read (an animation's later frames are never decompressed).
// Running out of data inside the first frame is "truncated", as in Pillow.
#include <gif_lib.h>
#include <stdlib.h>
#include <string.h>

#include "core/image/image_internal.h"

typedef struct {
    const uint8_t *data;
    size_t size, off;
    int short_read;
} gif_src;

static int on_read(GifFileType *g, GifByteType *dst, int n) {
    gif_src *s = g->UserData;
    size_t left = s->size - s->off, k = (size_t)n;
    if (k > left) {
        k = left;
        s->short_read = 1;
    }
    memcpy(dst, s->data + s->off, k);
    s->off += k;
    return (int)k;
}

// 1 when the colour table is Pillow's "not needed" identity gray ramp.
static int identity_gray(const ColorMapObject *cm) {
    for (int i = 0; i < cm->ColorCount; i++) {
        const GifColorType *c = &cm->Colors[i];
        if (c->Red != i || c->Green != i || c->Blue != i) return 0;
    }
    return 1;
}

static int fail_gif(GifFileType *g, const gif_src *s, const char *name, size_t size,
                    const char *what) {
    int code = g ? g->Error : 0;
    if (g) DGifCloseFile(g, NULL);
    if (s->short_read || code == D_GIF_ERR_READ_FAILED || code == D_GIF_ERR_EOF_TOO_SOON)
        return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: GIF file is truncated (%zu bytes) %s",
                              name, size, what);
    const char *msg = GifErrorString(code);
    return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: corrupt GIF %s: %s", name, what,
                          msg ? msg : "giflib error");
}

int ivl_image_decode_gif(const uint8_t *data, size_t size, const char *name,
                         int64_t max_pixels, ivl_image *out) {
    gif_src src = {.data = data, .size = size};
    int err = 0;
    GifFileType *g = DGifOpen(&src, on_read, &err);
    if (!g) {
        if (src.short_read || err == D_GIF_ERR_READ_FAILED)
            return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: GIF file is truncated (%zu bytes)",
                                  name, size);
        const char *msg = GifErrorString(err);
        return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: corrupt GIF header: %s", name,
                              msg ? msg : "giflib error");
    }
    int transparent = -1;
    for (;;) {
        GifRecordType rt;
        if (DGifGetRecordType(g, &rt) == GIF_ERROR)
            return fail_gif(g, &src, name, size, "before the first image");
        if (rt == TERMINATE_RECORD_TYPE) {
            DGifCloseFile(g, NULL);
            return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: GIF holds no image", name);
        }
        if (rt == EXTENSION_RECORD_TYPE) {
            int code;
            GifByteType *ext;
            if (DGifGetExtension(g, &code, &ext) == GIF_ERROR)
                return fail_gif(g, &src, name, size, "in an extension block");
            // Pillow: the last graphic control block before the image, flag bit 0 -> index.
            if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4)
                transparent = (ext[1] & 1) ? ext[4] : -1;
            while (ext) {
                if (DGifGetExtensionNext(g, &ext) == GIF_ERROR)
                    return fail_gif(g, &src, name, size, "in an extension block");
            }
            continue;
        }
        if (rt != IMAGE_DESC_RECORD_TYPE) continue;   // UNDEFINED: giflib already skipped it
        if (DGifGetImageDesc(g) == GIF_ERROR)
            return fail_gif(g, &src, name, size, "in the image descriptor");
        break;
    }
    const GifImageDesc *d = &g->Image;
    int64_t x0 = d->Left, y0 = d->Top, fw = d->Width, fh = d->Height;
    int64_t W = g->SWidth, H = g->SHeight;
    if (x0 + fw > W) W = x0 + fw;
    if (y0 + fh > H) H = y0 + fh;
    int st = ivl_image_check_size(name, "GIF", W, H, max_pixels);
    if (st) {
        DGifCloseFile(g, NULL);
        return st;
    }
    const ColorMapObject *cm = d->ColorMap ? d->ColorMap : g->SColorMap;
    if (cm && identity_gray(cm)) cm = NULL;     // mode "L": index = gray level
    // (built now: the colour maps belong to g, which is closed before the mapping)
    uint8_t lut[256][3];
    for (int i = 0; i < 256; i++) {
        if (!cm || i >= cm->ColorCount) {     // Pillow's palettes start as the gray ramp
            lut[i][0] = lut[i][1] = lut[i][2] = (uint8_t)i;
        } else {
            lut[i][0] = cm->Colors[i].Red;
            lut[i][1] = cm->Colors[i].Green;
            lut[i][2] = cm->Colors[i].Blue;
        }
    }

    uint8_t *idx = malloc((size_t)(W * H));
    GifPixelType *line = malloc(fw > 0 ? (size_t)fw : 1);
    if (!idx || !line) {
        free(idx);
        free(line);
        DGifCloseFile(g, NULL);
        return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: out of memory for %lldx%lld pixels", name,
                              (long long)W, (long long)H);
    }
    memset(idx, transparent >= 0 ? transparent : 0, (size_t)(W * H));
    static const int k_start[4] = {0, 4, 2, 1}, k_step[4] = {8, 8, 4, 2};
    int passes = d->Interlace ? 4 : 1;
    for (int p = 0; p < passes; p++) {
        int64_t y = d->Interlace ? k_start[p] : 0, step = d->Interlace ? k_step[p] : 1;
        for (; y < fh; y += step) {
            if (fw > 0 && DGifGetLine(g, line, (int)fw) == GIF_ERROR) {
                free(idx);
                free(line);
                return fail_gif(g, &src, name, size, "in the first frame's pixels");
            }
            memcpy(idx + (y0 + y) * W + x0, line, (size_t)fw);
        }
    }
    free(line);
    DGifCloseFile(g, NULL);

    uint8_t *pix = malloc((size_t)(W * H) * 3);
    if (!pix) {
        free(idx);
        return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: out of memory for %lldx%lld pixels", name,
                              (long long)W, (long long)H);
    }
    for (int64_t i = 0; i < W * H; i++) memcpy(pix + 3 * i, lut[idx[i]], 3);
    free(idx);
    out->width = (int)W;
    out->height = (int)H;
    out->rgb = pix;
    return IVL_IMAGE_OK;
}
