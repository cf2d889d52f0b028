// embed.cu - data movement ops: token embedding gather, patch embedding (im2col + cuBLASLt
// GEMM with the conv bias in the epilogue), pixel shuffle, and the argmax over logits rows.
#include "core/cuda/cuda_common.cuh"

// ---------------------------------------------------------------- embed
template <typename T>
__global__ void embed_kernel(T *out, const T *table, const int32_t *ids, int64_t n, int64_t D) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n * D;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / D, c = i % D;
        out[i] = table[(int64_t)ids[r] * D + c];
    }
}

void cuda_op_embed(ivl_backend *be, ivl_tensor *out, const ivl_tensor *table,
                   const int32_t *ids_host, int64_t n) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, out, "embed", "out");
    cuda_check_tensor(be, table, "embed", "table");
    int64_t D = ivl_tensor_cols(table), rows = ivl_tensor_rows(table);
    IVL_CHECK(ivl_tensor_cols(out) == D && ivl_tensor_rows(out) == n,
              "cuda embed: out must be [%lld, %lld]", (long long)n, (long long)D);
    if (!n) return;
    for (int64_t i = 0; i < n; i++)
        IVL_CHECK(ids_host[i] >= 0 && ids_host[i] < rows,
                  "cuda embed: token id %d at position %lld is outside the table (%lld rows)",
                  ids_host[i], (long long)i, (long long)rows);
    int32_t *ids = (int32_t *)cuda_scratch(c, IVL_SCR_IDS, (size_t)n * sizeof(int32_t));
    CUDA_CHECK(cudaMemcpyAsync(ids, ids_host, (size_t)n * sizeof(int32_t),
                               cudaMemcpyHostToDevice, c->stream));
    DISPATCH_T(be->dtype, embed_kernel<T><<<cuda_grid_1d(n * D, 256), 256, 0, c->stream>>>(
                              (T *)out->data, (const T *)table->data, ids, n, D));
    CUDA_LAUNCHED(c, "embed_kernel");
}

// ---------------------------------------------------------------- patch_embed
// cols[b*g*g + r*g + cc, ch*p*p + y*p + x] = pixels[b, ch, r*p + y, cc*p + x]
template <typename T>
__global__ void im2col_kernel(T *cols, const T *pix, int64_t B, int S, int p, int g) {
    const int64_t K = 3LL * p * p, n = B * g * g * K;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t row = i / K;
        int k = (int)(i % K);
        int b = (int)(row / ((int64_t)g * g)), pr = (int)(row % ((int64_t)g * g));
        int r = pr / g, cc = pr % g;
        int ch = k / (p * p), yx = k % (p * p), y = yx / p, x = yx % p;
        cols[i] = pix[(((int64_t)b * 3 + ch) * S + (int64_t)r * p + y) * S + (int64_t)cc * p + x];
    }
}

void cuda_op_patch_embed(ivl_backend *be, ivl_tensor *out, const ivl_tensor *pixels,
                         const ivl_tensor *w, const ivl_tensor *bias, int patch) {
    cuda_ctx *c = cuda_ctx_of(be);
    char s1[96];
    cuda_check_tensor(be, out, "patch_embed", "out");
    cuda_check_tensor(be, pixels, "patch_embed", "pixels");
    cuda_check_tensor(be, w, "patch_embed", "w");
    IVL_CHECK(pixels->ndim == 4 && pixels->shape[1] == 3 && pixels->shape[2] == pixels->shape[3] &&
                  patch > 0 && pixels->shape[2] % patch == 0,
              "cuda patch_embed: pixels %s must be [B, 3, S, S] with S a multiple of %d",
              ivl_tensor_shape_str(pixels, s1, sizeof s1), patch);
    int64_t B = pixels->shape[0];
    int S = (int)pixels->shape[2], g = S / patch;
    int64_t K = 3LL * patch * patch, C = w->shape[0], M = B * g * g;
    IVL_CHECK(w->ndim >= 2 && ivl_tensor_numel(w) == C * K,
              "cuda patch_embed: w must be [C, 3*%d*%d]", patch, patch);
    IVL_CHECK(ivl_tensor_rows(out) == M && ivl_tensor_cols(out) == C,
              "cuda patch_embed: out must be [%lld, %lld]", (long long)M, (long long)C);
    if (bias) {
        cuda_check_tensor(be, bias, "patch_embed", "bias");
        IVL_CHECK(ivl_tensor_numel(bias) == C, "cuda patch_embed: bias must have %lld values",
                  (long long)C);
    }
    if (!M) return;
    size_t es = ivl_dtype_size(be->dtype);
    void *cols = cuda_scratch(c, IVL_SCR_IM2COL, (size_t)(M * K) * es);
    DISPATCH_T(be->dtype, im2col_kernel<T><<<cuda_grid_1d(M * K, 256), 256, 0, c->stream>>>(
                              (T *)cols, (const T *)pixels->data, B, S, patch, g));
    CUDA_LAUNCHED(c, "im2col_kernel");
    cuda_matmul_raw(c, be->dtype, out->data, cols, w->data, bias ? bias->data : NULL, M, C, K);
}

// ---------------------------------------------------------------- pixel_shuffle
template <typename T>
__global__ void pixel_shuffle_kernel(T *out, const T *in, int64_t B, int g, int64_t C,
                                     int version) {
    const int h = g / 2;
    const int64_t n = B * h * h * 4 * C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C;
        int64_t rest = i / C;
        int q = (int)(rest % 4);                 // channel block: row offset major, col minor
        int64_t bt = rest / 4;                   // b * h*h + t
        int64_t b = bt / ((int64_t)h * h);
        int t = (int)(bt % ((int64_t)h * h));
        int ii = version == 1 ? t % h : t / h, jj = version == 1 ? t / h : t % h;
        int r = 2 * ii + q / 2, cc = 2 * jj + q % 2;
        out[i] = in[(b * g * g + (int64_t)r * g + cc) * C + c];
    }
}

void cuda_op_pixel_shuffle(ivl_backend *be, ivl_tensor *out, const ivl_tensor *in, int grid,
                           int version) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, out, "pixel_shuffle", "out");
    cuda_check_tensor(be, in, "pixel_shuffle", "in");
    IVL_CHECK(grid > 0 && grid % 2 == 0 && (version == 1 || version == 2),
              "cuda pixel_shuffle: grid %d must be even and version 1 or 2 (got %d)", grid,
              version);
    int64_t C = ivl_tensor_cols(in), rows = ivl_tensor_rows(in), gg = (int64_t)grid * grid;
    IVL_CHECK(rows % gg == 0, "cuda pixel_shuffle: %lld rows is not a multiple of %d x %d",
              (long long)rows, grid, grid);
    int64_t B = rows / gg;
    IVL_CHECK(ivl_tensor_rows(out) == B * gg / 4 && ivl_tensor_cols(out) == 4 * C,
              "cuda pixel_shuffle: out must be [%lld, %lld]", (long long)(B * gg / 4),
              (long long)(4 * C));
    int64_t n = rows * C;
    if (!n) return;
    DISPATCH_T(be->dtype, pixel_shuffle_kernel<T><<<cuda_grid_1d(n, 256), 256, 0, c->stream>>>(
                              (T *)out->data, (const T *)in->data, B, grid, C, version));
    CUDA_LAUNCHED(c, "pixel_shuffle_kernel");
}

// ---------------------------------------------------------------- argmax
// One block per row; (value, index) pairs reduced with "larger value, then smaller index".
__device__ __forceinline__ void argmax_merge(float &v, int &i, float v2, int i2) {
    if (v2 > v || (v2 == v && i2 < i) || (v != v && v2 == v2)) {   // NaN loses
        v = v2;
        i = i2;
    }
}

template <typename T>
__global__ void argmax_kernel(int32_t *ids, const T *logits, int64_t V) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const T *row = logits + blockIdx.x * V;
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) argmax_merge(best, bi, to_f32(row[j]), (int)j);
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, best, o);
        int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
        argmax_merge(best, bi, v2, i2);
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) {
        sv[warp] = best;
        si[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
        best = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1) {
            float v2 = __shfl_xor_sync(0xffffffffu, best, o);
            int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
            argmax_merge(best, bi, v2, i2);
        }
        if (lane == 0) ids[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
    }
}

void cuda_op_argmax(ivl_backend *be, const ivl_tensor *logits, int32_t *ids_host) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, logits, "argmax", "logits");
    int64_t R = ivl_tensor_rows(logits), V = ivl_tensor_cols(logits);
    IVL_CHECK(V > 0 && V < 2147483647LL, "cuda argmax: bad row length %lld", (long long)V);
    if (!R) return;
    int32_t *ids = (int32_t *)cuda_scratch(c, IVL_SCR_IDS, (size_t)R * sizeof(int32_t));
    DISPATCH_T(be->dtype, argmax_kernel<T><<<(unsigned)R, 1024, 0, c->stream>>>(
                              ids, (const T *)logits->data, V));
    CUDA_LAUNCHED(c, "argmax_kernel");
    CUDA_CHECK(cudaMemcpyAsync(ids_host, ids, (size_t)R * sizeof(int32_t), cudaMemcpyDeviceToHost,
                               c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
}
