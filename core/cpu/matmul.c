// matmul.c - y = x w^T + b with OpenBLAS, split across the OpenMP threads.
//
// OpenBLAS runs single-threaded inside each OpenMP thread (see cpu_ops.h). The work is cut
// into one block of output columns per thread (each thread streams its own rows of w, which
// is the big operand), or into row blocks when N is too narrow to give every thread a
// reasonable block. M == 1 (decoding) goes to sgemv, which is what a 1-row GEMM is.
#include "core/cpu/cpu_ops.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void) { openblas_set_num_threads(1); }

void ivl_cpu_blas_init(void) { pthread_once(&blas_once, blas_single_thread); }

int ivl_cpu_threads(void) { return omp_get_max_threads(); }

// One block: rows [m0, m0+mc) and columns [n0, n0+nc) of y.
static void matmul_block(float *y, const float *x, const float *w, const float *bias,
                         int64_t m0, int64_t mc, int64_t n0, int64_t nc, int64_t N,
                         int64_t K) {
    float beta = 0.0f;
    if (bias) {
        for (int64_t i = m0; i < m0 + mc; i++)
            memcpy(y + i * N + n0, bias + n0, (size_t)nc * sizeof(float));
        beta = 1.0f;
    }
    if (mc == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)nc, (blasint)K, 1.0f, w + n0 * K,
                    (blasint)K, x + m0 * K, 1, beta, y + m0 * N + n0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)mc, (blasint)nc,
                    (blasint)K, 1.0f, x + m0 * K, (blasint)K, w + n0 * K, (blasint)K, beta,
                    y + m0 * N + n0, (blasint)N);
}

void ivl_cpu_matmul(float *y, const float *x, const float *w, const float *bias, int64_t M,
                    int64_t N, int64_t K) {
    ivl_cpu_blas_init();
    if (M == 0 || N == 0) return;
    int nt = ivl_cpu_threads();
    // Column blocks are multiples of 16 (OpenBLAS's N unroll on AVX2/AVX-512).
    int64_t per_thread = (N + nt - 1) / nt;
    int by_rows = nt > 1 && per_thread < 128 && M >= 8 * nt;
    int64_t nb = nt, chunk;
    if (by_rows) {
        chunk = (M + nt - 1) / nt;
    } else {
        chunk = (per_thread + 15) / 16 * 16;
        nb = (N + chunk - 1) / chunk;
    }
    if (nt == 1 || nb <= 1 || (double)M * N * K < 2e5) {
        matmul_block(y, x, w, bias, 0, M, 0, N, N, K);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t b = 0; b < nb; b++) {
        if (by_rows) {
            int64_t m0 = b * chunk, mc = m0 + chunk <= M ? chunk : M - m0;
            if (mc > 0) matmul_block(y, x, w, bias, m0, mc, 0, N, N, K);
        } else {
            int64_t n0 = b * chunk, nc = n0 + chunk <= N ? chunk : N - n0;
            if (nc > 0) matmul_block(y, x, w, bias, 0, M, n0, nc, N, K);
        }
    }
}
