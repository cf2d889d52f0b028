// test_cpu_matmul.c - the CPU backend's matmul (y = x w^T + b) against a double-precision
// loop, over shapes that hit every path: M = 1 (sgemv), narrow N split by rows, wide N split
// by column blocks that do not divide evenly, 2-D grids of blocks, the small-row path
// (M = 2..16, decoding a small batch) with ragged N and K, odd sizes, with and without bias.
#include "tests/ops/ops_test.h"

static void ref_matmul(double *y, const float *x, const float *w, const float *b, int64_t M,
                       int64_t N, int64_t K) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = b ? b[j] : 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)x[i * K + k] * w[j * K + k];
            y[i * N + j] = s;
        }
}

static void run_case(ivl_backend *be, int64_t M, int64_t N, int64_t K, int with_bias, int nt) {
    float *x = rnd_array(M * K, -1, 1), *w = rnd_array(N * K, -1, 1), *b = rnd_array(N, -1, 1);
    double *ref = malloc(sizeof(double) * (size_t)(M * N));
    ref_matmul(ref, x, w, with_bias ? b : NULL, M, N, K);
    ivl_tensor tx = dev_from(be, x, M, K), tw = dev_from(be, w, N, K), tb = dev_from(be, b, 1, N);
    ivl_tensor ty = ivl_backend_alloc_2d(be, M, N);
    be->matmul(be, &ty, &tx, &tw, with_bias ? &tb : NULL);
    float *y = host_from(be, &ty);
    char what[128];
    snprintf(what, sizeof what, "matmul M=%lld N=%lld K=%lld bias=%d threads=%d", (long long)M,
             (long long)N, (long long)K, with_bias, nt);
    // f32 accumulation over K terms of size <= 1: rounding grows like sqrt(K) * 6e-8.
    check_close(what, y, ref, M * N, 2e-5 * sqrt((double)K), 1e-5);
    be->free(be, &tx); be->free(be, &tw); be->free(be, &tb); be->free(be, &ty);
    free(x); free(w); free(b); free(ref); free(y);
}

int main(void) {
    ivl_backend *be = ivl_backend_cpu_create();
    static const int64_t shapes[][3] = {
        {1, 1, 1}, {1, 37, 19}, {1, 1000, 64}, {3, 5, 7}, {17, 129, 33},
        {64, 300, 257}, {300, 40, 96}, {129, 771, 65}, {2, 2048, 128}, {200, 500, 40},
        {257, 1100, 31},
        // the small-row path (M = 2..16): weight-row tails (N % 4), K tails (K % 16), K < 16
        {2, 3, 1}, {4, 6, 17}, {5, 1030, 200}, {7, 9, 33}, {6, 513, 16}, {4, 4, 15},
        {3, 2049, 2048}, {8, 64, 64}, {11, 5, 3}, {16, 77, 40}, {13, 1031, 97}, {17, 40, 40},
    };
    FOR_THREADS(nt) {
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int bias = 0; bias < 2; bias++)
                run_case(be, shapes[i][0], shapes[i][1], shapes[i][2], bias, nt);
    }
    // Shapes that do not fit are a caller bug and end the job with a message.
    ivl_tensor x = ivl_backend_alloc_2d(be, 4, 8), w = ivl_backend_alloc_2d(be, 6, 7);
    ivl_tensor y = ivl_backend_alloc_2d(be, 4, 6);
    expect_rejected("matmul with K mismatch", be->matmul(be, &y, &x, &w, NULL));
    expect_rejected("matmul with y aliasing x", be->matmul(be, &x, &x, &x, NULL));
    ivl_tensor h = ivl_tensor_host_2d(IVL_F32, 6, 8);
    expect_rejected("matmul with a host tensor", be->matmul(be, &y, &x, &h, NULL));
    ivl_tensor_free_host(&h);
    be->free(be, &x); be->free(be, &w); be->free(be, &y);
    ivl_backend_destroy(be);
    return finish("test_cpu_matmul");
}
