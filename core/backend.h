// backend.h - the table of functions that model code calls. Two implementations:
// core/cpu/ (f32 compute, OpenBLAS, OpenMP) and core/cuda/ (bf16 or f16 compute, cuBLASLt),
// with the same op names. Model code never touches tensor memory directly: it allocates
// through the table, uploads weights once, and calls ops.
//
// Conventions for every op:
// - All tensor arguments live on this backend (t->loc == IVL_DEVICE) in be->dtype, are
//   contiguous and row-major. "rows" = numel / last dimension.
// - Outputs may alias inputs only where the comment says "in place ok".
// - Shapes are checked with IVL_CHECK (a mismatch is a bug in the caller and ends the job).
// - Host-side arguments (token ids, positions) are plain C arrays.
// - Ops may run asynchronously; download() and synchronize() wait for them.
#ifndef IVL_BACKEND_H
#define IVL_BACKEND_H

#include "core/tensor.h"

typedef struct ivl_backend ivl_backend;

// One sequence of a batched attention call (attention_batch): queries q[q_row0 .. q_row0+n-1]
// attend to its len keys (the new rows already written); if causal, query t sits at position
// len - n + t. n == 0 is skipped. Where the keys are:
// - blocks == NULL: key j is row kv_row0 + j of k and v (the ViT's tiles, contiguous tests);
// - blocks != NULL (the paged KV cache, core/models/llm.h): key j is row
//   blocks[j / block_size] * block_size + j % block_size (blocks is a host array of at least
//   ceil(len / block_size) entries; kv_row0 is ignored).
typedef struct ivl_attn_seq {
    int64_t q_row0, n, kv_row0, len;
    const int32_t *blocks;
    int block_size;
} ivl_attn_seq;

struct ivl_backend {
    const char *name;        // "cpu" or "cuda"
    ivl_dtype dtype;         // dtype of activations and weights: F32 on CPU, BF16/F16 on CUDA
    char device_name[128];   // "x86_64 CPU, 2 threads", "NVIDIA H100 80GB HBM3"
    void *ctx;               // backend private state

    void (*destroy)(ivl_backend *be);

    // ---- memory ----
    // New zeroed tensor of be->dtype (or the dtype given) on this backend.
    ivl_tensor (*alloc)(ivl_backend *be, ivl_dtype dt, int ndim, const int64_t *shape);
    void (*free)(ivl_backend *be, ivl_tensor *t);
    // Host -> backend. src is a host tensor of F32, BF16 or F16 (or I32); numel must match;
    // the values are converted to dst->dtype.
    void (*upload)(ivl_backend *be, ivl_tensor *dst, const ivl_tensor *src_host);
    // Backend -> host, converted to dst_host->dtype (usually F32). Waits for pending ops.
    void (*download)(ivl_backend *be, ivl_tensor *dst_host, const ivl_tensor *src);
    // dst = src, same numel and dtype (views make this a row-range copy).
    void (*copy)(ivl_backend *be, ivl_tensor *dst, const ivl_tensor *src);
    void (*zero)(ivl_backend *be, ivl_tensor *t);
    void (*synchronize)(ivl_backend *be);

    // ---- linear algebra ----
    // y[M,N] = x[M,K] . w[N,K]^T (+ bias[N] if bias != NULL). Weights are stored [out, in]
    // like PyTorch's Linear. w may also be a quantized weight (IVL_Q8 / IVL_Q4, made by
    // upload_quant): y is then x times the dequantized weight (matmul_n and matmul_glu too).
    void (*matmul)(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *w,
                   const ivl_tensor *bias);

    // ---- normalisation and elementwise (over rows; in place ok: y == x) ----
    // y = x / sqrt(mean(x^2) + eps) * w
    void (*rmsnorm)(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *w,
                    float eps);
    // y = (x - mean) / sqrt(var + eps) * w + b   (biased variance)
    void (*layernorm)(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *w,
                      const ivl_tensor *b, float eps);
    // y = 0.5 x (1 + erf(x / sqrt 2))
    void (*gelu)(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x);
    // y[r, c] = silu(gate[r, c]) * up[r, c]; y may alias gate or up.
    void (*silu_mul)(ivl_backend *be, ivl_tensor *y, const ivl_tensor *gate,
                     const ivl_tensor *up);
    // y += x
    void (*add)(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x);
    // y += x * scale[col]   (LayerScale: scale is [cols])
    void (*add_scaled)(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x,
                       const ivl_tensor *scale);
    // y *= s
    void (*scale)(ivl_backend *be, ivl_tensor *y, float s);

    // ---- positions and attention ----
    // Rotate-half RoPE in place on x [T, n_heads * head_dim]: for each row t and head,
    // u'[k] = u[k] cos[t,k] - u[k+half] sin[t,k]; u'[k+half] = u[k+half] cos[t,k] + u[k] sin[t,k],
    // k < half = head_dim/2. cos and sin are host arrays [T, half] (f32), built by the model
    // (plain, dynamic-NTK or LongRoPE tables all reduce to this).
    void (*rope)(ivl_backend *be, ivl_tensor *x, int n_heads, int head_dim,
                 const float *cos_host, const float *sin_host);
    // Attention for ONE sequence.
    // q [T, H*hd]; k, v [L, K*hd] (the first L rows of a KV cache); out [T, H*hd].
    // scores = (q . k^T) * scale; if causal, query t (at absolute position q_pos0 + t) sees
    // keys 0 .. q_pos0 + t; else every key. softmax in f32; out = P . v.
    // GQA: query head h uses kv head h / (H / K).
    void (*attention)(ivl_backend *be, ivl_tensor *out, const ivl_tensor *q, const ivl_tensor *k,
                      const ivl_tensor *v, int n_heads, int n_kv_heads, int head_dim,
                      int causal, int64_t q_pos0, float scale);

    // ---- model-specific data movement ----
    // out[n, D] = table[ids[i], :]; ids is a host array; every id must be < table rows.
    void (*embed)(ivl_backend *be, ivl_tensor *out, const ivl_tensor *table,
                  const int32_t *ids_host, int64_t n);
    // pixels [B, 3, S, S] (S = grid * patch) -> out [B * grid * grid, C]:
    // out[b, p] = w[C, 3*patch*patch] . patch(b, p) + bias, patch p = r * grid + c, patch
    // pixels flattened as (channel, y, x) like PyTorch's Conv2d weight [C, 3, patch, patch].
    void (*patch_embed)(ivl_backend *be, ivl_tensor *out, const ivl_tensor *pixels,
                        const ivl_tensor *w, const ivl_tensor *bias, int patch);
    // Pixel shuffle (spec 3): in [B * g * g, C] (token r*g+c) -> out [B * (g/2)^2, 4C] with
    // Y(i,j) = concat(X[2i][2j], X[2i][2j+1], X[2i+1][2j], X[2i+1][2j+1]);
    // version 2: output token t = i*(g/2)+j; version 1: t = j*(g/2)+i.
    void (*pixel_shuffle)(ivl_backend *be, ivl_tensor *out, const ivl_tensor *in, int grid,
                          int version);
    // ids_host[r] = argmax over row r of logits [R, V] (first maximum wins).
    void (*argmax)(ivl_backend *be, const ivl_tensor *logits, int32_t *ids_host);

    // ---- statistics that span tensor-parallel ranks (InternViT-6B q/k RMSNorm) ----
    // ss[r] = sum over columns of x[r, c]^2. ss is an F32 tensor of rows(x) elements on this
    // backend (alloc it with dtype IVL_F32), whatever be->dtype is.
    void (*sumsq_rows)(ivl_backend *be, ivl_tensor *ss, const ivl_tensor *x);
    // RMSNorm whose row statistics cover n features spread over ranks: y = x * rsqrt(ss[r] / n
    // + eps) * w, with ss the F32 sums of squares already summed over the ranks. In place ok.
    void (*rmsnorm_ss)(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *ss,
                       const ivl_tensor *w, int64_t n, float eps);

    // ---- many sequences per call (continuous batching: one launch instead of one per
    // sequence) ----
    // dst[dst_rows[i], :] = src[i, :] for i < n; src is [n, C], dst [R, C], same dtype; every
    // dst_rows[i] (host array) is in [0, R) and they are distinct; dst and src must not
    // overlap. Appends the step's new k/v rows to each sequence's KV-cache slot.
    void (*scatter_rows)(ivl_backend *be, ivl_tensor *dst, const ivl_tensor *src,
                         const int64_t *dst_rows_host, int64_t n);
    // Attention of nseq sequences sharing q [T, H*hd], k, v [Lk, K*hd], out [T, H*hd]
    // (seqs is a host array, see ivl_attn_seq). Exactly the same result as, for each i with
    // seqs[i].n > 0,
    //   attention(be, out[q_row0 : q_row0+n], q[q_row0 : q_row0+n],
    //             k[kv_row0 : kv_row0+len], v[kv_row0 : kv_row0+len],
    //             n_heads, n_kv_heads, head_dim, causal, q_pos0 = causal ? len - n : 0, scale)
    // (row slices; with a block table, k and v are the sequence's keys gathered through it):
    // causal for the LLM's steps (decode and prefill chunks of many sequences, reading the
    // paged KV cache), bidirectional (causal = 0: every query sees its len keys) for the ViT's
    // tiles. Needs len >= 1 and, if causal, n <= len for each sequence (n = 0 skipped), rows
    // in range; out must not alias q, k or v. Query rows of different sequences should not
    // overlap.
    void (*attention_batch)(ivl_backend *be, ivl_tensor *out, const ivl_tensor *q,
                            const ivl_tensor *k, const ivl_tensor *v, int n_heads,
                            int n_kv_heads, int head_dim, int causal, const ivl_attn_seq *seqs,
                            int nseq, float scale);

    // ---- projections that share one input (fewer launches in decode) ----
    // y[i] = x w[i]^T for i < n (1 <= n <= 3), no bias: exactly n matmul calls (q, k, v).
    void (*matmul_n)(ivl_backend *be, int n, ivl_tensor *const *y, const ivl_tensor *x,
                     const ivl_tensor *const *w);
    // y = silu(x wg^T) * (x wu^T): exactly matmul(y, x, wg), matmul(up, x, wu),
    // silu_mul(y, y, up), roundings included; up [rows(x), rows(wu)] is scratch (its contents
    // afterwards are unspecified).
    void (*matmul_glu)(ivl_backend *be, ivl_tensor *y, ivl_tensor *up, const ivl_tensor *x,
                       const ivl_tensor *wg, const ivl_tensor *wu);

    // ---- quantized weights (tensor.h ivl_qweight, weights/SCHEMA.md) ----
    // *dst = a new backend weight of dtype IVL_Q8 / IVL_Q4 and shape [rows, cols] holding
    // src_host (host layout; the backend may repack it). Free it with free(). 0, or -1 with
    // ivl_last_error() saying why (bad description, or no quantized kernels on this backend).
    int (*upload_quant)(ivl_backend *be, ivl_tensor *dst, const ivl_qweight *src_host);
};

// Backends. ivl_backend_create("cpu" | "cuda" | "auto", device_index):
// "cuda" loads the CUDA module (libivl_cuda.so) with dlopen and ends the job with a clear
// message when it or a GPU is missing; "auto" takes CUDA when a GPU is usable, else CPU.
// The module is looked for in $IVL_CUDA_MODULE, then ../lib next to the executable (a
// relocated bundle, scripts/bundle.sh), then the build dir.
ivl_backend *ivl_backend_create(const char *kind, int device_index);
// GPUs the CUDA runtime shows this process (CUDA_VISIBLE_DEVICES applied), or 0 with the
// reason in why (no CUDA module in this build, no driver, no GPU). Loads the CUDA module.
int ivl_backend_gpu_count(char *why, size_t n);
ivl_backend *ivl_backend_cpu_create(void);
void ivl_backend_destroy(ivl_backend *be);

// The path of FILE in the lib/ folder beside the running executable's folder
// (<dir of /proc/self/exe>/../lib/FILE), where a relocated bundle keeps its modules.
// 0, or -1 when /proc/self/exe cannot be read or the path does not fit in n.
int ivl_exe_lib_path(const char *file, char *out, size_t n);

// Upload helper: new backend tensor with the shape of src, filled from the host tensor src.
ivl_tensor ivl_backend_from_host(ivl_backend *be, const ivl_tensor *src_host);
// Download helper: new host F32 tensor with the contents of src.
ivl_tensor ivl_backend_to_host_f32(ivl_backend *be, const ivl_tensor *src);
// Allocation helper for 2-D tensors in be->dtype.
ivl_tensor ivl_backend_alloc_2d(ivl_backend *be, int64_t rows, int64_t cols);

#endif
