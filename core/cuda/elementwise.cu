// elementwise.cu - dtype conversion, GELU, SiLU*mul, add, LayerScale add, scale, bias add and
// the random fill for benchmarks. Memory-bound grid-stride loops; math in f32, and where the
// reference rounds an intermediate to bf16 (spec 11.4: LayerScale product, SiLU output) we do too.
#include "core/cuda/cuda_common.cuh"

#define EW_THREADS 256

// ---------------------------------------------------------------- kernels

template <typename D, typename S>
__global__ void convert_kernel(D *dst, const S *src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = from_f32<D>(to_f32(src[i]));
}

template <typename T>
__global__ void gelu_kernel(T *y, const T *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = to_f32(x[i]);
        y[i] = from_f32<T>(0.5f * v * (1.0f + erff(v * 0.70710678118654752f)));
    }
}

template <typename T>
__global__ void silu_mul_kernel(T *y, const T *g, const T *u, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float a = to_f32(g[i]);
        float s = round_t<T>(a / (1.0f + __expf(-a)));   // F.silu returns a bf16 tensor
        y[i] = from_f32<T>(s * to_f32(u[i]));
    }
}

template <typename T>
__global__ void add_kernel(T *y, const T *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = from_f32<T>(to_f32(y[i]) + to_f32(x[i]));
}

template <typename T>
__global__ void add_scaled_kernel(T *y, const T *x, const T *s, int64_t n, int64_t cols) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float t = round_t<T>(to_f32(x[i]) * to_f32(s[i % cols]));   // x * ls is a bf16 tensor
        y[i] = from_f32<T>(to_f32(y[i]) + t);
    }
}

template <typename T>
__global__ void scale_kernel(T *y, float s, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = from_f32<T>(to_f32(y[i]) * s);
}

template <typename T>
__global__ void add_bias_kernel(T *y, const T *b, int64_t n, int64_t cols) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = from_f32<T>(to_f32(y[i]) + to_f32(b[i % cols]));
}

// splitmix64 of (seed, index): independent of launch shape, so the same on every GPU.
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

template <typename T>
__global__ void fill_random_kernel(T *y, int64_t n, uint64_t seed, float amp) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        uint64_t h = mix64(seed * 0x100000001b3ull ^ mix64((uint64_t)i));
        float u = (float)(h >> 40) * (1.0f / 16777216.0f);   // [0, 1)
        y[i] = from_f32<T>((2.0f * u - 1.0f) * amp);
    }
}

// ---------------------------------------------------------------- launchers

template <typename D>
static void convert_from(cuda_ctx *c, D *dst, const void *src, ivl_dtype sdt, int64_t n) {
    unsigned g = cuda_grid_1d(n, EW_THREADS);
    if (sdt == IVL_F32) convert_kernel<<<g, EW_THREADS, 0, c->stream>>>(dst, (const float *)src, n);
    else if (sdt == IVL_BF16) convert_kernel<<<g, EW_THREADS, 0, c->stream>>>(dst, (const bf16 *)src, n);
    else if (sdt == IVL_F16) convert_kernel<<<g, EW_THREADS, 0, c->stream>>>(dst, (const f16 *)src, n);
    else IVL_CHECK(0, "cuda convert: unsupported source dtype %s", ivl_dtype_name(sdt));
    CUDA_LAUNCHED(c, "convert_kernel");
}

void cuda_convert(cuda_ctx *c, void *dst, ivl_dtype ddt, const void *src, ivl_dtype sdt,
                  int64_t n) {
    if (n <= 0) return;
    DISPATCH_T(ddt, convert_from<T>(c, (T *)dst, src, sdt, n));
}

void cuda_op_gelu(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, y, "gelu", "y");
    cuda_check_tensor(be, x, "gelu", "x");
    cuda_check_same(y, x, "gelu");
    int64_t n = ivl_tensor_numel(x);
    if (!n) return;
    DISPATCH_T(be->dtype, gelu_kernel<T><<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
                              (T *)y->data, (const T *)x->data, n));
    CUDA_LAUNCHED(c, "gelu_kernel");
}

void cuda_op_silu_mul(ivl_backend *be, ivl_tensor *y, const ivl_tensor *gate,
                      const ivl_tensor *up) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, y, "silu_mul", "y");
    cuda_check_tensor(be, gate, "silu_mul", "gate");
    cuda_check_tensor(be, up, "silu_mul", "up");
    cuda_check_same(y, gate, "silu_mul");
    cuda_check_same(y, up, "silu_mul");
    int64_t n = ivl_tensor_numel(y);
    if (!n) return;
    DISPATCH_T(be->dtype,
               silu_mul_kernel<T><<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
                   (T *)y->data, (const T *)gate->data, (const T *)up->data, n));
    CUDA_LAUNCHED(c, "silu_mul_kernel");
}

void cuda_op_add(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, y, "add", "y");
    cuda_check_tensor(be, x, "add", "x");
    cuda_check_same(y, x, "add");
    int64_t n = ivl_tensor_numel(y);
    if (!n) return;
    DISPATCH_T(be->dtype, add_kernel<T><<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
                              (T *)y->data, (const T *)x->data, n));
    CUDA_LAUNCHED(c, "add_kernel");
}

void cuda_op_add_scaled(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x,
                        const ivl_tensor *scale) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, y, "add_scaled", "y");
    cuda_check_tensor(be, x, "add_scaled", "x");
    cuda_check_tensor(be, scale, "add_scaled", "scale");
    cuda_check_same(y, x, "add_scaled");
    int64_t cols = ivl_tensor_cols(y), n = ivl_tensor_numel(y);
    IVL_CHECK(ivl_tensor_numel(scale) == cols, "cuda add_scaled: scale has %lld values for %lld "
              "columns", (long long)ivl_tensor_numel(scale), (long long)cols);
    if (!n) return;
    DISPATCH_T(be->dtype,
               add_scaled_kernel<T><<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
                   (T *)y->data, (const T *)x->data, (const T *)scale->data, n, cols));
    CUDA_LAUNCHED(c, "add_scaled_kernel");
}

void cuda_op_scale(ivl_backend *be, ivl_tensor *y, float s) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, y, "scale", "y");
    int64_t n = ivl_tensor_numel(y);
    if (!n) return;
    DISPATCH_T(be->dtype, scale_kernel<T><<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
                              (T *)y->data, s, n));
    CUDA_LAUNCHED(c, "scale_kernel");
}

void cuda_add_bias(cuda_ctx *c, ivl_dtype dt, void *y, const void *bias, int64_t rows,
                   int64_t cols) {
    int64_t n = rows * cols;
    if (!n) return;
    DISPATCH_T(dt, add_bias_kernel<T><<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
                       (T *)y, (const T *)bias, n, cols));
    CUDA_LAUNCHED(c, "add_bias_kernel");
}

void cuda_fill_random(ivl_backend *be, ivl_tensor *t, uint64_t seed, float amp) {
    cuda_ctx *c = cuda_ctx_of(be);
    IVL_CHECK(t && t->data && t->loc == IVL_DEVICE, "cuda fill_random: not a device tensor");
    int64_t n = ivl_tensor_numel(t);
    if (!n) return;
    DISPATCH_T(t->dtype,
               fill_random_kernel<T><<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
                   (T *)t->data, n, seed, amp));
    CUDA_LAUNCHED(c, "fill_random_kernel");
}
