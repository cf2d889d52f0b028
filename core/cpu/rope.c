// rope.c - rotate-half RoPE in place (backend.h): for each row t and head,
// u'[k] = u[k] cos[t,k] - u[k+half] sin[t,k]; u'[k+half] = u[k+half] cos[t,k] + u[k] sin[t,k].
#include "core/cpu/cpu_ops.h"

IVL_CPU_SIMD
static void rope_row(float *x, int n_heads, int head_dim, const float *c, const float *s) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *lo = x + (int64_t)h * head_dim, *hi = lo + half;
#pragma omp simd
        for (int k = 0; k < half; k++) {
            float a = lo[k], b = hi[k];
            lo[k] = a * c[k] - b * s[k];
            hi[k] = b * c[k] + a * s[k];
        }
    }
}

void ivl_cpu_rope(float *x, int64_t T, int n_heads, int head_dim, const float *cos_tab,
                  const float *sin_tab) {
    int64_t width = (int64_t)n_heads * head_dim, half = head_dim / 2;
#pragma omp parallel for schedule(static) if (T * width > 32768)
    for (int64_t t = 0; t < T; t++)
        rope_row(x + t * width, n_heads, head_dim, cos_tab + t * half, sin_tab + t * half);
}
