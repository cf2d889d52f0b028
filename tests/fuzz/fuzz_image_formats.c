// fuzz_image_formats.c - the WebP, GIF, BMP and TIFF decoders (core/image/decode_{webp,gif,
// bmp,tiff}.c) on untrusted bytes. Byte 0 picks the decoder and the pixel limit; the rest is
// the file, whose first bytes are overwritten with that format's signature so every input
// reaches the chosen decoder (the fuzzer does not have to find the magic numbers):
//   byte 0 & 3: 0 WebP ("RIFF" ... "WEBP"), 1 GIF ("GIF89a"), 2 BMP ("BM"), 3 TIFF
//               ("II*\0", or "MM\0*" when bit 2 is set)
//   byte 0 >> 3: pixel limit 2^(12 + n % 10): up to 2M pixels, so absurd header sizes are
//               refused from the header and an exec stays fast.
//   byte 0 bit 7: decode with exif_transpose (ivl_image_decode_oriented). Every input also
//               goes through ivl_image_exif_orientation (EXIF/XMP parsing, core/image/exif.c),
//               as is, as a JPEG APP1 Exif payload and as a PNG's chunk stream.
// Oracle besides "no crash, no leak, no UB": a failure has a status in range, a message and
// no pixels; a success is inside the pixel limit, and decoding the same bytes again gives the
// same pixels (a read of uninitialised memory or state kept between calls would differ).
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/image/image.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_common();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t n = size - 1;
    uint8_t *buf = malloc(n < 12 ? 12 : n);
    memset(buf, 0, n < 12 ? 12 : n);
    memcpy(buf, data + 1, n);
    switch (data[0] & 3) {
    case 0:
        if (n < 12) n = 12;
        memcpy(buf, "RIFF", 4);
        memcpy(buf + 8, "WEBP", 4);
        break;
    case 1:
        if (n < 6) n = 6;
        memcpy(buf, "GIF89a", 6);
        break;
    case 2:
        memcpy(buf, "BM", 2);
        break;
    default:
        if (n < 4) n = 4;
        memcpy(buf, (data[0] & 4) ? "MM\0*" : "II*\0", 4);
        break;
    }
    int64_t limit = (int64_t)1 << (12 + (data[0] >> 3) % 10);

    int exif = data[0] >> 7;
    int o = ivl_image_exif_orientation(buf, n);
    if (o < 1 || o > 8) __builtin_trap();
    // The rest as a JPEG's APP1 "Exif" block, and as the chunks after a PNG signature
    // (eXIf, tEXt/zTXt/iTXt raw profiles and XMP).
    uint8_t *alt = malloc(n + 12);
    memcpy(alt, "\xff\xd8\xff\xe1\x00\x00" "Exif\0\0", 12);
    alt[4] = (uint8_t)((n + 8) >> 8);
    alt[5] = (uint8_t)(n + 8);
    memcpy(alt + 12, buf, n);
    o = ivl_image_exif_orientation(alt, n + 12);
    if (o < 1 || o > 8) __builtin_trap();
    memcpy(alt + 4, "\x89PNG\r\n\x1a\n", 8);
    o = ivl_image_exif_orientation(alt + 4, n + 8);
    free(alt);
    if (o < 1 || o > 8) __builtin_trap();

    ivl_image a, b;
    int st = ivl_image_decode_oriented(buf, n, "fuzz", limit, exif, &a);
    if (st != IVL_IMAGE_OK) {
        if (st > 0 || st < IVL_IMAGE_E_ARG || !ivl_last_error()[0]) __builtin_trap();
        if (a.rgb || a.width || a.height) __builtin_trap();
        free(buf);
        return 0;
    }
    if (a.width <= 0 || a.height <= 0 || (int64_t)a.width * a.height > limit || !a.rgb)
        __builtin_trap();
    if (ivl_image_decode_oriented(buf, n, "fuzz", limit, exif, &b) != IVL_IMAGE_OK) __builtin_trap();
    if (a.width != b.width || a.height != b.height ||
        memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3))
        __builtin_trap();
    ivl_image_free(&a);
    ivl_image_free(&b);
    free(buf);
    return 0;
}
