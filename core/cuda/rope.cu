// rope.cu - rotate-half RoPE in place on x [T, n_heads * head_dim] with host cos/sin [T, half].
// The tables are uploaded per call (a host copy of the last ones skips the upload when the
// model passes the same tables again, e.g. for q then k). Numerics follow the reference
// (spec 4.2): tables rounded to the compute dtype, each product and the sum rounded too.
#include "core/cuda/cuda_common.cuh"

#include <stdlib.h>
#include <string.h>

template <typename T>
__global__ void rope_kernel(T *x, const float *cos_t, const float *sin_t, int64_t T_,
                            int n_heads, int head_dim) {
    const int half = head_dim / 2;
    const int64_t n = T_ * n_heads * half;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int k = (int)(i % half);
        int64_t th = i / half;                  // t * n_heads + head
        int64_t t = th / n_heads;
        T *u = x + th * head_dim;
        float c = round_t<T>(cos_t[t * half + k]), s = round_t<T>(sin_t[t * half + k]);
        float a = to_f32(u[k]), b = to_f32(u[k + half]);
        float r0 = round_t<T>(a * c) - round_t<T>(b * s);
        float r1 = round_t<T>(b * c) + round_t<T>(a * s);
        u[k] = from_f32<T>(r0);
        u[k + half] = from_f32<T>(r1);
    }
}

void cuda_op_rope(ivl_backend *be, ivl_tensor *x, int n_heads, int head_dim,
                  const float *cos_host, const float *sin_host) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, x, "rope", "x");
    IVL_CHECK(head_dim > 0 && head_dim % 2 == 0 && n_heads > 0 &&
                  ivl_tensor_cols(x) == (int64_t)n_heads * head_dim,
              "cuda rope: x has %lld columns, expected %d heads x %d", (long long)ivl_tensor_cols(x),
              n_heads, head_dim);
    IVL_CHECK(cos_host && sin_host, "cuda rope: NULL cos/sin tables");
    int64_t T_ = ivl_tensor_rows(x);
    if (!T_) return;
    size_t half = (size_t)head_dim / 2, nt = (size_t)T_ * half;
    float *dev = (float *)cuda_scratch(c, IVL_SCR_ROPE, 2 * nt * sizeof(float));
    int same = c->rope_host && c->rope_host_n == 2 * nt &&
               !memcmp(c->rope_host, cos_host, nt * sizeof(float)) &&
               !memcmp(c->rope_host + nt, sin_host, nt * sizeof(float));
    if (!same) {
        // The scratch buffer may have been re-allocated by cuda_scratch (same size class
        // requests keep it); either way upload into the current one, stream-ordered after
        // the previous rope kernel.
        free(c->rope_host);
        c->rope_host = (float *)ivl_malloc(2 * nt * sizeof(float));
        memcpy(c->rope_host, cos_host, nt * sizeof(float));
        memcpy(c->rope_host + nt, sin_host, nt * sizeof(float));
        c->rope_host_n = 2 * nt;
        CUDA_CHECK(cudaMemcpyAsync(dev, c->rope_host, 2 * nt * sizeof(float),
                                   cudaMemcpyHostToDevice, c->stream));
    }
    int64_t n = T_ * n_heads * (int64_t)half;
    DISPATCH_T(be->dtype, rope_kernel<T><<<cuda_grid_1d(n, 256), 256, 0, c->stream>>>(
                              (T *)x->data, dev, dev + nt, T_, n_heads, head_dim));
    CUDA_LAUNCHED(c, "rope_kernel");
}
