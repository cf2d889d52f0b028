// test_cpu_norm.c - rmsnorm and layernorm (with and without bias, in place) against
// double-precision loops; widths from 1 to 12800 (InternViT-6B's 4C), and rows with a large
// mean to catch a one-pass variance that cancels.
#include "tests/ops/ops_test.h"

static void ref_rms(double *y, const float *x, const float *w, int64_t R, int64_t C, double eps) {
    for (int64_t r = 0; r < R; r++) {
        double ss = 0;
        for (int64_t c = 0; c < C; c++) ss += (double)x[r * C + c] * x[r * C + c];
        double inv = 1.0 / sqrt(ss / C + eps);
        for (int64_t c = 0; c < C; c++) y[r * C + c] = x[r * C + c] * inv * w[c];
    }
}

static void ref_ln(double *y, const float *x, const float *w, const float *b, int64_t R,
                   int64_t C, double eps) {
    for (int64_t r = 0; r < R; r++) {
        double m = 0, v = 0;
        for (int64_t c = 0; c < C; c++) m += x[r * C + c];
        m /= C;
        for (int64_t c = 0; c < C; c++) v += (x[r * C + c] - m) * (x[r * C + c] - m);
        double inv = 1.0 / sqrt(v / C + eps);
        for (int64_t c = 0; c < C; c++)
            y[r * C + c] = (x[r * C + c] - m) * inv * w[c] + (b ? b[c] : 0.0);
    }
}

static void run_case(ivl_backend *be, int64_t R, int64_t C, double offset, int nt) {
    float *x = rnd_array(R * C, offset - 2, offset + 2), *w = rnd_array(C, 0.5, 1.5);
    float *b = rnd_array(C, -1, 1);
    double *ref = malloc(sizeof(double) * (size_t)(R * C));
    char what[160];
    const float eps = 1e-6f;
    // Outputs are O(1); f32 rounding of x * inv * w gives a few ulp.
    const double atol = 1e-5, rtol = 1e-5;

    ivl_tensor tx = dev_from(be, x, R, C), tw = dev_from(be, w, 1, C), tb = dev_from(be, b, 1, C);
    ivl_tensor ty = ivl_backend_alloc_2d(be, R, C);

    ref_rms(ref, x, w, R, C, eps);
    be->rmsnorm(be, &ty, &tx, &tw, eps);
    float *y = host_from(be, &ty);
    snprintf(what, sizeof what, "rmsnorm %lldx%lld offset %g threads=%d", (long long)R,
             (long long)C, offset, nt);
    check_close(what, y, ref, R * C, atol, rtol);
    free(y);

    for (int with_b = 0; with_b < 2; with_b++) {
        ref_ln(ref, x, w, with_b ? b : NULL, R, C, eps);
        be->layernorm(be, &ty, &tx, &tw, with_b ? &tb : NULL, eps);
        y = host_from(be, &ty);
        snprintf(what, sizeof what, "layernorm %lldx%lld offset %g bias=%d threads=%d",
                 (long long)R, (long long)C, offset, with_b, nt);
        check_close(what, y, ref, R * C, atol, rtol);
        free(y);
    }

    // In place (y == x).
    be->layernorm(be, &tx, &tx, &tw, &tb, eps);
    y = host_from(be, &tx);
    snprintf(what, sizeof what, "layernorm in place %lldx%lld threads=%d", (long long)R,
             (long long)C, nt);
    check_close(what, y, ref, R * C, atol, rtol);
    free(y);
    ivl_tensor tx2 = dev_from(be, x, R, C);
    ref_rms(ref, x, w, R, C, eps);
    be->rmsnorm(be, &tx2, &tx2, &tw, eps);
    y = host_from(be, &tx2);
    snprintf(what, sizeof what, "rmsnorm in place %lldx%lld threads=%d", (long long)R,
             (long long)C, nt);
    check_close(what, y, ref, R * C, atol, rtol);
    free(y);

    be->free(be, &tx); be->free(be, &tx2); be->free(be, &tw); be->free(be, &tb);
    be->free(be, &ty);
    free(x); free(w); free(b); free(ref);
}

int main(void) {
    ivl_backend *be = ivl_backend_cpu_create();
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {5, 2048}, {33, 1024}, {2, 12800}};
    FOR_THREADS(nt) {
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            run_case(be, shapes[i][0], shapes[i][1], 0.0, nt);
        run_case(be, 4, 4096, 300.0, nt);   // |mean| >> std: variance must not cancel
    }
    ivl_tensor x = ivl_backend_alloc_2d(be, 4, 8), w = ivl_backend_alloc_2d(be, 1, 7);
    expect_rejected("rmsnorm with a short weight", be->rmsnorm(be, &x, &x, &w, 1e-6f));
    be->free(be, &x); be->free(be, &w);
    ivl_backend_destroy(be);
    return finish("test_cpu_norm");
}
