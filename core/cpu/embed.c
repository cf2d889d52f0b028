// embed.c - data movement specific to the models: token embedding lookup, the ViT patch
// embedding (im2col + GEMM), pixel shuffle (spec section 3) and greedy argmax.
#include "core/check.h"
#include "core/cpu/cpu_ops.h"

#include <math.h>
#include <stdlib.h>

void ivl_cpu_embed(float *out, const float *table, int64_t rows, int64_t D, const int32_t *ids,
                   int64_t n) {
    for (int64_t i = 0; i < n; i++)
        IVL_CHECK(ids[i] >= 0 && ids[i] < rows,
                  "embed: token id %d at position %lld is outside the embedding table "
                  "(%lld rows); the tokenizer and the model file do not match",
                  (int)ids[i], (long long)i, (long long)rows);
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * D, table + (int64_t)ids[i] * D, sizeof(float) * (size_t)D);
}

// cols[p, (ch, y, x)] = pixel of patch p: the layout of a Conv2d weight row [3, patch, patch].
static void im2col_image(float *cols, const float *img, int64_t S, int patch) {
    int64_t g = S / patch, kk = 3 * (int64_t)patch * patch;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < g * g; p++) {
        int64_t r = p / g, c = p % g;
        float *dst = cols + p * kk;
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < patch; y++) {
                const float *src = img + ((int64_t)ch * S + r * patch + y) * S + c * patch;
                memcpy(dst, src, sizeof(float) * (size_t)patch);
                dst += patch;
            }
    }
}

void ivl_cpu_patch_embed(float *out, const float *pixels, const float *w, const float *bias,
                         int64_t B, int64_t S, int64_t C, int patch) {
    IVL_CHECK(patch > 0 && S % patch == 0, "patch_embed: image size %lld is not a multiple of "
              "the patch size %d", (long long)S, patch);
    int64_t g = S / patch, kk = 3 * (int64_t)patch * patch;
    // One image at a time: the im2col buffer stays small (2.4 MB at 448 px, patch 14) and
    // the GEMM (1024 x C x 588) is large enough to use every thread.
    float *cols = ivl_malloc(sizeof(float) * (size_t)(g * g * kk));
    for (int64_t b = 0; b < B; b++) {
        im2col_image(cols, pixels + b * 3 * S * S, S, patch);
        ivl_cpu_matmul(out + b * g * g * C, cols, w, bias, g * g, C, kk);
    }
    free(cols);
}

void ivl_cpu_pixel_shuffle(float *out, const float *in, int64_t B, int grid, int64_t C,
                           int version) {
    IVL_CHECK(grid > 0 && grid % 2 == 0, "pixel_shuffle: grid %d is not even", grid);
    IVL_CHECK(version == 1 || version == 2, "pixel_shuffle: ps_version %d (use 1 or 2)",
              version);
    const int64_t h = grid / 2, n_out = B * h * h;
    const size_t row = sizeof(float) * (size_t)C;
#pragma omp parallel for schedule(static) if (n_out * C > 65536)
    for (int64_t o = 0; o < n_out; o++) {
        int64_t b = o / (h * h), t = o % (h * h);
        // v2: t = i*h + j; v1 (legacy, transposed): t = j*h + i.
        int64_t i = version == 2 ? t / h : t % h, j = version == 2 ? t % h : t / h;
        const float *X = in + b * (int64_t)grid * grid * C;
        float *Y = out + o * 4 * C;
        memcpy(Y + 0 * C, X + ((2 * i) * grid + 2 * j) * C, row);
        memcpy(Y + 1 * C, X + ((2 * i) * grid + 2 * j + 1) * C, row);
        memcpy(Y + 2 * C, X + ((2 * i + 1) * grid + 2 * j) * C, row);
        memcpy(Y + 3 * C, X + ((2 * i + 1) * grid + 2 * j + 1) * C, row);
    }
}

// NaN never wins (comparisons with NaN are false); the first of equal maxima does.
void ivl_cpu_argmax(const float *logits, int64_t R, int64_t V, int32_t *ids) {
#pragma omp parallel for schedule(static) if (R > 1 && R * V > 65536)
    for (int64_t r = 0; r < R; r++) {
        const float *x = logits + r * V;
        int64_t best = 0;
        float bv = -INFINITY;
        for (int64_t j = 0; j < V; j++)
            if (x[j] > bv) {
                bv = x[j];
                best = j;
            }
        ids[r] = (int32_t)best;
    }
}
