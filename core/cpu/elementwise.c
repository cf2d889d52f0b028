// elementwise.c - GELU, SiLU-gate, residual adds and scaling (in place ok).
// Large arrays are split into contiguous chunks, one per OpenMP thread.
//
// No FP traps are used anywhere, so comparisons may be if-converted; without this GCC will
// not vectorise the clamps in ivl_cpu_expf.
#pragma GCC optimize("no-trapping-math")
#include "core/cpu/cpu_ops.h"

#include <math.h>
#include <omp.h>

// glibc >= 2.35 has vector erff in libmvec (pulled in by -lm, within 4 ulp); declaring erff
// SIMD-callable lets the GELU loop use it: 4-8 values per call instead of one.
#if defined(__x86_64__) && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#pragma omp declare simd notinbranch
extern float erff(float);
#define IVL_HAVE_VECTOR_ERFF 1
#endif

#define PAR_MIN 65536   // below this many elements a parallel region costs more than it saves

// GELU in its exact erf form (InternViT and mlp1 use nn.GELU() without approximation), not
// the tanh approximation.
IVL_CPU_SIMD
static void gelu_span(float *y, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    }
}

IVL_CPU_SIMD
static void silu_mul_span(float *y, const float *g, const float *u, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        // sigmoid from e = exp(-|v|) in (0, 1]: never overflows, never divides by inf.
        float v = g[i], e = ivl_cpu_expf(v < 0.0f ? v : -v);
        float sig = (v < 0.0f ? e : 1.0f) / (1.0f + e);
        y[i] = v * sig * u[i];
    }
}

IVL_CPU_SIMD
static void add_span(float *y, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

IVL_CPU_SIMD
static void scale_span(float *y, float s, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] *= s;
}

IVL_CPU_SIMD
static void add_scaled_row(float *y, const float *x, const float *scale, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] += x[i] * scale[i];
}

// Runs body(lo, hi) over [0, n) split into one contiguous chunk per thread.
#define PARALLEL_SPANS(n, body)                                                  \
    do {                                                                         \
        int64_t n_ = (n);                                                        \
        if (n_ < PAR_MIN) {                                                      \
            int64_t lo = 0, hi = n_;                                             \
            body;                                                                \
            break;                                                               \
        }                                                                        \
        _Pragma("omp parallel") {                                                \
            int nt_ = omp_get_num_threads(), id_ = omp_get_thread_num();         \
            int64_t per_ = (n_ + nt_ - 1) / nt_;                                 \
            int64_t lo = per_ * id_, hi = lo + per_ < n_ ? lo + per_ : n_;       \
            if (lo < hi) body;                                                   \
        }                                                                        \
    } while (0)

void ivl_cpu_gelu(float *y, const float *x, int64_t n) {
    PARALLEL_SPANS(n, gelu_span(y + lo, x + lo, hi - lo));
}

void ivl_cpu_silu_mul(float *y, const float *gate, const float *up, int64_t n) {
    PARALLEL_SPANS(n, silu_mul_span(y + lo, gate + lo, up + lo, hi - lo));
}

void ivl_cpu_add(float *y, const float *x, int64_t n) {
    PARALLEL_SPANS(n, add_span(y + lo, x + lo, hi - lo));
}

void ivl_cpu_scale(float *y, float s, int64_t n) {
    PARALLEL_SPANS(n, scale_span(y + lo, s, hi - lo));
}

void ivl_cpu_add_scaled(float *y, const float *x, const float *scale, int64_t rows,
                        int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) add_scaled_row(y + r * cols, x + r * cols, scale, cols);
}
