// norm.c - RMSNorm and LayerNorm over the last dimension, one row per loop iteration.
// Sums are accumulated in double: rows are up to 12800 wide and the result must match the
// double-precision reference to f32 rounding. (in place ok: y == x)
#include "core/cpu/cpu_ops.h"

#include <math.h>

IVL_CPU_SIMD
static void rmsnorm_row(float *y, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * inv * w[i];
}

void ivl_cpu_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t cols,
                     float eps) {
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
    for (int64_t r = 0; r < rows; r++) rmsnorm_row(y + r * cols, x + r * cols, w, cols, eps);
}

IVL_CPU_SIMD
static void layernorm_row(float *y, const float *x, const float *w, const float *b, int64_t n,
                          float eps) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += x[i];
    double mean = s / (double)n;
    double ss = 0.0;   // second pass on centred values: no cancellation for large means
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < n; i++) {
        double d = (double)x[i] - mean;
        ss += d * d;
    }
    float inv = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    // The mean as a float pair: x - m_hi is exact for x near the mean, so a large mean
    // (|mean| >> std) costs no precision, as it would with one rounded float mean.
    float m_hi = (float)mean, m_lo = (float)(mean - (double)m_hi);
    if (b) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = ((x[i] - m_hi) - m_lo) * inv * w[i] + b[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = ((x[i] - m_hi) - m_lo) * inv * w[i];
    }
}

void ivl_cpu_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows,
                       int64_t cols, float eps) {
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
    for (int64_t r = 0; r < rows; r++)
        layernorm_row(y + r * cols, x + r * cols, w, b, cols, eps);
}

// Row sums of squares (in double, stored as f32) and the RMSNorm that uses sums made over
// several ranks' column blocks (tensor-parallel q/k norm of InternViT-6B).
void ivl_cpu_sumsq_rows(float *ss, const float *x, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
    for (int64_t r = 0; r < rows; r++) {
        double s = 0.0;
        const float *xr = x + r * cols;
        for (int64_t i = 0; i < cols; i++) s += (double)xr[i] * xr[i];
        ss[r] = (float)s;
    }
}

void ivl_cpu_rmsnorm_ss(float *y, const float *x, const float *ss, const float *w, int64_t rows,
                        int64_t cols, int64_t n, float eps) {
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
    for (int64_t r = 0; r < rows; r++) {
        float inv = (float)(1.0 / sqrt((double)ss[r] / (double)n + (double)eps));
        for (int64_t i = 0; i < cols; i++) y[r * cols + i] = x[r * cols + i] * inv * w[i];
    }
}
