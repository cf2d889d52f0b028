// vit.h - InternViT (6B-V1-5 and 300M variants), spec section 2.
// Input: preprocessed tiles [B, 3, 448, 448]; output: the last layer's tokens without CLS,
// [B * 1024, C]. No final norm exists in these checkpoints.
#ifndef IVL_MODELS_VIT_H
#define IVL_MODELS_VIT_H

#include "core/backend.h"
#include "core/models/config.h"
#include "core/models/dump.h"
#include "core/models/weight_reader.h"

typedef struct {
    ivl_tensor norm1_w, norm1_b;        // [C] (bias only for LayerNorm)
    ivl_tensor q_w, k_w, v_w;           // [C, C]
    ivl_tensor q_b, k_b, v_b;           // [C] (300M: qkv_bias)
    ivl_tensor q_norm_w, k_norm_w;      // [C] (6B: qk_normalization over the full width)
    ivl_tensor proj_w, proj_b;          // [C, C], [C]
    ivl_tensor ls1, ls2;                // [C] LayerScale
    ivl_tensor norm2_w, norm2_b;        // [C]
    ivl_tensor fc1_w, fc1_b;            // [Iv, C], [Iv]
    ivl_tensor fc2_w, fc2_b;            // [C, Iv], [C]
} ivl_vit_layer;

typedef struct {
    ivl_tensor class_embedding;         // [1, C]
    ivl_tensor patch_w, patch_b;        // [C, 3*14*14], [C]
    ivl_tensor position_embedding;      // [1025, C]
    ivl_vit_layer *layers;              // [layers]
} ivl_vit_weights;

// Loads every tensor (names in weights/SCHEMA.md) onto the backend. 0 or -1 + ivl_last_error.
int ivl_vit_load(ivl_backend *be, const ivl_weight_reader *r, const ivl_vit_config *cfg,
                 ivl_vit_weights *w);
void ivl_vit_free(ivl_backend *be, const ivl_vit_config *cfg, ivl_vit_weights *w);

// pixels [B, 3, S, S] on the backend -> out [B * grid^2, C] (CLS dropped).
// Tiles are processed in chunks to bound activation memory; dumps vit.embeddings and
// vit.layer.L with shape [B, 1025, C].
void ivl_vit_forward(ivl_backend *be, const ivl_vit_config *cfg, const ivl_vit_weights *w,
                     const ivl_tensor *pixels, ivl_tensor *out, const ivl_dump *dump);

#endif
