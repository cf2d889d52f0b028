// cblas_shim.c - plain-loop sgemm/sgemv with the CBLAS row/column-major contract, for the
// standalone GPU check only (see cblas.h). Accumulates in double: it is a reference.
#include "cblas.h"

#include <stddef.h>

// Element (i, j) of op(X) for a row-major or column-major X with leading dimension ld.
static inline float at(const float *X, blasint ld, int row_major, int trans, blasint i,
                       blasint j) {
    if (trans) {
        blasint t = i;
        i = j;
        j = t;
    }
    return row_major ? X[(size_t)i * ld + j] : X[(size_t)j * ld + i];
}

void cblas_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint M, blasint N,
                 blasint K, float alpha, const float *A, blasint lda, const float *B, blasint ldb,
                 float beta, float *C, blasint ldc) {
    int rm = order == CblasRowMajor, tA = ta != CblasNoTrans, tB = tb != CblasNoTrans;
    for (blasint i = 0; i < M; i++)
        for (blasint j = 0; j < N; j++) {
            double s = 0;
            for (blasint k = 0; k < K; k++)
                s += (double)at(A, lda, rm, tA, i, k) * at(B, ldb, rm, tB, k, j);
            float *c = rm ? &C[(size_t)i * ldc + j] : &C[(size_t)j * ldc + i];
            *c = (float)(alpha * s + (beta != 0.0f ? beta * *c : 0.0));
        }
}

void cblas_sgemv(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, blasint M, blasint N, float alpha,
                 const float *A, blasint lda, const float *x, blasint incx, float beta, float *y,
                 blasint incy) {
    int rm = order == CblasRowMajor, tA = ta != CblasNoTrans;
    blasint rows = tA ? N : M, cols = tA ? M : N;   // op(A) is rows x cols
    for (blasint i = 0; i < rows; i++) {
        double s = 0;
        for (blasint j = 0; j < cols; j++) s += (double)at(A, lda, rm, tA, i, j) * x[(size_t)j * incx];
        float *yi = &y[(size_t)i * incy];
        *yi = (float)(alpha * s + (beta != 0.0f ? beta * *yi : 0.0));
    }
}

void openblas_set_num_threads(int n) { (void)n; }
char *openblas_get_corename(void) { return (char *)"cblas-shim"; }
