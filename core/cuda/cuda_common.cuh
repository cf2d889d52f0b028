// cuda_common.cuh - private to the CUDA module: the backend context, dtype helpers shared by
// the kernels, the launch check, device scratch buffers, and the entry points of each op
// family (one .cu file per family: kernel -> launcher(stream) -> table entry).
//
// Precision: activations and weights are bf16 on sm_80+ and fp16 below (sm_75; sm_61/70 with
// a CUDA 12 toolkit). Kernels load T, compute in f32 and store T. Nothing on the fp16 path
// uses an instruction newer than Pascal except the tensor-core attention, which is guarded by
// __CUDA_ARCH__ and replaced by the CUDA-core decode kernel on cards without tensor cores.
#ifndef IVL_CUDA_COMMON_CUH
#define IVL_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <stdint.h>

#include "core/cuda/cuda_check.h"   // first: makes check.h's _Noreturn valid C++
extern "C" {
#include "core/backend.h"
#include "core/log.h"
#include "core/tensor.h"
}
#include "core/cuda/ivl_cuda.h"

typedef __nv_bfloat16 bf16;
typedef __half f16;

// ---- dtype <-> f32 in kernels (software conversions exist on every arch) ----
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(f16 x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ f16 from_f32<f16>(float x) { return __float2half(x); }
// Round through T and back: the value a T tensor would hold (used where the reference rounds
// an intermediate to bf16, spec section 11).
template <typename T> __device__ __forceinline__ float round_t(float x) {
    return to_f32(from_f32<T>(x));
}

// ---- scratch buffers: device memory reused across calls, grown on demand ----
enum {
    IVL_SCR_STAGE = 0,   // upload/download conversion staging
    IVL_SCR_ROPE,        // cos/sin tables
    IVL_SCR_IDS,         // embed ids, argmax results
    IVL_SCR_IM2COL,      // patch_embed columns
    IVL_SCR_ATTN,        // decode-attention partial results
    IVL_SCR_ATTN_DESC,   // attention_batch work-item / row descriptors
    IVL_SCR_ROWS,        // scatter_rows destination row indices
    IVL_SCR_COUNT
};

typedef struct cuda_matmul_plan cuda_matmul_plan;   // matmul_cublaslt.cu

typedef struct cuda_ctx {
    ivl_cuda_ext ext;          // must be first (see ivl_cuda.h)
    int device;
    int cc;                    // 75, 80, 90, ...
    int sm_count;
    size_t smem_optin;         // max dynamic shared memory per block after opt-in
    int use_pool;              // stream-ordered allocator available
    int debug_sync;            // IVL_DEBUG_SYNC build or IVL_CUDA_DEBUG_SYNC=1
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace;           // cuBLASLt workspace
    size_t workspace_size;
    void *scr[IVL_SCR_COUNT];
    size_t scr_size[IVL_SCR_COUNT];
    // Host copy of what cuda_upload_scratch last sent to each slot (NULL: unknown).
    void *up_host[IVL_SCR_COUNT];
    size_t up_n[IVL_SCR_COUNT];
    int upload_cache;          // 0: IVL_CUDA_UPLOAD_CACHE=0, always upload
    // RoPE tables last uploaded (host copy) so repeated calls with the same tables skip the copy.
    float *rope_host;
    size_t rope_host_n;
    cuda_matmul_plan *plans;   // cache of cuBLASLt descriptors + algorithms per shape
    int n_plans;
    int flash_regs_state;      // 0 unknown, 1 register-resident attention output ok, -1 not
} cuda_ctx;

static inline cuda_ctx *cuda_ctx_of(ivl_backend *be) { return (cuda_ctx *)be->ctx; }

// Checks the launch (always) and, in debug-sync mode, synchronises so that an asynchronous
// fault is reported at the kernel that caused it.
void cuda_after_launch(cuda_ctx *c, const char *what, const char *file, int line);
#define CUDA_LAUNCHED(c, what) cuda_after_launch((c), (what), __FILE__, __LINE__)

void *cuda_scratch(cuda_ctx *c, int which, size_t bytes);
// Scratch slot `which` holding a copy of host[0..bytes): the upload is skipped when the slot
// already holds exactly these bytes (sent by the previous call for this slot). A decode step
// sends the same KV rows and attention descriptors to every layer, and each copy in the stream
// sits between two kernels. Only for slots no kernel writes to.
void *cuda_upload_scratch(cuda_ctx *c, int which, const void *host, size_t bytes);

// flash_mma.cu: FlashAttention-2-style attention with mma.sync (sm_80+, bf16/fp16, head_dim
// 64/96/128, 16-byte aligned pointers) for up to IVL_FLASH_MAXSEQ sequences in one launch:
// sequence i has queries at rows q_row0[i] .. + n[i] - 1 of q/out (positions pos0[i] ..) and
// keys/values at rows kv_row0[i] .. + len[i] - 1 of k/v. br = query rows per block (64, 128).
// Returns 0 (nothing launched) when it does not apply; the caller then uses WMMA/decode.
#define IVL_FLASH_MAXSEQ 48
typedef struct cuda_flash_seqs {
    int nseq;
    int q_row0[IVL_FLASH_MAXSEQ], n[IVL_FLASH_MAXSEQ], kv_row0[IVL_FLASH_MAXSEQ];
    int len[IVL_FLASH_MAXSEQ], pos0[IVL_FLASH_MAXSEQ];
} cuda_flash_seqs;
int cuda_flash_mma(cuda_ctx *c, ivl_dtype dt, int br, void *out, const void *q, const void *k,
                   const void *v, int H, int KH, int hd, int causal, const cuda_flash_seqs *sq,
                   float sl2);
void *cuda_dev_alloc(cuda_ctx *c, size_t bytes);
void cuda_dev_free(cuda_ctx *c, void *p);

// Grid size for n elements with `threads` per block, capped for grid-stride loops.
static inline unsigned cuda_grid_1d(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535LL * 64) b = 65535LL * 64;
    return (unsigned)b;
}

// Dispatch on the backend's compute dtype: DISPATCH_T(dt, body) runs body with T defined.
#define DISPATCH_T(dt, ...)                                                   \
    do {                                                                      \
        if ((dt) == IVL_BF16) {                                               \
            typedef bf16 T;                                                   \
            __VA_ARGS__;                                                      \
        } else if ((dt) == IVL_F16) {                                         \
            typedef f16 T;                                                    \
            __VA_ARGS__;                                                      \
        } else if ((dt) == IVL_F32) {                                         \
            typedef float T;                                                  \
            __VA_ARGS__;                                                      \
        } else {                                                              \
            IVL_CHECK(0, "CUDA op on unsupported dtype %s", ivl_dtype_name(dt)); \
        }                                                                     \
    } while (0)

// Shape / placement checks shared by the ops.
void cuda_check_tensor(ivl_backend *be, const ivl_tensor *t, const char *op, const char *arg);
void cuda_check_same(const ivl_tensor *a, const ivl_tensor *b, const char *op);

// ---- op families ----
// elementwise.cu
void cuda_convert(cuda_ctx *c, void *dst, ivl_dtype ddt, const void *src, ivl_dtype sdt,
                  int64_t n);
void cuda_op_gelu(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x);
void cuda_op_silu_mul(ivl_backend *be, ivl_tensor *y, const ivl_tensor *gate,
                      const ivl_tensor *up);
void cuda_op_add(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x);
void cuda_op_add_scaled(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x,
                        const ivl_tensor *scale);
void cuda_op_scale(ivl_backend *be, ivl_tensor *y, float s);
void cuda_fill_random(ivl_backend *be, ivl_tensor *t, uint64_t seed, float amp);
// y[r, c] += bias[c] (used when no cuBLASLt algorithm takes the bias epilogue)
void cuda_add_bias(cuda_ctx *c, ivl_dtype dt, void *y, const void *bias, int64_t rows,
                   int64_t cols);
// matmul_cublaslt.cu
void cuda_matmul_raw(cuda_ctx *c, ivl_dtype dt, void *y, const void *x, const void *w,
                     const void *bias, int64_t M, int64_t N, int64_t K);
void cuda_op_matmul(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *w,
                    const ivl_tensor *bias);
void cuda_matmul_plans_free(cuda_ctx *c);
// gemv.cu: the weight-streaming kernel for M <= 8; returns 0 (nothing launched) when the
// shape, dtype or alignment is not eligible or IVL_CUDA_GEMV=0, so the caller uses cuBLASLt.
int cuda_gemv_try(cuda_ctx *c, ivl_dtype dt, void *y, const void *x, const void *w,
                  const void *bias, int64_t M, int64_t N, int64_t K);
// One launch for y[i] = x w[i]^T, i < n <= 3 (no bias), or for y = silu(x wg^T) * (x wu^T);
// 0 when any matrix is not eligible or IVL_CUDA_GEMV_FUSE=0 (the caller loops matmuls).
int cuda_gemv_multi_try(cuda_ctx *c, ivl_dtype dt, int n, void *const *y, const void *x,
                        const void *const *w, const int64_t *N, int64_t M, int64_t K);
int cuda_gemv_glu_try(cuda_ctx *c, ivl_dtype dt, void *y, const void *x, const void *wg,
                      const void *wu, int64_t M, int64_t N, int64_t K);
void cuda_op_matmul_n(ivl_backend *be, int n, ivl_tensor *const *y, const ivl_tensor *x,
                      const ivl_tensor *const *w);
void cuda_op_matmul_glu(ivl_backend *be, ivl_tensor *y, ivl_tensor *up, const ivl_tensor *x,
                        const ivl_tensor *wg, const ivl_tensor *wu);
// norm.cu
void cuda_op_sumsq_rows(ivl_backend *be, ivl_tensor *ss, const ivl_tensor *x);
void cuda_op_rmsnorm_ss(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *ss,
                        const ivl_tensor *w, int64_t n, float eps);
void cuda_op_rmsnorm(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *w,
                     float eps);
void cuda_op_layernorm(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x,
                       const ivl_tensor *w, const ivl_tensor *b, float eps);
// rope.cu
void cuda_op_rope(ivl_backend *be, ivl_tensor *x, int n_heads, int head_dim,
                  const float *cos_host, const float *sin_host);
// attention.cu
void cuda_op_attention(ivl_backend *be, ivl_tensor *out, const ivl_tensor *q,
                       const ivl_tensor *k, const ivl_tensor *v, int n_heads, int n_kv_heads,
                       int head_dim, int causal, int64_t q_pos0, float scale);
// attention_batch.cu
void cuda_op_attention_batch(ivl_backend *be, ivl_tensor *out, const ivl_tensor *q,
                             const ivl_tensor *k, const ivl_tensor *v, int n_heads,
                             int n_kv_heads, int head_dim, int causal,
                             const ivl_attn_seq *seqs, int nseq, float scale);
// scatter_rows.cu
void cuda_op_scatter_rows(ivl_backend *be, ivl_tensor *dst, const ivl_tensor *src,
                          const int64_t *dst_rows_host, int64_t n);
// embed.cu
void cuda_op_embed(ivl_backend *be, ivl_tensor *out, const ivl_tensor *table,
                   const int32_t *ids_host, int64_t n);
void cuda_op_patch_embed(ivl_backend *be, ivl_tensor *out, const ivl_tensor *pixels,
                         const ivl_tensor *w, const ivl_tensor *bias, int patch);
void cuda_op_pixel_shuffle(ivl_backend *be, ivl_tensor *out, const ivl_tensor *in, int grid,
                           int version);
void cuda_op_argmax(ivl_backend *be, const ivl_tensor *logits, int32_t *ids_host);

#endif
