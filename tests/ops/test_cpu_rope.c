// test_cpu_rope.c - rotate-half RoPE (backend.h) against a double-precision loop with real
// angle tables (position * theta^(-2k/hd)), several head counts and head sizes (64, 96, 128).
#include "tests/ops/ops_test.h"

static void run_case(ivl_backend *be, int64_t T, int H, int hd, int64_t pos0, int nt) {
    int half = hd / 2;
    int64_t W = (int64_t)H * hd;
    float *x = rnd_array(T * W, -2, 2);
    float *c = malloc(sizeof(float) * (size_t)(T * half)), *s = malloc(sizeof(float) * (size_t)(T * half));
    for (int64_t t = 0; t < T; t++)
        for (int k = 0; k < half; k++) {
            double ang = (double)(pos0 + t) * pow(1e6, -2.0 * k / hd);
            c[t * half + k] = (float)cos(ang);
            s[t * half + k] = (float)sin(ang);
        }
    double *ref = malloc(sizeof(double) * (size_t)(T * W));
    for (int64_t t = 0; t < T; t++)
        for (int h = 0; h < H; h++)
            for (int k = 0; k < half; k++) {
                int64_t i = t * W + (int64_t)h * hd + k;
                double a = x[i], b = x[i + half], cc = c[t * half + k], ss = s[t * half + k];
                ref[i] = a * cc - b * ss;
                ref[i + half] = b * cc + a * ss;
            }
    ivl_tensor tx = dev_from(be, x, T, W);
    be->rope(be, &tx, H, hd, c, s);
    float *y = host_from(be, &tx);
    char what[128];
    snprintf(what, sizeof what, "rope T=%lld H=%d hd=%d pos0=%lld threads=%d", (long long)T, H,
             hd, (long long)pos0, nt);
    check_close(what, y, ref, T * W, 1e-6, 1e-6);
    be->free(be, &tx);
    free(x); free(c); free(s); free(ref); free(y);
}

int main(void) {
    ivl_backend *be = ivl_backend_cpu_create();
    FOR_THREADS(nt) {
        run_case(be, 1, 1, 2, 0, nt);
        run_case(be, 5, 3, 8, 17, nt);
        run_case(be, 1, 16, 128, 4000, nt);
        run_case(be, 77, 16, 128, 0, nt);
        run_case(be, 33, 32, 96, 5, nt);
        run_case(be, 300, 8, 64, 100, nt);
    }
    ivl_tensor x = ivl_backend_alloc_2d(be, 4, 24);
    float cs[64] = {0};
    expect_rejected("rope with heads x head_dim != width", be->rope(be, &x, 2, 8, cs, cs));
    expect_rejected("rope with an odd head_dim", be->rope(be, &x, 8, 3, cs, cs));
    be->free(be, &x);
    ivl_backend_destroy(be);
    return finish("test_cpu_rope");
}
