// resize.c - Pillow's BICUBIC Image.resize for 8-bit RGB, bit-exact (spec 7.2).
//
// A transcription of the behaviour of Pillow's libImaging/Resample.c (precompute_coeffs,
// normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc, ImagingResampleInner)
// for box = (0, 0, w, h): the double-precision weights are computed with the same
// expressions in the same order, then rounded to 22-bit fixed point; sums are int32 with a
// 2^21 rounding bias, shifted and clamped. The coefficient tables are built once per call;
// the pixel loops allocate nothing.
//
// Floating point contraction (FMA) would change the doubles and so the rounded
// coefficients: it is switched off for this file.
#pragma GCC optimize("fp-contract=off")
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/image/image.h"

#define PRECISION_BITS (32 - 8 - 2)

// The passes are int32 multiply-adds: baseline x86-64 (SSE2) has no 32-bit vector multiply,
// AVX2 does. GCC's target_clones builds both and picks at load time (integer results are
// the same either way).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define IVL_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define IVL_SIMD_CLONES
#endif

typedef struct {
    int ksize;         // coefficients per output sample (padded with zeros)
    int *bounds;       // [out][2]: first input index, number of inputs used
    int32_t *kk;       // [out][ksize] fixed point weights
} coeffs;

static double bicubic_filter(double x) {
#define a -0.5
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
#undef a
}

static int precompute_coeffs(int in_size, int out_size, coeffs *c) {
    const float in0 = 0.0f, in1 = (float)in_size;    // Pillow keeps the box in floats
    double scale, filterscale;
    filterscale = scale = (double)(in1 - in0) / out_size;
    if (filterscale < 1.0) filterscale = 1.0;
    double support = 2.0 * filterscale;               // bicubic support 2, widened
    int ksize = (int)ceil(support) * 2 + 1;
    double *kd = malloc(sizeof(double) * (size_t)out_size * ksize);
    c->kk = malloc(sizeof(int32_t) * (size_t)out_size * ksize);
    c->bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
    c->ksize = ksize;
    if (!kd || !c->kk || !c->bounds) {
        free(kd);
        free(c->kk);
        free(c->bounds);
        c->kk = NULL;
        c->bounds = NULL;
        return -1;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = &kd[(size_t)xx * ksize];
        int x;
        for (x = 0; x < xmax; x++) {
            double w = bicubic_filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        c->bounds[xx * 2 + 0] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * ksize; i++) {
        if (kd[i] < 0) c->kk[i] = (int32_t)(-0.5 + kd[i] * (1 << PRECISION_BITS));
        else c->kk[i] = (int32_t)(0.5 + kd[i] * (1 << PRECISION_BITS));
    }
    free(kd);
    return 0;
}

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->kk);
}

static inline uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;                 // arithmetic shift, as Pillow
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Rows [y0, y0 + nrows) of src (sw wide) -> dst (dw wide, nrows tall): Pillow's loop. Each
// source row is first widened to 4 bytes a pixel (as Pillow stores RGB) so that the three
// channel sums are one 4-lane integer vector the compiler can keep in a SIMD register; the
// 4th lane is unused. Integer sums: the bytes are Pillow's.
IVL_SIMD_CLONES static int resample_horizontal(const uint8_t *src, int sw, int y0, int nrows, uint8_t *dst,
                               int dw, const coeffs *c) {
    uint8_t *row4 = malloc((size_t)sw * 4);
    if (!row4) return -1;
    for (int yy = 0; yy < nrows; yy++) {
        const uint8_t *in = src + (size_t)(y0 + yy) * sw * 3;
        for (int x = 0; x < sw; x++) {
            row4[4 * x + 0] = in[3 * x + 0];
            row4[4 * x + 1] = in[3 * x + 1];
            row4[4 * x + 2] = in[3 * x + 2];
            row4[4 * x + 3] = 0;
        }
        uint8_t *o = dst + (size_t)yy * dw * 3;
        for (int xx = 0; xx < dw; xx++) {
            int xmin = c->bounds[xx * 2], xmax = c->bounds[xx * 2 + 1];
            const int32_t *k = &c->kk[(size_t)xx * c->ksize];
            const uint8_t *p = row4 + (size_t)xmin * 4;
            int32_t s[4] = {1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1),
                            1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1)};
            for (int x = 0; x < xmax; x++, p += 4)
                for (int ch = 0; ch < 4; ch++) s[ch] += p[ch] * k[x];
            o[xx * 3 + 0] = clip8(s[0]);
            o[xx * 3 + 1] = clip8(s[1]);
            o[xx * 3 + 2] = clip8(s[2]);
        }
    }
    free(row4);
    return 0;
}

// src (w wide) -> dst (w wide, dh tall); bounds index rows of src. The sums are exact int32
// (no overflow for 8-bit data), so accumulating a whole row at a time gives the same bits as
// Pillow's per-pixel loop and lets the compiler vectorise.
IVL_SIMD_CLONES static int resample_vertical(const uint8_t *src, int w, uint8_t *dst, int dh, const coeffs *c) {
    size_t n = (size_t)w * 3;
    int32_t *acc = malloc(sizeof(int32_t) * n);
    if (!acc) return -1;
    for (int yy = 0; yy < dh; yy++) {
        int ymin = c->bounds[yy * 2], ymax = c->bounds[yy * 2 + 1];
        const int32_t *k = &c->kk[(size_t)yy * c->ksize];
        for (size_t i = 0; i < n; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < ymax; y++) {
            const uint8_t *row = src + (size_t)(ymin + y) * n;
            int32_t ky = k[y];
            for (size_t i = 0; i < n; i++) acc[i] += row[i] * ky;
        }
        uint8_t *o = dst + (size_t)yy * n;
        for (size_t i = 0; i < n; i++) o[i] = clip8(acc[i]);
    }
    free(acc);
    return 0;
}

int ivl_image_resize_bicubic(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh) {
    if (!src || !dst || sw < 1 || sh < 1 || dw < 1 || dh < 1)
        return ivl_errorf("resize: bad sizes %dx%d -> %dx%d", sw, sh, dw, dh);
    int need_h = dw != sw, need_v = dh != sh;
    if (!need_h && !need_v) {
        memcpy(dst, src, (size_t)sw * sh * 3);
        return 0;
    }
    coeffs ch = {0}, cv = {0};
    uint8_t *tmp = NULL;
    int rc = -1;
    if (precompute_coeffs(sw, dw, &ch) || precompute_coeffs(sh, dh, &cv)) goto done;
    if (need_h) {
        // Only the source rows the vertical pass reads (all of them when it is skipped).
        int yfirst = cv.bounds[0];
        int ylast = cv.bounds[dh * 2 - 2] + cv.bounds[dh * 2 - 1];
        if (!need_v) {
            rc = resample_horizontal(src, sw, 0, sh, dst, dw, &ch);
            goto done;
        }
        for (int i = 0; i < dh; i++) cv.bounds[i * 2] -= yfirst;
        tmp = malloc((size_t)dw * (ylast - yfirst) * 3);
        if (!tmp) goto done;
        rc = resample_horizontal(src, sw, yfirst, ylast - yfirst, tmp, dw, &ch);
        if (!rc) rc = resample_vertical(tmp, dw, dst, dh, &cv);
    } else {
        rc = resample_vertical(src, sw, dst, dh, &cv);
    }
done:
    coeffs_free(&ch);
    coeffs_free(&cv);
    free(tmp);
    if (rc) return ivl_errorf("resize %dx%d -> %dx%d: out of memory", sw, sh, dw, dh);
    return 0;
}
