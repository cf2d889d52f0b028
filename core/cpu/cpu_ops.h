// cpu_ops.h - the CPU kernels on raw, contiguous, row-major f32 arrays.
//
// backend_cpu.c checks tensor shapes and calls these; tests/ops and bench/bench_ops.c call
// them directly. Each function has the same contract as the op of the same name in
// core/backend.h. Threading: every kernel parallelises with OpenMP (OMP_NUM_THREADS);
// OpenBLAS is kept single-threaded and called from inside the OpenMP threads, so one thread
// pool does all the work (no OpenBLAS threads spinning against OpenMP threads).
#ifndef IVL_CPU_OPS_H
#define IVL_CPU_OPS_H

#include <stdint.h>
#include <string.h>

#include "core/tensor.h"

// Hot loops are compiled twice (AVX2+FMA and baseline x86-64) and picked at load time, so
// the build needs no -march flag and still runs on any x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(IVL_CPU_NO_CLONES)
#define IVL_CPU_SIMD __attribute__((target_clones("arch=haswell", "default")))
#else
#define IVL_CPU_SIMD
#endif

// Number of OpenMP threads the kernels use (omp_get_max_threads()).
int ivl_cpu_threads(void);
// Makes OpenBLAS single-threaded (once per process); every kernel that calls BLAS does this.
void ivl_cpu_blas_init(void);

// ---- matmul.c ----
// y[M,N] = x[M,K] . w[N,K]^T (+ bias[N] if not NULL). y must not overlap x or w.
void ivl_cpu_matmul(float *y, const float *x, const float *w, const float *bias, int64_t M,
                    int64_t N, int64_t K);

// ---- matmul_q.c (quantized weights, core/tensor.h ivl_qweight) ----
// One 64-byte-aligned block (free with free()) holding a copy of the host-layout weight h in
// the CPU layout the kernels read; NULL with ivl_last_error() for a bad description.
ivl_qweight *ivl_cpu_qweight_pack(const ivl_qweight *h);
// y[M, N] = x[M, K] . W^T (+ bias[N]) for the CPU-layout weight w [N, K].
void ivl_cpu_matmul_q(float *y, const float *x, const ivl_qweight *w, const float *bias,
                      int64_t M);
// The variant of the few-rows kernel: "avx512", "avx2" or "scalar" (best the CPU has, or
// IVL_CPU_QUANT). set_isa(NULL) = the best; -1 + error for an unknown or unsupported name.
const char *ivl_cpu_matmul_q_isa(void);
int ivl_cpu_matmul_q_set_isa(const char *name);

// ---- norm.c (in place ok: y == x) ----
void ivl_cpu_sumsq_rows(float *ss, const float *x, int64_t rows, int64_t cols);
void ivl_cpu_rmsnorm_ss(float *y, const float *x, const float *ss, const float *w, int64_t rows,
                        int64_t cols, int64_t n, float eps);
void ivl_cpu_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t cols,
                     float eps);
void ivl_cpu_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows,
                       int64_t cols, float eps);

// ---- elementwise.c (in place ok) ----
void ivl_cpu_gelu(float *y, const float *x, int64_t n);
void ivl_cpu_silu_mul(float *y, const float *gate, const float *up, int64_t n);
void ivl_cpu_add(float *y, const float *x, int64_t n);
// y[r, c] += x[r, c] * scale[c]
void ivl_cpu_add_scaled(float *y, const float *x, const float *scale, int64_t rows,
                        int64_t cols);
void ivl_cpu_scale(float *y, float s, int64_t n);

// ---- rope.c ----
// x [T, n_heads * head_dim] in place; cos, sin [T, head_dim / 2].
void ivl_cpu_rope(float *x, int64_t T, int n_heads, int head_dim, const float *cos_tab,
                  const float *sin_tab);

// ---- attention.c ----
// q [T, H*hd], k and v [L, K*hd], out [T, H*hd]; see backend.h. Requires L >= 1 and, when
// causal, q_pos0 + T <= L (query t sees keys 0 .. q_pos0 + t).
void ivl_cpu_attention(float *out, const float *q, const float *k, const float *v, int64_t T,
                       int64_t L, int n_heads, int n_kv_heads, int head_dim, int causal,
                       int64_t q_pos0, float scale);

// ---- embed.c ----
// out[n, D] = table[ids[i], :]; table has `rows` rows (ids are checked).
void ivl_cpu_embed(float *out, const float *table, int64_t rows, int64_t D, const int32_t *ids,
                   int64_t n);
// pixels [B, 3, S, S], w [C, 3*patch*patch], bias [C] (or NULL) -> out [B*g*g, C], g = S/patch.
void ivl_cpu_patch_embed(float *out, const float *pixels, const float *w, const float *bias,
                         int64_t B, int64_t S, int64_t C, int patch);
// in [B*g*g, C] -> out [B*(g/2)^2, 4C]; version 2 (row-major) or 1 (transposed order).
void ivl_cpu_pixel_shuffle(float *out, const float *in, int64_t B, int grid, int64_t C,
                           int version);
// ids[r] = index of the first maximum of row r of logits [R, V].
void ivl_cpu_argmax(const float *logits, int64_t R, int64_t V, int32_t *ids);

// ---- vectorisable exp ----
// exp(x) for x <= 88 (softmax arguments x - max <= 0, sigmoid of -|x|), within 2 ulp of
// expf; 0 for x < -87.3 (and for -inf). No calls or branches, so loops using it vectorise
// (glibc's expf does not). Written so that no lane ever computes a subnormal: the compiler
// evaluates every lane of a blend, and subnormals cost ~100 cycles each on x86 (measured:
// a ternary clamp made silu 30x slower through constant-folded lanes).
// always_inline: the target clones (IVL_CPU_SIMD) only vectorise loops it is inlined into.
static inline __attribute__((always_inline)) float ivl_cpu_expf(float x) {
    // n = round(x / ln 2) with the 1.5 * 2^23 trick (round to nearest, no libm call).
    const float magic = 12582912.0f;
    float n = (x * 1.44269504088896341f + magic) - magic;
    // r = x - n ln2 in two parts (Cody-Waite) so r stays exact.
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    // Cephes expf polynomial on [-ln2/2, ln2/2].
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // 2^n as two normal factors 2^n1 2^n2 (n up to 128 does not fit one exponent field);
    // the integer clamp keeps the factors normal for lanes that are discarded below.
    int32_t ni = (int32_t)n;
    ni = ni < -100 ? -100 : ni;
    int32_t n1 = ni >> 1, n2 = ni - n1;
    uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    float e = p * s1 * s2;
    return x < -87.3f ? 0.0f : e;
}

#endif
