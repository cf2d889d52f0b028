// image_internal.h - what the decoders in core/image/ share; not part of the public API.
#ifndef IVL_IMAGE_INTERNAL_H
#define IVL_IMAGE_INTERNAL_H

#include "core/image/image.h"

// Sets ivl_last_error() to the formatted message and returns `st` (so a decoder can
// `return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: ...", name)`).
int ivl_image_fail(ivl_image_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// The decoders: `name` is never NULL, `max_pixels` is > 0, the data is non-empty and
// carries the format's signature.
int ivl_image_decode_jpeg(const uint8_t *data, size_t size, const char *name,
                          int64_t max_pixels, ivl_image *out);
int ivl_image_decode_png(const uint8_t *data, size_t size, const char *name,
                         int64_t max_pixels, ivl_image *out);
int ivl_image_decode_webp(const uint8_t *data, size_t size, const char *name,
                          int64_t max_pixels, ivl_image *out);
int ivl_image_decode_gif(const uint8_t *data, size_t size, const char *name,
                         int64_t max_pixels, ivl_image *out);
int ivl_image_decode_bmp(const uint8_t *data, size_t size, const char *name,
                         int64_t max_pixels, ivl_image *out);
int ivl_image_decode_tiff(const uint8_t *data, size_t size, const char *name,
                          int64_t max_pixels, ivl_image *out);

// The pixel-limit check every decoder makes from its header before allocating pixels:
// returns IVL_IMAGE_OK, or IVL_IMAGE_E_TOO_LARGE (or E_CORRUPT for a zero/negative side)
// with the message "<name>: <FMT> is WxH = N pixels, above the limit of L (possible
// decompression bomb)".
int ivl_image_check_size(const char *name, const char *fmt, int64_t w, int64_t h,
                         int64_t max_pixels);

// The Orientation tag (1..8, 1 when absent or not a value in 1..8) of a TIFF file's first
// IFD, read as Pillow reads it (exif.c): decode_tiff.c applies it as Pillow's loader does.
int ivl_image_tiff_orientation(const uint8_t *data, size_t size);

// Pillow's CMYK -> RGB (Convert.c cmyk2rgb): R = nk - MULDIV255(C, nk), nk = 255 - K.
static inline uint8_t ivl_cmyk_channel(unsigned c, unsigned k) {
    unsigned nk = 255 - k, t = c * nk + 128;
    return (uint8_t)(nk - ((t + (t >> 8)) >> 8));
}

#endif
