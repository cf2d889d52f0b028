// matmul_cublaslt.cu - y[M,N] = x[M,K] . w[N,K]^T (+ bias[N]) with cuBLASLt: bf16/fp16 inputs
// and output, f32 accumulate and scale, bias fused through the BIAS epilogue.
//
// Row-major y = x w^T is column-major y^T[N,M] = w'^T x' where w' is w seen column-major
// (K x N, ld K) and x' is x seen column-major (K x M, ld K): so A = w (op T), B = x (op N),
// m = N, n = M, k = K, and the bias (one value per row of the column-major result) is per
// output feature, as Linear's.
//
// M <= 8 (decode) goes to the weight-streaming kernel in gemv.cu where eligible.
//
// Descriptors and the heuristic's algorithm are cached per (M, N, K, dtype, bias, alignment):
// the model calls a few dozen distinct shapes, and asking the heuristic costs ~10-50 us.
#include "core/cuda/cuda_common.cuh"

#include <stdlib.h>

#define MAX_PLANS 256

struct cuda_matmul_plan {
    int64_t M, N, K;
    ivl_dtype dt;
    int has_bias;
    int align;               // min alignment in bytes of the pointers (16, 8, 4, 2)
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, y;
    cublasLtMatmulAlgo_t algo;
    int bias_in_epilogue;    // 0: no algorithm takes the bias epilogue, add it with a kernel
};

static int ptr_align(const void *p) {
    uintptr_t v = (uintptr_t)p;
    if (v % 16 == 0) return 16;
    if (v % 8 == 0) return 8;
    if (v % 4 == 0) return 4;
    return 2;
}

static cudaDataType_t cuda_type(ivl_dtype dt) {
    switch (dt) {
    case IVL_BF16: return CUDA_R_16BF;
    case IVL_F16: return CUDA_R_16F;
    case IVL_F32: return CUDA_R_32F;
    default: IVL_CHECK(0, "cuda matmul: unsupported dtype %s", ivl_dtype_name(dt));
    }
    return CUDA_R_32F;
}

static void plan_destroy(cuda_matmul_plan *p) {
    cublasLtMatrixLayoutDestroy(p->a);
    cublasLtMatrixLayoutDestroy(p->b);
    cublasLtMatrixLayoutDestroy(p->y);
    cublasLtMatmulDescDestroy(p->desc);
}

void cuda_matmul_plans_free(cuda_ctx *c) {
    for (int i = 0; i < c->n_plans; i++) plan_destroy(&c->plans[i]);
    free(c->plans);
    c->plans = NULL;
    c->n_plans = 0;
}

// Asks the heuristic for the best algorithm of the current descriptor; 0 if none.
static int pick_algo(cuda_ctx *c, cuda_matmul_plan *p) {
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = c->workspace_size;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    uint32_t al = (uint32_t)p->align;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof al));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof al));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof al));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof al));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->a, p->b, p->y, p->y,
                                                       pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0 || res.state != CUBLAS_STATUS_SUCCESS)
        return 0;
    p->algo = res.algo;
    return 1;
}

static cuda_matmul_plan *get_plan(cuda_ctx *c, ivl_dtype dt, int64_t M, int64_t N, int64_t K,
                                  int has_bias, int align) {
    for (int i = 0; i < c->n_plans; i++) {
        cuda_matmul_plan *p = &c->plans[i];
        if (p->M == M && p->N == N && p->K == K && p->dt == dt && p->has_bias == has_bias &&
            p->align == align)
            return p;
    }
    if (!c->plans) c->plans = (cuda_matmul_plan *)ivl_calloc(MAX_PLANS, sizeof *c->plans);
    if (c->n_plans == MAX_PLANS) {   // many shapes (varying M in prefill): start over
        for (int i = 0; i < c->n_plans; i++) plan_destroy(&c->plans[i]);
        c->n_plans = 0;
    }
    cuda_matmul_plan *p = &c->plans[c->n_plans];
    memset(p, 0, sizeof *p);
    p->M = M, p->N = N, p->K = K, p->dt = dt, p->has_bias = has_bias, p->align = align;
    cudaDataType_t ty = cuda_type(dt);
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT,
                                                sizeof opT));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN,
                                                sizeof opN));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, ty, (uint64_t)K, (uint64_t)N, K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, ty, (uint64_t)K, (uint64_t)M, K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->y, ty, (uint64_t)N, (uint64_t)M, N));
    int ok = 0;
    if (has_bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                    sizeof epi));
        cudaDataType_t bty = ty;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bty, sizeof bty));
        ok = pick_algo(c, p);
        p->bias_in_epilogue = ok;
        if (!ok) {   // fall back to a plain GEMM + bias kernel
            epi = CUBLASLT_EPILOGUE_DEFAULT;
            CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
                p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        }
    }
    if (!ok) ok = pick_algo(c, p);
    if (!ok) {
        plan_destroy(p);
        IVL_CHECK(0, "cuBLASLt has no algorithm for %s GEMM M=%lld N=%lld K=%lld (pointer "
                  "alignment %d bytes) on sm_%d", ivl_dtype_name(dt), (long long)M, (long long)N,
                  (long long)K, align, c->cc);
    }
    c->n_plans++;
    return p;
}

void cuda_matmul_raw(cuda_ctx *c, ivl_dtype dt, void *y, const void *x, const void *w,
                     const void *bias, int64_t M, int64_t N, int64_t K) {
    if (M == 0 || N == 0) return;
    // Decode (M <= 8) streams the weights with its own kernel where eligible (gemv.cu).
    if (cuda_gemv_try(c, dt, y, x, w, bias, M, N, K)) return;
    int align = ptr_align(y);
    int a2 = ptr_align(x), a3 = ptr_align(w);
    if (a2 < align) align = a2;
    if (a3 < align) align = a3;
    // Leading dimensions also set the alignment of every row after the first.
    size_t es = ivl_dtype_size(dt);
    while (align > 2 && (((size_t)K * es) % align || ((size_t)N * es) % align)) align /= 2;
    if (bias && ptr_align(bias) < align) align = ptr_align(bias);
    cuda_matmul_plan *p = get_plan(c, dt, M, N, K, bias != NULL, align);
    if (bias && p->bias_in_epilogue)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(c->lt, p->desc, &one, w, p->a, x, p->b, &zero, y, p->y, y, p->y,
                                &p->algo, c->workspace, c->workspace_size, c->stream));
    CUDA_LAUNCHED(c, "cublasLtMatmul");
    if (bias && !p->bias_in_epilogue) cuda_add_bias(c, dt, y, bias, M, N);
}

void cuda_op_matmul(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *w,
                    const ivl_tensor *bias) {
    cuda_ctx *c = cuda_ctx_of(be);
    char s1[96], s2[96], s3[96];
    cuda_check_tensor(be, y, "matmul", "y");
    cuda_check_tensor(be, x, "matmul", "x");
    cuda_check_tensor(be, w, "matmul", "w");
    int64_t K = ivl_tensor_cols(x), M = ivl_tensor_rows(x);
    IVL_CHECK(w->ndim == 2 && w->shape[1] == K && ivl_tensor_cols(y) == w->shape[0] &&
                  ivl_tensor_rows(y) == M,
              "cuda matmul: y %s = x %s . w %s^T: shapes do not match",
              ivl_tensor_shape_str(y, s1, sizeof s1), ivl_tensor_shape_str(x, s2, sizeof s2),
              ivl_tensor_shape_str(w, s3, sizeof s3));
    int64_t N = w->shape[0];
    if (bias) {
        cuda_check_tensor(be, bias, "matmul", "bias");
        IVL_CHECK(ivl_tensor_numel(bias) == N, "cuda matmul: bias has %lld values, w has %lld "
                  "rows", (long long)ivl_tensor_numel(bias), (long long)N);
    }
    IVL_CHECK(y->data != x->data && y->data != w->data, "cuda matmul: y must not alias x or w");
    cuda_matmul_raw(c, be->dtype, y->data, x->data, w->data, bias ? bias->data : NULL, M, N, K);
}

// Shapes of y = x w^T as cuda_op_matmul checks them (no bias).
static void check_mm(ivl_backend *be, const ivl_tensor *y, const ivl_tensor *x,
                     const ivl_tensor *w, const char *op) {
    char s1[96], s2[96], s3[96];
    cuda_check_tensor(be, y, op, "y");
    cuda_check_tensor(be, x, op, "x");
    cuda_check_tensor(be, w, op, "w");
    IVL_CHECK(w->ndim == 2 && w->shape[1] == ivl_tensor_cols(x) &&
                  ivl_tensor_cols(y) == w->shape[0] && ivl_tensor_rows(y) == ivl_tensor_rows(x),
              "cuda %s: y %s = x %s . w %s^T: shapes do not match", op,
              ivl_tensor_shape_str(y, s1, sizeof s1), ivl_tensor_shape_str(x, s2, sizeof s2),
              ivl_tensor_shape_str(w, s3, sizeof s3));
    IVL_CHECK(y->data != x->data && y->data != w->data, "cuda %s: y must not alias x or w", op);
}

// q/k/v in decode: one gemv launch for all matrices where eligible, else one matmul each.
void cuda_op_matmul_n(ivl_backend *be, int n, ivl_tensor *const *y, const ivl_tensor *x,
                      const ivl_tensor *const *w) {
    IVL_CHECK(n >= 1 && n <= 3 && y && w, "cuda matmul_n: n = %d (1..3) or NULL arrays", n);
    void *yd[3];
    const void *wd[3];
    int64_t N[3];
    for (int i = 0; i < n; i++) {
        check_mm(be, y[i], x, w[i], "matmul_n");
        yd[i] = y[i]->data, wd[i] = w[i]->data, N[i] = w[i]->shape[0];
    }
    const int64_t M = ivl_tensor_rows(x), K = ivl_tensor_cols(x);
    if (M > 0 && cuda_gemv_multi_try(cuda_ctx_of(be), be->dtype, n, yd, x->data, wd, N, M, K))
        return;
    for (int i = 0; i < n; i++) cuda_op_matmul(be, y[i], x, w[i], NULL);
}

// gate/up + SiLU in decode: one gemv launch where eligible, else matmul, matmul, silu_mul.
void cuda_op_matmul_glu(ivl_backend *be, ivl_tensor *y, ivl_tensor *up, const ivl_tensor *x,
                        const ivl_tensor *wg, const ivl_tensor *wu) {
    check_mm(be, y, x, wg, "matmul_glu");
    check_mm(be, up, x, wu, "matmul_glu");
    char s1[96], s2[96];
    IVL_CHECK(wg->shape[0] == wu->shape[0], "cuda matmul_glu: gate w %s and up w %s differ",
              ivl_tensor_shape_str(wg, s1, sizeof s1), ivl_tensor_shape_str(wu, s2, sizeof s2));
    const int64_t M = ivl_tensor_rows(x), K = ivl_tensor_cols(x), N = wg->shape[0];
    if (M > 0 && cuda_gemv_glu_try(cuda_ctx_of(be), be->dtype, y->data, x->data, wg->data,
                                   wu->data, M, N, K))
        return;
    cuda_op_matmul(be, y, x, wg, NULL);
    cuda_op_matmul(be, up, x, wu, NULL);
    cuda_op_silu_mul(be, y, y, up);
}
