// preprocess.c - dynamic_preprocess tiles and ToTensor + Normalize (spec 7.1 steps 3-5).
//
// The float of a pixel depends only on its byte and channel, so the normalisation is a
// 3 x 256 table filled with exactly torch's float32 operations: (u8 / 255.f - mean) / std.
#pragma GCC optimize("fp-contract=off")
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/image/image.h"

const float ivl_image_mean[3] = {0.485f, 0.456f, 0.406f};
const float ivl_image_std[3] = {0.229f, 0.224f, 0.225f};

ivl_preprocess_opts ivl_preprocess_defaults(void) {
    ivl_preprocess_opts o = {.image_size = 448, .min_tiles = 1, .max_tiles = 12,
                             .use_thumbnail = 1, .dtype = IVL_F32,
                             .max_pixels = IVL_IMAGE_DEFAULT_MAX_PIXELS,
                             .max_file_bytes = IVL_IMAGE_DEFAULT_MAX_FILE_BYTES};
    return o;
}

static void norm_table(float t[3][256]) {
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            volatile float f = (float)v / 255.0f;     // ToTensor: .float().div(255)
            volatile float d = f - ivl_image_mean[c]; // Normalize: .sub_(mean)
            t[c][v] = d / ivl_image_std[c];           //            .div_(std)
        }
}

// One S x S tile whose top-left pixel is `src` (rows `stride` bytes apart) -> CHW.
static void tile_to_chw(const uint8_t *src, size_t stride, int S, const float t[3][256],
                        ivl_dtype dt, void *dst) {
    size_t plane = (size_t)S * S;
    for (int y = 0; y < S; y++) {
        const uint8_t *p = src + (size_t)y * stride;
        size_t o = (size_t)y * S;
        if (dt == IVL_BF16) {
            uint16_t *d = dst;
            for (int x = 0; x < S; x++) {
                d[o + x] = ivl_f32_to_bf16(t[0][p[3 * x]]);
                d[plane + o + x] = ivl_f32_to_bf16(t[1][p[3 * x + 1]]);
                d[2 * plane + o + x] = ivl_f32_to_bf16(t[2][p[3 * x + 2]]);
            }
        } else {
            float *d = dst;
            for (int x = 0; x < S; x++) {
                d[o + x] = t[0][p[3 * x]];
                d[plane + o + x] = t[1][p[3 * x + 1]];
                d[2 * plane + o + x] = t[2][p[3 * x + 2]];
            }
        }
    }
}

static void normalize(const uint8_t *hwc, int n, int S, ivl_dtype dt, void *chw) {
    float t[3][256];
    norm_table(t);
    size_t esz = dt == IVL_BF16 ? 2 : 4;
    for (int k = 0; k < n; k++)
        tile_to_chw(hwc + (size_t)k * S * S * 3, (size_t)S * 3, S, t, dt,
                    (char *)chw + (size_t)k * 3 * S * S * esz);
}

void ivl_tiles_normalize_f32(const uint8_t *hwc, int n, int S, float *chw) {
    normalize(hwc, n, S, IVL_F32, chw);
}

void ivl_tiles_normalize_bf16(const uint8_t *hwc, int n, int S, uint16_t *chw) {
    normalize(hwc, n, S, IVL_BF16, chw);
}

// Resizes for the grid and calls emit(k, top-left, stride) for each tile in order. The
// grid image and the thumbnail are the only buffers.
typedef void (*tile_fn)(void *ctx, int k, const uint8_t *src, size_t stride);

static int for_each_tile(const ivl_image *img, const ivl_tile_grid *g, int S, tile_fn emit,
                         void *ctx) {
    int gw = S * g->cols, gh = S * g->rows;
    uint8_t *big = malloc((size_t)gw * gh * 3);
    if (!big) return ivl_errorf("preprocess: out of memory for a %dx%d resize", gw, gh);
    if (ivl_image_resize_bicubic(img->rgb, img->width, img->height, big, gw, gh)) {
        free(big);
        return -1;
    }
    int k = 0;
    for (int r = 0; r < g->rows; r++)
        for (int c = 0; c < g->cols; c++, k++)
            emit(ctx, k, big + ((size_t)r * S * gw + (size_t)c * S) * 3, (size_t)gw * 3);
    if (g->thumbnail) {
        // With a 1x1 grid there is no thumbnail, so big can be reused when it is big enough.
        if (ivl_image_resize_bicubic(img->rgb, img->width, img->height, big, S, S)) {
            free(big);
            return -1;
        }
        emit(ctx, k, big, (size_t)S * 3);
    }
    free(big);
    return 0;
}

typedef struct {
    int S;
    uint8_t *out;
} u8_ctx;

static void emit_u8(void *vctx, int k, const uint8_t *src, size_t stride) {
    u8_ctx *c = vctx;
    uint8_t *d = c->out + (size_t)k * c->S * c->S * 3;
    for (int y = 0; y < c->S; y++) memcpy(d + (size_t)y * c->S * 3, src + y * stride, (size_t)c->S * 3);
}

static int check_grid(const ivl_image *img, const ivl_tile_grid *g, int S) {
    if (!img || !img->rgb || img->width < 1 || img->height < 1)
        return ivl_errorf("preprocess: empty image");
    if (!g || g->cols < 1 || g->rows < 1 || S < 1 || (int64_t)S * g->cols > (1 << 16) ||
        (int64_t)S * g->rows > (1 << 16))
        return ivl_errorf("preprocess: bad grid or tile size");
    return 0;
}

int ivl_image_tiles_u8(const ivl_image *img, const ivl_tile_grid *g, int S, uint8_t *out) {
    if (check_grid(img, g, S)) return -1;
    u8_ctx c = {S, out};
    return for_each_tile(img, g, S, emit_u8, &c);
}

typedef struct {
    int S;
    ivl_dtype dt;
    void *out;
    float t[3][256];
} norm_ctx;

static void emit_norm(void *vctx, int k, const uint8_t *src, size_t stride) {
    norm_ctx *c = vctx;
    size_t esz = c->dt == IVL_BF16 ? 2 : 4;
    tile_to_chw(src, stride, c->S, (const float(*)[256])c->t, c->dt,
                (char *)c->out + (size_t)k * 3 * c->S * c->S * esz);
}

int ivl_image_preprocess(const ivl_image *img, const ivl_preprocess_opts *opts,
                         ivl_tile_grid *grid, void **pixels) {
    ivl_preprocess_opts o = opts ? *opts : ivl_preprocess_defaults();
    *pixels = NULL;
    if (o.dtype != IVL_F32 && o.dtype != IVL_BF16 && o.dtype != IVL_U8)
        return ivl_errorf("preprocess: output dtype must be f32, bf16 or u8, not %s",
                          ivl_dtype_name(o.dtype));
    if (!img || !img->rgb) return ivl_errorf("preprocess: empty image");
    if (ivl_tile_grid_select(img->width, img->height, o.min_tiles, o.max_tiles, o.image_size,
                             o.use_thumbnail, grid))
        return -1;
    if (check_grid(img, grid, o.image_size)) return -1;
    if (o.dtype == IVL_U8) {   // the tiles before ToTensor + Normalize (a quarter of f32)
        uint8_t *u8 = malloc((size_t)grid->ntiles * 3 * o.image_size * o.image_size);
        if (!u8) return ivl_errorf("preprocess: out of memory for %d tiles", grid->ntiles);
        if (ivl_image_tiles_u8(img, grid, o.image_size, u8)) {
            free(u8);
            return -1;
        }
        *pixels = u8;
        return 0;
    }
    size_t esz = o.dtype == IVL_BF16 ? 2 : 4;
    norm_ctx *c = malloc(sizeof *c);
    void *out = malloc((size_t)grid->ntiles * 3 * o.image_size * o.image_size * esz);
    if (!c || !out) {
        free(c);
        free(out);
        return ivl_errorf("preprocess: out of memory for %d tiles", grid->ntiles);
    }
    c->S = o.image_size;
    c->dt = o.dtype;
    c->out = out;
    norm_table(c->t);
    int rc = for_each_tile(img, grid, o.image_size, emit_norm, c);
    free(c);
    if (rc) {
        free(out);
        return -1;
    }
    *pixels = out;
    return 0;
}
