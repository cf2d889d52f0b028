// attention.c - softmax(q k^T * scale) v for one sequence, GQA, optional causal mask.
//
// Work is cut into tasks (kv head g, block of queries). A task packs the queries of all the
// query heads that share kv head g (rows ordered (t, head in group)) into one matrix, so
// k and v are streamed once per group and decoding (T = 1) still makes a small GEMM instead
// of a GEMV per head. Per task:
//   S = Qp . K_g[0:nk]^T * scale   (OpenBLAS sgemm, nk = keys the last query of the block sees)
//   P = exp(S - rowmax) with the causal mask, in f32; 1/rowsum kept aside
//   O = P . V_g[0:nk]; out = O / rowsum
// Scratch is one [rows, nk] score block per thread (64 x L floats: 1 MB at L = 4096), never
// a [H, T, L] tensor. Causal tasks are scheduled longest first for load balance.
// No FP traps are used: lets GCC vectorise the clamps in ivl_cpu_expf (softmax).
#pragma GCC optimize("no-trapping-math")
#include "core/check.h"
#include "core/cpu/cpu_ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#define ROWS_PER_TASK 64             // packed query rows per task (queries x heads in group)
#define SCORE_BUDGET (4 << 20)       // max floats in one task's score block (16 MB)

// Softmax numerators of s[0:lim) in place, zeros in [lim, nk); returns 1 / sum.
IVL_CPU_SIMD
static float softmax_row(float *s, int64_t lim, int64_t nk) {
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < lim; j++) m = s[j] > m ? s[j] : m;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < lim; j++) {
        float e = ivl_cpu_expf(s[j] - m);
        s[j] = e;
        sum += e;
    }
    for (int64_t j = lim; j < nk; j++) s[j] = 0.0f;
    return 1.0f / sum;
}

void ivl_cpu_attention(float *out, const float *q, const float *k, const float *v, int64_t T,
                       int64_t L, int n_heads, int n_kv_heads, int head_dim, int causal,
                       int64_t q_pos0, float scale) {
    IVL_CHECK(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0,
              "attention: %d query heads are not a multiple of %d kv heads", n_heads,
              n_kv_heads);
    IVL_CHECK(L >= 1, "attention: no keys (L = %lld)", (long long)L);
    IVL_CHECK(!causal || (q_pos0 >= 0 && q_pos0 + T <= L),
              "attention: causal queries at positions %lld..%lld need %lld keys, got %lld",
              (long long)q_pos0, (long long)(q_pos0 + T - 1), (long long)(q_pos0 + T),
              (long long)L);
    if (T == 0) return;
    ivl_cpu_blas_init();
    const int grp = n_heads / n_kv_heads, hd = head_dim;
    const int64_t q_ld = (int64_t)n_heads * hd, kv_ld = (int64_t)n_kv_heads * hd;
    int64_t bt = ROWS_PER_TASK / grp;
    if (bt * grp * L > SCORE_BUDGET) bt = SCORE_BUDGET / (grp * L);
    if (bt < 1) bt = 1;
    if (bt > T) bt = T;
    const int64_t nblk = (T + bt - 1) / bt, ntask = nblk * n_kv_heads;
    const int64_t max_rows = bt * grp;

#pragma omp parallel if (ntask > 1 && (double)T * L * q_ld > 1e5)
    {
        float *qp = ivl_malloc(sizeof(float) * (size_t)(max_rows * hd));
        float *op = ivl_malloc(sizeof(float) * (size_t)(max_rows * hd));
        float *sc = ivl_malloc(sizeof(float) * (size_t)(max_rows * L));
        float *inv = ivl_malloc(sizeof(float) * (size_t)max_rows);
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < ntask; task++) {
            // Last query blocks first: under a causal mask they see the most keys.
            int64_t blk = nblk - 1 - task / n_kv_heads;
            int g = (int)(task % n_kv_heads);
            int64_t t0 = blk * bt, nt = t0 + bt <= T ? bt : T - t0, rows = nt * grp;
            int64_t nk = causal ? q_pos0 + t0 + nt : L;
            for (int64_t t = 0; t < nt; t++)
                memcpy(qp + t * grp * hd, q + (t0 + t) * q_ld + (int64_t)g * grp * hd,
                       sizeof(float) * (size_t)(grp * hd));
            const float *kg = k + (int64_t)g * hd, *vg = v + (int64_t)g * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows, (blasint)nk,
                        hd, scale, qp, hd, kg, (blasint)kv_ld, 0.0f, sc, (blasint)nk);
            for (int64_t r = 0; r < rows; r++) {
                int64_t lim = causal ? q_pos0 + t0 + r / grp + 1 : nk;
                inv[r] = softmax_row(sc + r * nk, lim, nk);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, hd,
                        (blasint)nk, 1.0f, sc, (blasint)nk, vg, (blasint)kv_ld, 0.0f, op, hd);
            for (int64_t r = 0; r < rows; r++) {
                float *dst = out + (t0 + r / grp) * q_ld + ((int64_t)g * grp + r % grp) * hd;
                for (int d = 0; d < hd; d++) dst[d] = op[r * hd + d] * inv[r];
            }
        }
        free(qp);
        free(op);
        free(sc);
        free(inv);
    }
}
