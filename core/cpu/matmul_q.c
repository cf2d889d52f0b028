// matmul_q.c - y = x W^T + b with W a quantized weight (int8 or int4, scales per group of
// inputs, weights/SCHEMA.md "Quantized tensors"), activations f32.
//
// CPU layout (ivl_cpu_qweight_pack): one 64-byte-aligned block holding the ivl_qweight header,
// the packed integers, the f32 scales and the zero points. int8 rows are the file's rows.
// int4 rows are repacked by blocks of 32 inputs: byte j of a block holds input j in its low
// nibble and input j + 16 in its high nibble, so one 16-byte load widened to 16 x i32 gives
// inputs 0..15 with an AND and inputs 16..31 with a shift (the file's "even low, odd high"
// order would need a shuffle per vector).
//
// Few rows (decode, M <= IVL_Q_SMALL_M): every weight row is dequantized in registers once per
// 4 input rows: the integers are widened to f32, multiplied into per-group accumulators,
// and each group's sum is scaled once (acc += s_g * sum_g q x); the zero point enters as
// s_g z_g sum_g x, with the group sums of x computed once per call. Many rows (prefill, ViT):
// a panel of 64 weight rows is dequantized to f32 and multiplied with OpenBLAS sgemm.
// AVX-512 and AVX2 variants are chosen at run time (__builtin_cpu_supports); the scalar
// variant is the fallback and the unit tests' check (IVL_CPU_QUANT=scalar|avx2|avx512).
#include "core/check.h"
#include "core/cpu/cpu_ops.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define IVL_Q_SMALL_M 8
#define PANEL 64
#ifndef PF_DIST
#define PF_DIST 1024   // bytes ahead in the weight stream (software prefetch, M <= 8)
#endif

// ---- packing ----

// int4 with groups of a multiple of 32 inputs is repacked by blocks of 32 (the vector
// kernels' layout); other groups (tiny test models) keep the file layout and take the
// scalar loops.
static inline int blocked(const ivl_qweight *w) { return w->bits == 4 && w->group % 32 == 0; }

ivl_qweight *ivl_cpu_qweight_pack(const ivl_qweight *h) {
    if (!h || (h->bits != 8 && h->bits != 4) || h->rows < 1 || h->cols < 1 || h->group < 1 ||
        h->cols % h->group || !h->q || !h->scales) {
        ivl_errorf("quantized weight: bad description (bits %d, [%lld, %lld], group %lld: the "
                   "group must divide the input width)",
                   h ? h->bits : 0, h ? (long long)h->rows : 0, h ? (long long)h->cols : 0,
                   h ? (long long)h->group : 0);
        return NULL;
    }
    if (h->bits == 4 && (h->group % 2 || !h->zeros)) {
        ivl_errorf("int4 weight [%lld, %lld]: group size %lld must be even and zero points are "
                   "required", (long long)h->rows, (long long)h->cols, (long long)h->group);
        return NULL;
    }
    const int64_t R = h->rows, K = h->cols, ng = K / h->group;
    const size_t qb = (size_t)(h->bits == 8 ? R * K : R * K / 2);
    const size_t hdr = 64, qoff = hdr, soff = (qoff + qb + 63) / 64 * 64;
    const size_t zoff = soff + (size_t)(R * ng) * sizeof(float);
    const size_t total = (zoff + (h->zeros ? (size_t)(R * ng) : 0) + 63) / 64 * 64;
    char *blk = aligned_alloc(64, total);
    if (!blk) {
        ivl_errorf("quantized weight [%lld, %lld]: out of memory (%zu bytes)", (long long)R,
                   (long long)K, total);
        return NULL;
    }
    ivl_qweight *w = (ivl_qweight *)blk;
    *w = *h;
    w->q = blk + qoff;
    w->scales = (float *)(blk + soff);
    w->zeros = h->zeros ? (uint8_t *)(blk + zoff) : NULL;
    memcpy(w->scales, h->scales, (size_t)(R * ng) * sizeof(float));
    if (h->zeros) memcpy(w->zeros, h->zeros, (size_t)(R * ng));
    if (!blocked(h)) {
        memcpy(w->q, h->q, qb);
    } else {
        const uint8_t *src = h->q;
        uint8_t *dst = w->q;
#pragma omp parallel for schedule(static) if (R * K > (1 << 20))
        for (int64_t r = 0; r < R; r++)
            for (int64_t b = 0; b < K / 32; b++) {
                const uint8_t *s = src + r * (K / 2) + b * 16;   // inputs 32b .. 32b+31
                uint8_t *d = dst + r * (K / 2) + b * 16;
                for (int j = 0; j < 16; j++) {
                    int lo = j % 2 ? s[j / 2] >> 4 : s[j / 2] & 15;              // input j
                    int hi = j % 2 ? s[8 + j / 2] >> 4 : s[8 + j / 2] & 15;      // input j+16
                    d[j] = (uint8_t)(lo | hi << 4);
                }
            }
    }
    return w;
}

// Input k of CPU-layout row r.
static inline int q_at(const ivl_qweight *w, int64_t r, int64_t k) {
    if (w->bits == 8) return ((const int8_t *)w->q)[r * w->cols + k];
    const uint8_t *row = (const uint8_t *)w->q + r * (w->cols / 2);
    if (!blocked(w)) return k % 2 ? row[k / 2] >> 4 : row[k / 2] & 15;
    int64_t b = k / 32, j = k % 32;
    uint8_t v = row[b * 16 + (j & 15)];
    return j < 16 ? v & 15 : v >> 4;
}

// ---- variants ----

enum { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
static int g_isa = -1;

static int isa_best(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ISA_AVX2;
    return ISA_SCALAR;
}

int ivl_cpu_matmul_q_set_isa(const char *name) {
    int best = isa_best(), want;
    if (!name || !*name) want = best;
    else if (!strcmp(name, "scalar")) want = ISA_SCALAR;
    else if (!strcmp(name, "avx2")) want = ISA_AVX2;
    else if (!strcmp(name, "avx512")) want = ISA_AVX512;
    else return ivl_errorf("IVL_CPU_QUANT=%s: expected scalar, avx2 or avx512", name);
    if (want > best) return ivl_errorf("IVL_CPU_QUANT=%s: this CPU lacks it", name);
    g_isa = want;
    return 0;
}

static int isa(void) {
    if (g_isa < 0 && ivl_cpu_matmul_q_set_isa(getenv("IVL_CPU_QUANT")) != 0) g_isa = isa_best();
    return g_isa;
}

const char *ivl_cpu_matmul_q_isa(void) {
    static const char *names[] = {"scalar", "avx2", "avx512"};
    return names[isa()];
}

// ---- scalar (fallback and reference) ----
// y[m, n] (n in [n0, n1), m in [m0, m0 + mr)) = sum_g s_g (sum_{k in g} q x - z_g xs[m, g])
static void rows_scalar(float *y, const float *x, const float *xs, const ivl_qweight *w,
                        int64_t n0, int64_t n1, int64_t m0, int mr, int64_t N) {
    const int64_t K = w->cols, G = w->group, ng = K / G;
    for (int64_t n = n0; n < n1; n++)
        for (int i = 0; i < mr; i++) {
            const float *xr = x + (m0 + i) * K;
            float acc = 0.0f;
            for (int64_t g = 0; g < ng; g++) {
                float a = 0.0f;
                for (int64_t k = g * G; k < (g + 1) * G; k++) a += (float)q_at(w, n, k) * xr[k];
                float s = w->scales[n * ng + g];
                acc += s * a;
                if (w->zeros) acc -= s * (float)w->zeros[n * ng + g] * xs[(m0 + i) * ng + g];
            }
            y[(m0 + i) * N + n] = acc;
        }
}

// ---- AVX-512 ----
#define TGT512 __attribute__((target("avx512f,avx512bw,fma"), always_inline)) static inline

TGT512 void rows_avx512_mr(float *y, const float *x, const float *xs, const ivl_qweight *w,
                           int64_t n0, int64_t n1, int64_t m0, const int mr, int64_t N) {
    const int64_t K = w->cols, G = w->group, ng = K / G;
    const __m512i m15 = _mm512_set1_epi32(15);
    for (int64_t n = n0; n < n1; n++) {
        __m512 acc[4];
        float corr[4] = {0, 0, 0, 0};
        for (int i = 0; i < 4; i++) acc[i] = _mm512_setzero_ps();
        const float *sc = w->scales + n * ng;
        if (w->bits == 8) {
            const int8_t *q = (const int8_t *)w->q + n * K;
            for (int64_t g = 0; g < ng; g++) {
                __m512 a0[4], a1[4];
                for (int i = 0; i < 4; i++) a0[i] = a1[i] = _mm512_setzero_ps();
                for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
                    _mm_prefetch((const char *)(q + k) + PF_DIST, _MM_HINT_T0);
                    __m512 w0 = _mm512_cvtepi32_ps(
                        _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + k))));
                    __m512 w1 = _mm512_cvtepi32_ps(
                        _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + k + 16))));
                    for (int i = 0; i < mr; i++) {
                        const float *xr = x + (m0 + i) * K + k;
                        a0[i] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr), a0[i]);
                        a1[i] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), a1[i]);
                    }
                }
                __m512 s = _mm512_set1_ps(sc[g]);
                for (int i = 0; i < mr; i++) {
                    acc[i] = _mm512_fmadd_ps(_mm512_add_ps(a0[i], a1[i]), s, acc[i]);
                    if (w->zeros) corr[i] += sc[g] * (float)w->zeros[n * ng + g] * xs[(m0 + i) * ng + g];
                }
            }
        } else {
            const uint8_t *q = (const uint8_t *)w->q + n * (K / 2);
            const uint8_t *zp = w->zeros + n * ng;
            for (int64_t g = 0; g < ng; g++) {
                __m512 a0[4], a1[4];
                for (int i = 0; i < 4; i++) a0[i] = a1[i] = _mm512_setzero_ps();
                for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
                    if (!(k & 127)) _mm_prefetch((const char *)(q + k / 2) + PF_DIST, _MM_HINT_T0);
                    __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + k / 2)));
                    __m512 w0 = _mm512_cvtepi32_ps(_mm512_and_si512(b, m15));
                    __m512 w1 = _mm512_cvtepi32_ps(_mm512_srli_epi32(b, 4));
                    for (int i = 0; i < mr; i++) {
                        const float *xr = x + (m0 + i) * K + k;
                        a0[i] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr), a0[i]);
                        a1[i] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), a1[i]);
                    }
                }
                __m512 s = _mm512_set1_ps(sc[g]);
                for (int i = 0; i < mr; i++) {
                    acc[i] = _mm512_fmadd_ps(_mm512_add_ps(a0[i], a1[i]), s, acc[i]);
                    corr[i] += sc[g] * (float)zp[g] * xs[(m0 + i) * ng + g];
                }
            }
        }
        for (int i = 0; i < mr; i++) y[(m0 + i) * N + n] = _mm512_reduce_add_ps(acc[i]) - corr[i];
    }
}

// One input row (decode, batch 1), two weight rows at a time: each x vector loaded once
// serves both rows (down's x of 8192 floats does not stay in L1; down int8 1.9 -> 1.35 ms at
// one thread).
TGT512 void rows2_avx512_m1(float *y, const float *x, const float *xs, const ivl_qweight *w,
                            int64_t n) {
    const int64_t K = w->cols, G = w->group, ng = K / G;
    const __m512i m15 = _mm512_set1_epi32(15);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    float corr0 = 0, corr1 = 0;
    const float *s0 = w->scales + n * ng, *s1 = s0 + ng;
    for (int64_t g = 0; g < ng; g++) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
        if (w->bits == 8) {
            const int8_t *q0 = (const int8_t *)w->q + n * K, *q1 = q0 + K;
            for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
                _mm_prefetch((const char *)(q0 + k) + PF_DIST, _MM_HINT_T0);
                _mm_prefetch((const char *)(q1 + k) + PF_DIST, _MM_HINT_T0);
                __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
                a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                         _mm_loadu_si128((const __m128i *)(q0 + k)))), x0, a0);
                a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                         _mm_loadu_si128((const __m128i *)(q0 + k + 16)))), x1, a1);
                b0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                         _mm_loadu_si128((const __m128i *)(q1 + k)))), x0, b0);
                b1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                         _mm_loadu_si128((const __m128i *)(q1 + k + 16)))), x1, b1);
            }
        } else {
            const uint8_t *q0 = (const uint8_t *)w->q + n * (K / 2), *q1 = q0 + K / 2;
            for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
                if (!(k & 127)) {
                    _mm_prefetch((const char *)(q0 + k / 2) + PF_DIST, _MM_HINT_T0);
                    _mm_prefetch((const char *)(q1 + k / 2) + PF_DIST, _MM_HINT_T0);
                }
                __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
                __m512i c0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q0 + k / 2)));
                __m512i c1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q1 + k / 2)));
                a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(c0, m15)), x0, a0);
                a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(c0, 4)), x1, a1);
                b0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(c1, m15)), x0, b0);
                b1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(c1, 4)), x1, b1);
            }
        }
        acc0 = _mm512_fmadd_ps(_mm512_add_ps(a0, a1), _mm512_set1_ps(s0[g]), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_add_ps(b0, b1), _mm512_set1_ps(s1[g]), acc1);
        if (w->zeros) {
            corr0 += s0[g] * (float)w->zeros[n * ng + g] * xs[g];
            corr1 += s1[g] * (float)w->zeros[(n + 1) * ng + g] * xs[g];
        }
    }
    y[n] = _mm512_reduce_add_ps(acc0) - corr0;
    y[n + 1] = _mm512_reduce_add_ps(acc1) - corr1;
}

__attribute__((target("avx512f,avx512bw,fma"))) static void
rows_avx512(float *y, const float *x, const float *xs, const ivl_qweight *w, int64_t n0,
            int64_t n1, int64_t m0, int mr, int64_t N) {
    // M == 1 with a long input row (down: 8192): two weight rows share each x load. With x
    // in L1 (K <= 2048) one row at a time measured faster (gate/up int8 1.1 vs 1.8 ms).
    if (mr == 1 && m0 == 0 && N == w->rows && w->cols >= 4096) {
        int64_t n = n0;
        for (; n + 2 <= n1; n += 2) rows2_avx512_m1(y, x, xs, w, n);
        if (n < n1) rows_avx512_mr(y, x, xs, w, n, n1, m0, 1, N);
        return;
    }
    switch (mr) {
    case 1: rows_avx512_mr(y, x, xs, w, n0, n1, m0, 1, N); break;
    case 2: rows_avx512_mr(y, x, xs, w, n0, n1, m0, 2, N); break;
    case 3: rows_avx512_mr(y, x, xs, w, n0, n1, m0, 3, N); break;
    default: rows_avx512_mr(y, x, xs, w, n0, n1, m0, 4, N); break;
    }
}

// ---- AVX2 ----
#define TGT2 __attribute__((target("avx2,fma"), always_inline)) static inline

TGT2 float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TGT2 void rows_avx2_mr(float *y, const float *x, const float *xs, const ivl_qweight *w,
                       int64_t n0, int64_t n1, int64_t m0, const int mr, int64_t N) {
    const int64_t K = w->cols, G = w->group, ng = K / G;
    const __m256i m15 = _mm256_set1_epi32(15);
    for (int64_t n = n0; n < n1; n++) {
        __m256 acc[4];
        float corr[4] = {0, 0, 0, 0};
        for (int i = 0; i < 4; i++) acc[i] = _mm256_setzero_ps();
        const float *sc = w->scales + n * ng;
        for (int64_t g = 0; g < ng; g++) {
            __m256 a0[4], a1[4];
            for (int i = 0; i < 4; i++) a0[i] = a1[i] = _mm256_setzero_ps();
            for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
                __m256 wv[4];   // inputs k..k+7, +8..15, +16..23, +24..31
                if (w->bits == 8) {
                    const int8_t *q = (const int8_t *)w->q + n * K + k;
                    for (int u = 0; u < 4; u++)
                        wv[u] = _mm256_cvtepi32_ps(
                            _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * u))));
                } else {
                    const uint8_t *q = (const uint8_t *)w->q + n * (K / 2) + k / 2;
                    __m256i b0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)q));
                    __m256i b1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8)));
                    wv[0] = _mm256_cvtepi32_ps(_mm256_and_si256(b0, m15));
                    wv[1] = _mm256_cvtepi32_ps(_mm256_and_si256(b1, m15));
                    wv[2] = _mm256_cvtepi32_ps(_mm256_srli_epi32(b0, 4));
                    wv[3] = _mm256_cvtepi32_ps(_mm256_srli_epi32(b1, 4));
                }
                for (int i = 0; i < mr; i++) {
                    const float *xr = x + (m0 + i) * K + k;
                    a0[i] = _mm256_fmadd_ps(wv[0], _mm256_loadu_ps(xr), a0[i]);
                    a1[i] = _mm256_fmadd_ps(wv[1], _mm256_loadu_ps(xr + 8), a1[i]);
                    a0[i] = _mm256_fmadd_ps(wv[2], _mm256_loadu_ps(xr + 16), a0[i]);
                    a1[i] = _mm256_fmadd_ps(wv[3], _mm256_loadu_ps(xr + 24), a1[i]);
                }
            }
            __m256 s = _mm256_set1_ps(sc[g]);
            for (int i = 0; i < mr; i++) {
                acc[i] = _mm256_fmadd_ps(_mm256_add_ps(a0[i], a1[i]), s, acc[i]);
                if (w->zeros) corr[i] += sc[g] * (float)w->zeros[n * ng + g] * xs[(m0 + i) * ng + g];
            }
        }
        for (int i = 0; i < mr; i++) y[(m0 + i) * N + n] = hsum256(acc[i]) - corr[i];
    }
}

__attribute__((target("avx2,fma"))) static void
rows_avx2(float *y, const float *x, const float *xs, const ivl_qweight *w, int64_t n0,
          int64_t n1, int64_t m0, int mr, int64_t N) {
    switch (mr) {
    case 1: rows_avx2_mr(y, x, xs, w, n0, n1, m0, 1, N); break;
    case 2: rows_avx2_mr(y, x, xs, w, n0, n1, m0, 2, N); break;
    case 3: rows_avx2_mr(y, x, xs, w, n0, n1, m0, 3, N); break;
    default: rows_avx2_mr(y, x, xs, w, n0, n1, m0, 4, N); break;
    }
}

// ---- drivers ----

// Rows [n0, n1) of the weight as f32 into p ([n1 - n0, K]).
static void dequant_panel(float *p, const ivl_qweight *w, int64_t n0, int64_t n1) {
    const int64_t K = w->cols, G = w->group, ng = K / G;
    for (int64_t n = n0; n < n1; n++) {
        float *row = p + (n - n0) * K;
        for (int64_t g = 0; g < ng; g++) {
            const float s = w->scales[n * ng + g];
            const float z = w->zeros ? (float)w->zeros[n * ng + g] : 0.0f;
            if (w->bits == 8) {
                const int8_t *q = (const int8_t *)w->q + n * K + g * G;
                for (int64_t k = 0; k < G; k++) row[g * G + k] = s * ((float)q[k] - z);
            } else if (!blocked(w)) {
                for (int64_t k = g * G; k < (g + 1) * G; k++) row[k] = s * ((float)q_at(w, n, k) - z);
            } else {
                const uint8_t *q = (const uint8_t *)w->q + n * (K / 2) + g * G / 2;
                for (int64_t b = 0; b < G / 32; b++)
                    for (int j = 0; j < 16; j++) {
                        uint8_t v = q[b * 16 + j];
                        row[g * G + b * 32 + j] = s * ((float)(v & 15) - z);
                        row[g * G + b * 32 + 16 + j] = s * ((float)(v >> 4) - z);
                    }
            }
        }
    }
}

void ivl_cpu_matmul_q(float *y, const float *x, const ivl_qweight *w, const float *bias,
                      int64_t M) {
    ivl_cpu_blas_init();
    const int64_t N = w->rows, K = w->cols, G = w->group, ng = K / G;
    if (M == 0) return;
    const int nt = ivl_cpu_threads();
    if (M > IVL_Q_SMALL_M) {
        const int64_t np = (N + PANEL - 1) / PANEL;
#pragma omp parallel num_threads(nt)
        {
            float *p = aligned_alloc(64, (size_t)(PANEL * K) * sizeof(float));
            IVL_CHECK(p, "cpu matmul (quantized): out of memory for a %d x %lld panel", PANEL,
                      (long long)K);
#pragma omp for schedule(static)
            for (int64_t b = 0; b < np; b++) {
                int64_t n0 = b * PANEL, n1 = n0 + PANEL < N ? n0 + PANEL : N;
                dequant_panel(p, w, n0, n1);
                float beta = 0.0f;
                if (bias) {
                    for (int64_t m = 0; m < M; m++)
                        memcpy(y + m * N + n0, bias + n0, (size_t)(n1 - n0) * sizeof(float));
                    beta = 1.0f;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M,
                            (blasint)(n1 - n0), (blasint)K, 1.0f, x, (blasint)K, p, (blasint)K,
                            beta, y + n0, (blasint)N);
            }
            free(p);
        }
        return;
    }
    // Group sums of x for the zero points.
    float *xs = NULL;
    if (w->zeros) {
        xs = ivl_malloc((size_t)(M * ng) * sizeof(float));
        for (int64_t m = 0; m < M; m++)
            for (int64_t g = 0; g < ng; g++) {
                float s = 0.0f;
                for (int64_t k = g * G; k < (g + 1) * G; k++) s += x[m * K + k];
                xs[m * ng + g] = s;
            }
    }
    int v = isa();
    if (G % 32) v = ISA_SCALAR;   // the vector loops take 32 inputs at a time
    const int64_t chunk = 16;
    const int64_t nch = (N + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) num_threads(nt) if (N * K > 65536)
    for (int64_t c = 0; c < nch; c++) {
        int64_t n0 = c * chunk, n1 = n0 + chunk < N ? n0 + chunk : N;
        for (int64_t m0 = 0; m0 < M; m0 += 4) {
            int mr = M - m0 < 4 ? (int)(M - m0) : 4;
            if (v == ISA_AVX512) rows_avx512(y, x, xs, w, n0, n1, m0, mr, N);
            else if (v == ISA_AVX2) rows_avx2(y, x, xs, w, n0, n1, m0, mr, N);
            else rows_scalar(y, x, xs, w, n0, n1, m0, mr, N);
        }
        if (bias)
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = n0; n < n1; n++) y[m * N + n] += bias[n];
    }
    free(xs);
}
