// projector.h - pixel shuffle + mlp1 (spec section 3): ViT tokens [tiles*1024, C] ->
// LLM-space image embeddings [tiles*256, D].
#ifndef IVL_MODELS_PROJECTOR_H
#define IVL_MODELS_PROJECTOR_H

#include "core/backend.h"
#include "core/models/config.h"
#include "core/models/dump.h"
#include "core/models/weight_reader.h"

typedef struct {
    ivl_tensor ln_w, ln_b;     // mlp1.0: LayerNorm [4C], eps 1e-5
    ivl_tensor fc1_w, fc1_b;   // mlp1.1: [D, 4C], [D]
    ivl_tensor fc2_w, fc2_b;   // mlp1.3: [D, D], [D]
} ivl_projector_weights;

int ivl_projector_load(ivl_backend *be, const ivl_weight_reader *r,
                       const ivl_projector_config *cfg, ivl_projector_weights *w);
void ivl_projector_free(ivl_backend *be, ivl_projector_weights *w);

// vit_out [tiles * grid^2, C] -> out [tiles * tokens_per_tile, D]. Dumps "pixel_shuffle".
void ivl_projector_forward(ivl_backend *be, const ivl_projector_config *cfg,
                           const ivl_projector_weights *w, int grid, const ivl_tensor *vit_out,
                           ivl_tensor *out, const ivl_dump *dump);

#endif
