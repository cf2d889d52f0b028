// fuzz_image.c - image decoding plus tiling of untrusted files (scraped images, tar members).
// The input is a JPEG/PNG/anything file preceded by 4 option bytes:
//   byte 0: max_tiles 1..40; byte 1: image_size (14, 28, 56 or 448) and use_thumbnail;
//   byte 2: bf16 output; byte 3: pixel limit (2^16 .. 2^21, so absurd header sizes are refused
//   from the header and the rest stays fast).
// A decoded image goes through ivl_image_preprocess. The tiling math is also run on the raw
// width/height words of the input (negative, zero, 2^31-1: absurd sizes).
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/image/image.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_common();
    return 0;
}

static const int k_sizes[4] = {14, 28, 56, 448};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    ivl_preprocess_opts o = ivl_preprocess_defaults();
    o.max_tiles = 1 + data[0] % 40;
    o.image_size = k_sizes[data[1] & 3];
    o.use_thumbnail = (data[1] >> 2) & 1;
    o.dtype = (data[2] & 1) ? IVL_BF16 : IVL_F32;
    o.max_pixels = (int64_t)1 << (16 + data[3] % 6);   // up to 2M pixels: fast enough per exec
    if (o.image_size == 448 && o.max_tiles > 4) o.max_tiles = 4;   // keep an exec under ~50 ms

    // Tiling on sizes straight from the input.
    if (size >= 12) {
        int32_t w, h;
        memcpy(&w, data + 4, 4);
        memcpy(&h, data + 8, 4);
        ivl_tile_grid g;
        if (ivl_tile_grid_select(w, h, 1, o.max_tiles, o.image_size, o.use_thumbnail, &g) == 0)
            if (g.cols < 1 || g.rows < 1 || g.cols * g.rows > o.max_tiles) __builtin_trap();
    }

    ivl_image img;
    int st = ivl_image_decode(data + 4, size - 4, "fuzz", o.max_pixels, &img);
    if (st != IVL_IMAGE_OK) {
        if (st > 0 || st < IVL_IMAGE_E_ARG || !ivl_last_error()[0]) __builtin_trap();
        if (img.rgb) __builtin_trap();
        return 0;
    }
    if (img.width <= 0 || img.height <= 0 || (int64_t)img.width * img.height > o.max_pixels)
        __builtin_trap();
    ivl_tile_grid g;
    void *pix = NULL;
    if (ivl_image_preprocess(&img, &o, &g, &pix) == 0) {
        if (g.ntiles < 1 || g.ntiles > o.max_tiles + 1) __builtin_trap();
        free(pix);
    }
    ivl_image_free(&img);
    return 0;
}
