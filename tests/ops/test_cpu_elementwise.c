// test_cpu_elementwise.c - gelu (exact erf), silu_mul (with y aliasing gate or up), add,
// add_scaled (LayerScale) and scale against double-precision loops. Sizes cross the
// threshold where the work is split over threads, and are odd so chunks are uneven.
#include "tests/ops/ops_test.h"

static double gelu_d(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double silu_d(double x) { return x / (1.0 + exp(-x)); }

static void run_case(ivl_backend *be, int64_t R, int64_t C, int nt) {
    int64_t n = R * C;
    // Inputs cover the tails: silu/gelu saturate, exp over/underflows past |x| ~ 88.
    float *a = rnd_array(n, -12, 12), *b = rnd_array(n, -3, 3), *s = rnd_array(C, -2, 2);
    a[0] = -100.0f;
    if (n > 1) a[1] = 100.0f;
    if (n > 2) a[2] = 0.0f;
    double *ref = malloc(sizeof(double) * (size_t)n);
    char what[160];
    ivl_tensor ta = dev_from(be, a, R, C), tb = dev_from(be, b, R, C), ts = dev_from(be, s, 1, C);
    ivl_tensor ty = ivl_backend_alloc_2d(be, R, C);
    float *y;
#define CHECK_OUT(name, t, atol, rtol)                                                    \
    do {                                                                                  \
        y = host_from(be, &(t));                                                          \
        snprintf(what, sizeof what, "%s %lldx%lld threads=%d", name, (long long)R,        \
                 (long long)C, nt);                                                       \
        check_close(what, y, ref, n, atol, rtol);                                         \
        free(y);                                                                          \
    } while (0)

    for (int64_t i = 0; i < n; i++) ref[i] = gelu_d(a[i]);
    be->gelu(be, &ty, &ta);
    CHECK_OUT("gelu", ty, 1e-6, 1e-6);   // erff is within ~1 ulp

    for (int64_t i = 0; i < n; i++) ref[i] = silu_d(a[i]) * b[i];
    be->silu_mul(be, &ty, &ta, &tb);
    CHECK_OUT("silu_mul", ty, 1e-6, 2e-6);   // own vector exp: within 2 ulp
    be->copy(be, &ty, &ta);
    be->silu_mul(be, &ty, &ty, &tb);           // y aliases gate
    CHECK_OUT("silu_mul y==gate", ty, 1e-6, 2e-6);
    be->copy(be, &ty, &tb);
    be->silu_mul(be, &ty, &ta, &ty);           // y aliases up
    CHECK_OUT("silu_mul y==up", ty, 1e-6, 2e-6);

    for (int64_t i = 0; i < n; i++) ref[i] = (double)b[i] + a[i];
    be->copy(be, &ty, &tb);
    be->add(be, &ty, &ta);
    CHECK_OUT("add", ty, 0, 1e-7);   // one f32 rounding

    for (int64_t i = 0; i < n; i++) ref[i] = (double)b[i] + (double)a[i] * s[i % C];
    be->copy(be, &ty, &tb);
    be->add_scaled(be, &ty, &ta, &ts);
    CHECK_OUT("add_scaled", ty, 1e-6, 1e-6);

    for (int64_t i = 0; i < n; i++) ref[i] = (double)a[i] * 0.125;
    be->copy(be, &ty, &ta);
    be->scale(be, &ty, 0.125f);
    CHECK_OUT("scale", ty, 0, 0);   // a power of two is exact
#undef CHECK_OUT
    be->free(be, &ta); be->free(be, &tb); be->free(be, &ts); be->free(be, &ty);
    free(a); free(b); free(s); free(ref);
}

int main(void) {
    ivl_backend *be = ivl_backend_cpu_create();
    static const int64_t shapes[][2] = {{1, 1}, {3, 5}, {7, 1023}, {129, 1025}, {2, 40001}};
    FOR_THREADS(nt) {
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            run_case(be, shapes[i][0], shapes[i][1], nt);
    }
    ivl_tensor x = ivl_backend_alloc_2d(be, 4, 8), s = ivl_backend_alloc_2d(be, 1, 4);
    expect_rejected("add_scaled with a short scale", be->add_scaled(be, &x, &x, &s));
    be->free(be, &x); be->free(be, &s);
    ivl_backend_destroy(be);
    return finish("test_cpu_elementwise");
}
