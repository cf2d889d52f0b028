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

#endif
