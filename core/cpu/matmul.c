// matmul.c - y = x w^T + b with OpenBLAS, split across the OpenMP threads.
//
// OpenBLAS runs single-threaded inside each OpenMP thread (see cpu_ops.h). The output is
// cut into one block per thread, mostly by columns (each thread streams its own rows of w,
// the big operand). M == 1 (decoding) goes to sgemv, which is what a 1-row GEMM is.
#include "core/cpu/cpu_ops.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void) { openblas_set_num_threads(1); }

void ivl_cpu_blas_init(void) { pthread_once(&blas_once, blas_single_thread); }

int ivl_cpu_threads(void) { return omp_get_max_threads(); }

// ---- a few rows (decoding a small batch) ----
// For a few rows OpenBLAS's sgemm packs the whole weight panel (read + write + read of every
// weight), so a decode step of batch 4 cost 2.6x batch 1 (bench/RESULTS.md). Here each tile of
// 4 weight rows is read once and used for 4 input rows at a time while it is in L1; 4 x 4
// vector accumulators keep the FMA units busy. Measured with bench/bench_ops (one core,
// Sapphire Rapids, [8192, 2048] weights): batch 2 / 4 / 8 / 16 cost 1.1 / 1.2 / 1.8 / 3.3x
// batch 1, where sgemm cost 3.3 / 3.5 / 4.4 / 4.4x. The AVX2 variant (4 x 2 tiles: 16
// registers) is used up to 4 rows.
typedef float v16f __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));

#define SMALL_M_TILE(NAME, VT, VW, NJ, ATTR)                                                   \
    static inline __attribute__((always_inline, ATTR)) void NAME(                             \
        float *y, const float *x, const float *w, int64_t m0, int mr, int64_t n, int64_t N,   \
        int64_t K) {                                                                          \
        VT a[4][NJ];                                                                          \
        for (int i = 0; i < 4; i++)                                                           \
            for (int j = 0; j < NJ; j++) a[i][j] = (VT){0};                                   \
        int64_t k = 0;                                                                        \
        for (; k + VW <= K; k += VW) {                                                        \
            VT b[NJ];                                                                         \
            for (int j = 0; j < NJ; j++) __builtin_memcpy(&b[j], w + (n + j) * K + k, sizeof(VT)); \
            for (int i = 0; i < 4; i++) {                                                     \
                if (i == mr) break;                                                           \
                VT xv;                                                                        \
                __builtin_memcpy(&xv, x + (m0 + i) * K + k, sizeof(VT));                      \
                for (int j = 0; j < NJ; j++) a[i][j] += xv * b[j];                            \
            }                                                                                 \
        }                                                                                     \
        for (int i = 0; i < mr; i++)                                                          \
            for (int j = 0; j < NJ; j++) {                                                    \
                float sum = 0.0f;                                                             \
                for (int l = 0; l < VW; l++) sum += a[i][j][l];                               \
                for (int64_t kk = k; kk < K; kk++) sum += x[(m0 + i) * K + kk] * w[(n + j) * K + kk]; \
                y[(m0 + i) * N + n + j] += sum;                                               \
            }                                                                                 \
    }

SMALL_M_TILE(tile_avx512, v16f, 16, 4, target("avx512f,fma"))
SMALL_M_TILE(tile_avx2, v8f, 8, 2, target("avx2,fma"))

// y[m0..m0+mc, n0..n0+nc) += x w^T over whole tiles of nj weight rows; the constant mr in
// each call lets the tile unroll with its accumulators in registers.
#define SMALL_M_DRIVER(NAME, TILE, NJ, ATTR)                                                  \
    __attribute__((ATTR)) static void NAME(float *y, const float *x, const float *w,          \
                                           int64_t m0, int64_t mc, int64_t n0, int64_t nc,    \
                                           int64_t N, int64_t K) {                            \
        for (int64_t n = n0; n + NJ <= n0 + nc; n += NJ)                                      \
            for (int64_t m = m0; m < m0 + mc; m += 4) {                                       \
                int64_t left = m0 + mc - m;                                                   \
                switch (left < 4 ? (int)left : 4) {                                           \
                case 1: TILE(y, x, w, m, 1, n, N, K); break;                                  \
                case 2: TILE(y, x, w, m, 2, n, N, K); break;                                  \
                case 3: TILE(y, x, w, m, 3, n, N, K); break;                                  \
                default: TILE(y, x, w, m, 4, n, N, K); break;                                 \
                }                                                                             \
            }                                                                                 \
    }

SMALL_M_DRIVER(small_m_avx512, tile_avx512, 4, target("avx512f,fma"))
SMALL_M_DRIVER(small_m_avx2, tile_avx2, 2, target("avx2,fma"))

// The largest M the small-row path takes on this CPU (0: never); above it sgemm is faster. IVL_CPU_SMALL_M=avx2|off
// forces the AVX2 variant or sgemm (tests run both variants on an AVX-512 machine).
static int small_m_limit(void) {
    static int limit = -1;
    if (limit < 0) {
        __builtin_cpu_init();
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        limit = __builtin_cpu_supports("avx512f") ? 16 : avx2 ? 4 : 0;
        const char *e = getenv("IVL_CPU_SMALL_M");
        if (e && !strcmp(e, "off")) limit = 0;
        if (e && !strcmp(e, "avx2")) limit = avx2 ? 4 : 0;
    }
    return limit;
}

static void matmul_small_m(float *y, const float *x, const float *w, const float *bias,
                           int64_t m0, int64_t mc, int64_t n0, int64_t nc, int64_t N,
                           int64_t K) {
    for (int64_t i = m0; i < m0 + mc; i++) {   // y starts as the bias (or 0)
        if (bias) memcpy(y + i * N + n0, bias + n0, (size_t)nc * sizeof(float));
        else memset(y + i * N + n0, 0, (size_t)nc * sizeof(float));
    }
    int nj = small_m_limit() > 4 ? 4 : 2;   // above 4: the AVX-512 variant
    int64_t whole = nc / nj * nj;
    if (nj == 4) small_m_avx512(y, x, w, m0, mc, n0, whole, N, K);
    else small_m_avx2(y, x, w, m0, mc, n0, whole, N, K);
    for (int64_t n = n0 + whole; n < n0 + nc; n++)   // the last few weight rows
        for (int64_t m = m0; m < m0 + mc; m++) {
            float sum = 0.0f;
            for (int64_t k = 0; k < K; k++) sum += x[m * K + k] * w[n * K + k];
            y[m * N + n] += sum;
        }
}

// One block: rows [m0, m0+mc) and columns [n0, n0+nc) of y.
static void matmul_block(float *y, const float *x, const float *w, const float *bias,
                         int64_t m0, int64_t mc, int64_t n0, int64_t nc, int64_t N,
                         int64_t K) {
    if (mc > 1 && mc <= small_m_limit()) {
        matmul_small_m(y, x, w, bias, m0, mc, n0, nc, N, K);
        return;
    }
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
    if (nt == 1 || (double)M * N * K < 2e5) {
        matmul_block(y, x, w, bias, 0, M, 0, N, N, K);
        return;
    }
    // A pr x pc grid of blocks, one per thread: as many column blocks as keep each at least
    // 256 wide (multiples of 16, OpenBLAS's N unroll), the rest of the threads split rows.
    // Measured on 16 cores: a pure column split of N = 1024 ran at 73% of OpenBLAS's own
    // threading, pure row split no better (each thread packs all of w).
    int pc = nt;
    while (pc > 1 && (N / pc < 256 || nt % pc)) pc--;
    int pr = nt / pc;
    while (pr > 1 && M / pr < 32) pr--;   // decoding / short prompts: columns only
    if (pr == 1) pc = nt;
    int64_t cw = ((N + pc - 1) / pc + 15) / 16 * 16;
    pc = (int)((N + cw - 1) / cw);
    int64_t rh = (M + pr - 1) / pr;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int b = 0; b < pr * pc; b++) {
        int64_t m0 = (b / pc) * rh, n0 = (b % pc) * cw;
        int64_t mc = m0 + rh <= M ? rh : M - m0, nc = n0 + cw <= N ? cw : N - n0;
        if (mc > 0 && nc > 0) matmul_block(y, x, w, bias, m0, mc, n0, nc, N, K);
    }
}
