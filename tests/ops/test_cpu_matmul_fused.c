// test_cpu_matmul_fused.c - the projections that share one input: matmul_n (q, k, v) must
// give exactly the separate matmuls (bit for bit; the CUDA backend fuses them into one launch
// and bench_cuda_ops checks that side), and matmul_glu = silu(x wg^T) * (x wu^T) against a
// double-precision loop, decode-sized (1, 3 rows) and prefill-sized (37 rows). Bad calls.
#include "tests/ops/ops_test.h"

static void run_case(ivl_backend *be, int64_t M, int64_t K, int64_t N, int nt) {
    float *x = rnd_array(M * K, -1, 1), *wg = rnd_array(N * K, -0.2, 0.2);
    float *wu = rnd_array(N * K, -0.2, 0.2), *w3 = rnd_array((N / 2 + 1) * K, -0.2, 0.2);
    ivl_tensor tx = dev_from(be, x, M, K), tg = dev_from(be, wg, N, K), tu = dev_from(be, wu, N, K);
    ivl_tensor t3 = dev_from(be, w3, N / 2 + 1, K);
    // matmul_n vs three matmuls
    ivl_tensor a[3] = {ivl_backend_alloc_2d(be, M, N), ivl_backend_alloc_2d(be, M, N),
                       ivl_backend_alloc_2d(be, M, N / 2 + 1)};
    ivl_tensor b[3] = {ivl_backend_alloc_2d(be, M, N), ivl_backend_alloc_2d(be, M, N),
                       ivl_backend_alloc_2d(be, M, N / 2 + 1)};
    ivl_tensor *ya[3] = {&a[0], &a[1], &a[2]};
    const ivl_tensor *ws[3] = {&tg, &tu, &t3};
    be->matmul_n(be, 3, ya, &tx, ws);
    int same = 1;
    for (int i = 0; i < 3; i++) {
        be->matmul(be, &b[i], &tx, ws[i], NULL);
        float *p = host_from(be, &a[i]), *q = host_from(be, &b[i]);
        same &= !memcmp(p, q, sizeof(float) * (size_t)ivl_tensor_numel(&a[i]));
        free(p), free(q);
    }
    char what[128];
    snprintf(what, sizeof what, "matmul_n(3) == three matmuls, M=%lld K=%lld, threads=%d",
             (long long)M, (long long)K, nt);
    check_true(what, same);
    // matmul_glu vs double precision
    ivl_tensor y = ivl_backend_alloc_2d(be, M, N), up = ivl_backend_alloc_2d(be, M, N);
    be->matmul_glu(be, &y, &up, &tx, &tg, &tu);
    float *got = host_from(be, &y);
    double *want = malloc(sizeof(double) * (size_t)(M * N));
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double g = 0, u = 0;
            for (int64_t k = 0; k < K; k++) {
                g += (double)x[m * K + k] * wg[n * K + k];
                u += (double)x[m * K + k] * wu[n * K + k];
            }
            want[m * N + n] = g / (1.0 + exp(-g)) * u;
        }
    snprintf(what, sizeof what, "matmul_glu = silu(x wg^T) * (x wu^T), M=%lld K=%lld N=%lld, "
             "threads=%d", (long long)M, (long long)K, (long long)N, nt);
    check_close(what, got, want, M * N, 1e-5, 1e-5);
    free(got), free(want);
    ivl_tensor *all[] = {&tx, &tg, &tu, &t3, &a[0], &a[1], &a[2], &b[0], &b[1], &b[2], &y, &up};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) be->free(be, all[i]);
    free(x), free(wg), free(wu), free(w3);
}

int main(void) {
    ivl_backend *be = ivl_backend_cpu_create();
    FOR_THREADS(nt) {
        run_case(be, 1, 256, 96, nt);
        run_case(be, 3, 200, 33, nt);
        run_case(be, 37, 64, 130, nt);
    }
    ivl_tensor x = ivl_backend_alloc_2d(be, 2, 16), w = ivl_backend_alloc_2d(be, 8, 16);
    ivl_tensor w2 = ivl_backend_alloc_2d(be, 9, 16), y = ivl_backend_alloc_2d(be, 2, 8);
    ivl_tensor *ys[4] = {&y, &y, &y, &y};
    const ivl_tensor *ws[4] = {&w, &w, &w, &w};
    expect_rejected("matmul_n: n = 0", be->matmul_n(be, 0, ys, &x, ws));
    expect_rejected("matmul_n: n = 4", be->matmul_n(be, 4, ys, &x, ws));
    expect_rejected("matmul_glu: up weight of another width",
                    be->matmul_glu(be, &y, &y, &x, &w, &w2));
    ivl_tensor *all[] = {&x, &w, &w2, &y};
    for (int i = 0; i < 4; i++) be->free(be, all[i]);
    ivl_backend_destroy(be);
    return finish("test_cpu_matmul_fused");
}
