// cblas.h (shim) - the four OpenBLAS entry points the CPU backend calls, for the standalone
// GPU check build on machines without OpenBLAS (see ../CMakeLists.txt). Not used by the
// engine build.
#ifndef IVL_CBLAS_SHIM_H
#define IVL_CBLAS_SHIM_H

typedef int blasint;
typedef enum { CblasRowMajor = 101, CblasColMajor = 102 } CBLAS_ORDER;
typedef enum { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 } CBLAS_TRANSPOSE;
typedef CBLAS_ORDER CBLAS_LAYOUT;

void cblas_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint M, blasint N,
                 blasint K, float alpha, const float *A, blasint lda, const float *B, blasint ldb,
                 float beta, float *C, blasint ldc);
void cblas_sgemv(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, blasint M, blasint N, float alpha,
                 const float *A, blasint lda, const float *x, blasint incx, float beta, float *y,
                 blasint incy);
void openblas_set_num_threads(int n);
char *openblas_get_corename(void);

#endif
