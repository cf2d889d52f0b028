// llm.h - the language model: InternLM2 and Phi-3 share one decoder (their checkpoints are
// converted to the same tensor names; weights/SCHEMA.md), and differ only in the RoPE tables
// (dynamic NTK vs LongRoPE "su") and in config values.
//
// The forward is written for one rank's shard: a tensor-parallel rank holds H/tp query heads,
// its KV heads (replicated when tp > K), I/tp of the MLP, and V/tp rows of the embedding and
// LM head; a pipeline stage holds layers [layer0, layer1). On one rank the shard is the whole
// model. Column-parallel: q, k, v, gate, up; row-parallel: o, down (+ one all-reduce each).
#ifndef IVL_MODELS_LLM_H
#define IVL_MODELS_LLM_H

#include <stdint.h>

#include "core/backend.h"
#include "core/models/config.h"
#include "core/models/dump.h"
#include "core/models/tp.h"
#include "core/models/weight_reader.h"

// What this rank owns. Filled by ivl_llm_shard_init.
typedef struct {
    int tp_rank, tp_size;
    int heads;              // local query heads: H / tp
    int q_head0;            // first global query head
    int kv_heads;           // local KV heads: K / tp, or 1 when tp > K (replicated)
    int kv_head0;           // first global KV head
    int64_t inter, inter0;  // local MLP width and first column
    int64_t vocab_chunk;    // ceil(V / tp): every rank's logits block is this wide
    int64_t vocab0, vocab_local;   // this rank's embedding / LM-head rows
    int layer0, layer1;     // pipeline stage's layers [layer0, layer1)
    int has_embed;          // first stage: token embedding
    int has_head;           // last stage: final norm + LM head
} ivl_llm_shard;

// Checks the layout against the config; -1 + ivl_last_error() with a suggestion if it does
// not divide (heads, kv heads, intermediate, layers).
int ivl_llm_shard_init(const ivl_llm_config *c, int tp_rank, int tp_size, int layer0,
                       int layer1, ivl_llm_shard *s);

typedef struct {
    ivl_tensor attn_norm;      // [D]
    ivl_tensor q, k, v;        // [Hl*hd, D], [Kl*hd, D], [Kl*hd, D]
    ivl_tensor o;              // [D, Hl*hd]
    ivl_tensor ffn_norm;       // [D]
    ivl_tensor gate, up;       // [Il, D]
    ivl_tensor down;           // [D, Il]
} ivl_llm_layer;

typedef struct {
    ivl_tensor embed;          // [Vl, D] (first stage)
    ivl_llm_layer *layers;     // indexed by global layer; only [layer0, layer1) loaded
    ivl_tensor norm;           // [D] (last stage)
    ivl_tensor lm_head;        // [Vl, D] (last stage)
} ivl_llm_weights;

int ivl_llm_load(ivl_backend *be, const ivl_weight_reader *r, const ivl_llm_config *c,
                 const ivl_llm_shard *s, ivl_llm_weights *w);
void ivl_llm_free(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *s,
                  ivl_llm_weights *w);

// KV cache: a pool of fixed-size blocks for the shard's layers (paged KV). Block b holds
// block_size consecutive positions of whichever sequence's block table names it; which
// blocks a sequence owns is decided by the scheduler (parallel/kv.h), identically on every
// rank, so every rank's pool has the same number of blocks (the bytes per block differ with
// the rank's layers and KV heads).
typedef struct {
    int64_t n_blocks;
    int block_size;            // positions per block
    ivl_tensor *k, *v;         // per global layer (only the shard's): [n_blocks * block_size, Kl*hd],
                               // views of `pool`
    ivl_tensor pool;           // one allocation for every layer's k and v (on the CPU backend a
                               // large one is mapped lazily: memory only for blocks used)
    int layer0, layer1;        // the shard's layers
} ivl_kv_cache;

void ivl_kv_cache_init(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *s,
                       int64_t n_blocks, int block_size, ivl_kv_cache *kv);
void ivl_kv_cache_free(ivl_backend *be, const ivl_llm_shard *s, ivl_kv_cache *kv);
// Bytes the cache needs per token for one rank (for sizing from memory).
int64_t ivl_kv_bytes_per_token(const ivl_llm_config *c, const ivl_llm_shard *s, ivl_dtype dt);
// The KV length up to which a position's RoPE rotation does not depend on the call it is
// computed in (InternLM2 dynamic NTK: max_position_embeddings; Phi-3 LongRoPE: the original
// max position; plain RoPE: no limit). Below it, cached keys are the same whether a prompt is
// prefilled whole, in chunks, or after a shared prefix (parallel/scheduler.h relies on it).
int64_t ivl_llm_rope_exact_len(const ivl_llm_config *c);

// One sequence's part of a step: its tokens are the next `n` rows of x, at positions
// pos0 .. pos0+n-1; positions 0 .. pos0-1 are already in the cache. Position p lives in
// block blocks[p / block_size], row p % block_size (the block table has at least
// ceil((pos0 + n) / block_size) entries).
typedef struct {
    int64_t pos0;
    int64_t n;
    const int32_t *blocks;
    int64_t n_blocks;
} ivl_llm_seq;

// x [N, D] = embeddings of ids (vocab-parallel: rows outside this rank's range are zero
// before the all-reduce). First stage only.
void ivl_llm_embed(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *s,
                   const ivl_llm_weights *w, const ivl_tp_ctx *tp, const int32_t *ids,
                   int64_t n, ivl_tensor *x);

// Runs the shard's layers over x [N, D] in place (N = sum of seqs[i].n), writing the new
// rows' keys and values into each sequence's blocks. Dumps llm.layer.L ([N, D]).
void ivl_llm_forward_layers(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *s,
                            const ivl_llm_weights *w, const ivl_tp_ctx *tp, ivl_kv_cache *kv,
                            const ivl_llm_seq *seqs, int nseq, ivl_tensor *x,
                            const ivl_dump *dump);

// Final norm + LM head for the rows `rows[0..n)` of x: logits [n, V] (full vocabulary, f32 on
// the host after the tensor-parallel gather). Last stage only. Dumps llm.norm over all of x
// when dumping is on.
void ivl_llm_logits(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *s,
                    const ivl_llm_weights *w, const ivl_tp_ctx *tp, const ivl_tensor *x,
                    const int64_t *rows, int n, float *logits_host, const ivl_dump *dump);

// Greedy pick without the logits leaving the device: final norm + LM head for rows[0..n) of
// x, then ids_host[i] = the first maximum of row i (the same token as the host's argmax over
// ivl_llm_logits' output). One rank holding the whole vocabulary (tp 1), last stage only.
void ivl_llm_argmax(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *s,
                    const ivl_llm_weights *w, const ivl_tensor *x, const int64_t *rows, int n,
                    int32_t *ids_host);

// RoPE cos/sin rows for positions pos0 .. pos0+n-1 of one sequence (f32 [n, head_dim/2]),
// following the model's scaling (spec 4.2 dynamic NTK, spec 5 LongRoPE), for a call whose KV
// length is pos0 + n (positions only grow, so that is also the longest length seen).
void ivl_llm_rope_rows(const ivl_llm_config *c, int64_t pos0, int64_t n, float *cos_out,
                       float *sin_out);

#endif
