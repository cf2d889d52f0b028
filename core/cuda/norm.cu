// norm.cu - RMSNorm and LayerNorm over rows, one block per row, f32 statistics.
// RMSNorm follows the reference's rounding (spec 2 / 11.3): the normalised value is rounded
// to the compute dtype before the weight multiply. LayerNorm uses two passes (mean, then
// the centred sum of squares) for a biased variance without cancellation; the row is re-read
// from L1/L2, not from DRAM.
#include "core/cuda/cuda_common.cuh"

// Sum over the block; every thread gets the result. `sh` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    __syncthreads();   // sh may still be read from a previous call
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T>
__global__ void rmsnorm_kernel(T *y, const T *x, const T *w, int64_t cols, float eps) {
    __shared__ float sh[32];
    const T *xr = x + blockIdx.x * cols;
    T *yr = y + blockIdx.x * cols;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = to_f32(xr[i]);
        ss += v * v;
    }
    ss = block_sum(ss, sh);
    float r = rsqrtf(ss / (float)cols + eps);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
        yr[i] = from_f32<T>(round_t<T>(to_f32(xr[i]) * r) * to_f32(w[i]));
}

template <typename T>
__global__ void layernorm_kernel(T *y, const T *x, const T *w, const T *b, int64_t cols,
                                 float eps) {
    __shared__ float sh[32];
    const T *xr = x + blockIdx.x * cols;
    T *yr = y + blockIdx.x * cols;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) s += to_f32(xr[i]);
    float mean = block_sum(s, sh) / (float)cols;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float d = to_f32(xr[i]) - mean;
        ss += d * d;
    }
    float r = rsqrtf(block_sum(ss, sh) / (float)cols + eps);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = (to_f32(xr[i]) - mean) * r * to_f32(w[i]);
        if (b) v += to_f32(b[i]);
        yr[i] = from_f32<T>(v);
    }
}

static int norm_threads(int64_t cols) {
    if (cols <= 1024) return 128;
    if (cols <= 4096) return 256;
    if (cols <= 8192) return 512;
    return 1024;
}

static void norm_checks(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *w,
                        const char *op) {
    cuda_check_tensor(be, y, op, "y");
    cuda_check_tensor(be, x, op, "x");
    cuda_check_tensor(be, w, op, "w");
    cuda_check_same(y, x, op);
    IVL_CHECK(ivl_tensor_numel(w) == ivl_tensor_cols(x), "cuda %s: weight has %lld values for "
              "rows of %lld", op, (long long)ivl_tensor_numel(w), (long long)ivl_tensor_cols(x));
    IVL_CHECK(ivl_tensor_rows(x) <= 2147483647LL, "cuda %s: too many rows", op);
}

void cuda_op_rmsnorm(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *w,
                     float eps) {
    cuda_ctx *c = cuda_ctx_of(be);
    norm_checks(be, y, x, w, "rmsnorm");
    int64_t rows = ivl_tensor_rows(x), cols = ivl_tensor_cols(x);
    if (!rows || !cols) return;
    int th = norm_threads(cols);
    DISPATCH_T(be->dtype, rmsnorm_kernel<T><<<(unsigned)rows, th, 0, c->stream>>>(
                              (T *)y->data, (const T *)x->data, (const T *)w->data, cols, eps));
    CUDA_LAUNCHED(c, "rmsnorm_kernel");
}

void cuda_op_layernorm(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x,
                       const ivl_tensor *w, const ivl_tensor *b, float eps) {
    cuda_ctx *c = cuda_ctx_of(be);
    norm_checks(be, y, x, w, "layernorm");
    if (b) {
        cuda_check_tensor(be, b, "layernorm", "b");
        IVL_CHECK(ivl_tensor_numel(b) == ivl_tensor_cols(x), "cuda layernorm: bias size");
    }
    int64_t rows = ivl_tensor_rows(x), cols = ivl_tensor_cols(x);
    if (!rows || !cols) return;
    int th = norm_threads(cols);
    DISPATCH_T(be->dtype,
               layernorm_kernel<T><<<(unsigned)rows, th, 0, c->stream>>>(
                   (T *)y->data, (const T *)x->data, (const T *)w->data,
                   b ? (const T *)b->data : (const T *)nullptr, cols, eps));
    CUDA_LAUNCHED(c, "layernorm_kernel");
}

// ---- statistics over tensor-parallel column blocks (InternViT-6B q/k norm) ----

template <typename T>
__global__ void sumsq_rows_kernel(float *ss, const T *x, int64_t cols) {
    __shared__ float sh[32];
    const T *xr = x + blockIdx.x * cols;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = to_f32(xr[i]);
        s += v * v;
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) ss[blockIdx.x] = s;
}

template <typename T>
__global__ void rmsnorm_ss_kernel(T *y, const T *x, const float *ss, const T *w, int64_t cols,
                                  float n, float eps) {
    const T *xr = x + blockIdx.x * cols;
    T *yr = y + blockIdx.x * cols;
    float r = rsqrtf(ss[blockIdx.x] / n + eps);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
        yr[i] = from_f32<T>(round_t<T>(to_f32(xr[i]) * r) * to_f32(w[i]));
}

void cuda_op_sumsq_rows(ivl_backend *be, ivl_tensor *ss, const ivl_tensor *x) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, x, "sumsq_rows", "x");
    IVL_CHECK(ss->dtype == IVL_F32 && ss->data && ivl_tensor_numel(ss) == ivl_tensor_rows(x),
              "cuda sumsq_rows: ss must be an F32 tensor of %lld values",
              (long long)ivl_tensor_rows(x));
    int64_t rows = ivl_tensor_rows(x), cols = ivl_tensor_cols(x);
    if (!rows || !cols) return;
    DISPATCH_T(be->dtype, sumsq_rows_kernel<T><<<(unsigned)rows, norm_threads(cols), 0, c->stream>>>(
                              (float *)ss->data, (const T *)x->data, cols));
    CUDA_LAUNCHED(c, "sumsq_rows_kernel");
}

void cuda_op_rmsnorm_ss(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *ss,
                        const ivl_tensor *w, int64_t n, float eps) {
    cuda_ctx *c = cuda_ctx_of(be);
    norm_checks(be, y, x, w, "rmsnorm_ss");
    IVL_CHECK(ss->dtype == IVL_F32 && ss->data && ivl_tensor_numel(ss) == ivl_tensor_rows(x),
              "cuda rmsnorm_ss: ss must be an F32 tensor of %lld values",
              (long long)ivl_tensor_rows(x));
    int64_t rows = ivl_tensor_rows(x), cols = ivl_tensor_cols(x);
    if (!rows || !cols) return;
    DISPATCH_T(be->dtype, rmsnorm_ss_kernel<T><<<(unsigned)rows, norm_threads(cols), 0, c->stream>>>(
                              (T *)y->data, (const T *)x->data, (const float *)ss->data,
                              (const T *)w->data, cols, (float)n, eps));
    CUDA_LAUNCHED(c, "rmsnorm_ss_kernel");
}
