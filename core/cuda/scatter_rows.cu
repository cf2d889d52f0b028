// scatter_rows.cu - dst[rows[i], :] = src[i, :] in one launch (scatter_rows in backend.h):
// appends a decode step's new k/v rows to every sequence's KV-cache slot at once, where a
// copy per sequence cost one cudaMemcpyAsync each (64 per tensor per layer at batch 64).
// The row indices are uploaded to a scratch buffer; rows are moved in 16-byte units when the
// row width and both base pointers allow it (checked on the host), else element by element.
#include "core/cuda/cuda_common.cuh"

#include <stdlib.h>
#include <string.h>

// U: the unit moved (uint4 or the element type); C: units per row.
template <typename U>
__global__ void scatter_rows_kernel(U *__restrict__ dst, const U *__restrict__ src,
                                    const int64_t *__restrict__ rows, int64_t n, int64_t C,
                                    int64_t R) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n * C;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / C, c = i % C, d = rows[r];
        if (d >= 0 && d < R) dst[d * C + c] = src[i];   // the host checked; never write out
    }
}


void cuda_op_scatter_rows(ivl_backend *be, ivl_tensor *dst, const ivl_tensor *src,
                          const int64_t *dst_rows_host, int64_t n) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, dst, "scatter_rows", "dst");
    cuda_check_tensor(be, src, "scatter_rows", "src");
    char s1[96], s2[96];
    const int64_t R = ivl_tensor_rows(dst), C = ivl_tensor_cols(dst);
    IVL_CHECK(n >= 0 && ivl_tensor_rows(src) == n && ivl_tensor_cols(src) == C,
              "cuda scatter_rows: src %s is not [n = %lld, %lld] (the row width of dst %s)",
              ivl_tensor_shape_str(src, s1, sizeof s1), (long long)n, (long long)C,
              ivl_tensor_shape_str(dst, s2, sizeof s2));
    IVL_CHECK(dst_rows_host || n == 0, "cuda scatter_rows: dst_rows are NULL");
    if (n == 0 || C == 0) return;
    const char *d0 = (const char *)dst->data, *s0 = (const char *)src->data;
    IVL_CHECK(d0 + ivl_tensor_nbytes(dst) <= s0 || s0 + ivl_tensor_nbytes(src) <= d0,
              "cuda scatter_rows: dst and src overlap");
    for (int64_t i = 0; i < n; i++)
        IVL_CHECK(dst_rows_host[i] >= 0 && dst_rows_host[i] < R,
                  "cuda scatter_rows: dst_rows[%lld] = %lld is outside dst %s", (long long)i,
                  (long long)dst_rows_host[i], ivl_tensor_shape_str(dst, s2, sizeof s2));
    IVL_CHECK(ivl_rows_distinct(dst_rows_host, n), "cuda scatter_rows: dst_rows repeat a row");

    // The k and v scatters of every layer of a step send the same rows: uploaded once.
    const int64_t *rows = (const int64_t *)cuda_upload_scratch(c, IVL_SCR_ROWS, dst_rows_host,
                                                               (size_t)n * sizeof(int64_t));
    const size_t es = ivl_dtype_size(dst->dtype), rb = (size_t)C * es;
    if (rb % 16 == 0 && ((uintptr_t)d0 & 15) == 0 && ((uintptr_t)s0 & 15) == 0) {
        const int64_t cu = (int64_t)(rb / 16);
        scatter_rows_kernel<uint4><<<cuda_grid_1d(n * cu, 256), 256, 0, c->stream>>>(
            (uint4 *)dst->data, (const uint4 *)src->data, rows, n, cu, R);
    } else {
        DISPATCH_T(dst->dtype,
                   scatter_rows_kernel<T><<<cuda_grid_1d(n * C, 256), 256, 0, c->stream>>>(
                       (T *)dst->data, (const T *)src->data, rows, n, C, R));
    }
    CUDA_LAUNCHED(c, "scatter_rows_kernel");
}
