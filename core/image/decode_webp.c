// decode_webp.c - WebP to RGB with libwebp, matching Pillow's WebP plugin + convert('RGB').
//
// Pillow 9.4 built with libwebpmux (Debian's python3-pil is) opens every WebP, still or
// animated, through WebPAnimDecoder with its default options (MODE_RGBA, non-premultiplied,
// fancy upsampling for lossy) and hands out the first reconstructed canvas: mode "RGB" when
// the bitstream has no alpha, "RGBA" otherwise. convert('RGB') drops alpha without
// compositing. We use the same API, so lossy, lossless, alpha (ALPH chunk) and animations
// (first frame on the zero-filled canvas, frame offsets honoured) come out as in Pillow.
// The canvas size is read with WebPGetFeatures before the decoder allocates anything.
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include "core/image/image_internal.h"

int ivl_image_decode_webp(const uint8_t *data, size_t size, const char *name,
                          int64_t max_pixels, ivl_image *out) {
    // RIFF size field: the file is cut short when it promises more bytes than it has.
    uint32_t riff = (uint32_t)data[4] | (uint32_t)data[5] << 8 | (uint32_t)data[6] << 16 |
                    (uint32_t)data[7] << 24;
    int short_file = (uint64_t)riff + 8 > size;
    WebPBitstreamFeatures feat;
    VP8StatusCode vs = WebPGetFeatures(data, size, &feat);
    if (vs == VP8_STATUS_NOT_ENOUGH_DATA || (vs != VP8_STATUS_OK && short_file))
        return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: WebP file is truncated (%zu bytes)",
                              name, size);
    if (vs != VP8_STATUS_OK)
        return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: corrupt WebP header (libwebp status %d)",
                              name, (int)vs);
    int st = ivl_image_check_size(name, "WebP", feat.width, feat.height, max_pixels);
    if (st) return st;

    WebPData wd = {.bytes = data, .size = size};
    WebPAnimDecoderOptions opt;
    if (!WebPAnimDecoderOptionsInit(&opt))
        return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: cannot set up the WebP decoder", name);
    opt.color_mode = MODE_RGBA;
    opt.use_threads = 0;
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &opt);
    if (!dec) {
        if (short_file)
            return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: WebP file is truncated (%zu bytes, "
                                  "the RIFF header says %llu)", name, size,
                                  (unsigned long long)riff + 8);
        return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: corrupt WebP: libwebp cannot parse the "
                              "container", name);
    }
    WebPAnimInfo info;
    uint8_t *rgba = NULL;
    int ts = 0;
    if (!WebPAnimDecoderGetInfo(dec, &info) ||
        (int64_t)info.canvas_width != feat.width || (int64_t)info.canvas_height != feat.height) {
        WebPAnimDecoderDelete(dec);
        return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: corrupt WebP: inconsistent canvas size",
                              name);
    }
    if (!WebPAnimDecoderGetNext(dec, &rgba, &ts)) {
        WebPAnimDecoderDelete(dec);
        if (short_file)
            return ivl_image_fail(IVL_IMAGE_E_TRUNCATED, "%s: WebP file is truncated (%zu bytes)",
                                  name, size);
        return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: corrupt WebP: the first frame does not "
                              "decode", name);
    }
    size_t npix = (size_t)feat.width * (size_t)feat.height;
    uint8_t *pix = malloc(npix * 3);
    if (!pix) {
        WebPAnimDecoderDelete(dec);
        return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: out of memory for %dx%d pixels", name,
                              feat.width, feat.height);
    }
    for (size_t i = 0; i < npix; i++) memcpy(pix + 3 * i, rgba + 4 * i, 3);   // alpha dropped
    WebPAnimDecoderDelete(dec);
    out->width = feat.width;
    out->height = feat.height;
    out->rgb = pix;
    return IVL_IMAGE_OK;
}
