// vit.h - InternViT (6B-V1-5 and 300M variants), spec section 2.
// Input: preprocessed tiles [B, 3, 448, 448]; output: the last layer's tokens without CLS,
// [B * 1024, C]. No final norm exists in these checkpoints.
#ifndef IVL_MODELS_VIT_H
#define IVL_MODELS_VIT_H

#include "core/backend.h"
#include "core/models/config.h"
#include "core/models/dump.h"
#include "core/models/tp.h"
#include "core/models/weight_reader.h"

typedef struct {
    ivl_tensor norm1_w, norm1_b;        // [C] (bias only for LayerNorm)
    ivl_tensor q_w, k_w, v_w;           // [Hl*hd, C] (Hl = local heads; all C when alone)
    ivl_tensor q_b, k_b, v_b;           // [Hl*hd] (300M: qkv_bias)
    ivl_tensor q_norm_w, k_norm_w;      // [Hl*hd] (6B: qk_normalization over the full width)
    ivl_tensor proj_w, proj_b;          // [C, Hl*hd], [C] (bias on group rank 0 only)
    ivl_tensor ls1, ls2;                // [C] LayerScale
    ivl_tensor norm2_w, norm2_b;        // [C]
    ivl_tensor fc1_w, fc1_b;            // [Il, C], [Il]
    ivl_tensor fc2_w, fc2_b;            // [C, Il], [C] (bias on group rank 0 only)
} ivl_vit_layer;

// What one rank of a ViT tensor-parallel group (--vit-tp) owns: a contiguous block of heads
// (uneven splits are fine: InternViT-6B's 25 heads over 2 ranks are 12 + 13) and of the MLP.
// Column-parallel: q, k, v, fc1; row-parallel: proj, fc2 (+ one all-reduce each); the 6B's
// q/k RMSNorm spans all heads, so its sums of squares are all-reduced too.
typedef struct {
    int rank, size;
    int heads, head0;                   // local heads [head0, head0 + heads)
    int64_t inter, inter0;              // local MLP columns [inter0, inter0 + inter)
} ivl_vit_shard;

// 0, or -1 + ivl_last_error() when the group is larger than the heads.
int ivl_vit_shard_init(const ivl_vit_config *c, int rank, int size, ivl_vit_shard *s);

typedef struct {
    ivl_vit_shard shard;
    ivl_tensor class_embedding;         // [1, C]
    ivl_tensor patch_w, patch_b;        // [C, 3*14*14], [C]
    ivl_tensor position_embedding;      // [1025, C]
    ivl_vit_layer *layers;              // [layers]
} ivl_vit_weights;

// Loads this rank's share (shard NULL: everything; names in weights/SCHEMA.md) onto the
// backend. 0 or -1 + ivl_last_error.
int ivl_vit_load(ivl_backend *be, const ivl_weight_reader *r, const ivl_vit_config *cfg,
                 const ivl_vit_shard *shard, ivl_vit_weights *w);
void ivl_vit_free(ivl_backend *be, const ivl_vit_config *cfg, ivl_vit_weights *w);

// pixels [B, 3, S, S] on the backend -> out [B * grid^2, C] (CLS dropped).
// Tiles are processed in chunks to bound activation memory; dumps vit.embeddings and
// vit.layer.L with shape [B, 1025, C].
// tp: the ViT tensor-parallel group (NULL or size 1: this rank holds the whole ViT); every
// rank of the group passes the same pixels and gets the same output.
void ivl_vit_forward(ivl_backend *be, const ivl_vit_config *cfg, const ivl_vit_weights *w,
                     const ivl_tp_ctx *tp, const ivl_tensor *pixels, ivl_tensor *out,
                     const ivl_dump *dump);

#endif
