// internvl.h - the whole InternVL chat model on one rank's shard: tiles -> ViT -> pixel
// shuffle -> projector -> image embeddings; token embeddings with every <IMG_CONTEXT> position
// overwritten in order; the LLM over its KV cache.
#ifndef IVL_MODELS_INTERNVL_H
#define IVL_MODELS_INTERNVL_H

#include "core/backend.h"
#include "core/models/config.h"
#include "core/models/dump.h"
#include "core/models/llm.h"
#include "core/models/projector.h"
#include "core/models/tp.h"
#include "core/models/vit.h"
#include "core/models/weight_reader.h"

typedef struct {
    ivl_model_config cfg;
    ivl_backend *be;
    int has_vision;               // this rank holds the ViT and projector
    ivl_vit_weights vit;
    ivl_projector_weights proj;
    ivl_llm_shard shard;
    ivl_llm_weights llm;
    ivl_tp_ctx tp;                // the LLM's tensor-parallel group
    ivl_tp_ctx vit_tp;            // the ViT's tensor-parallel group (--vit-tp; size 1 = whole ViT)
} ivl_model;

// Loads the parts this rank needs. cfg->llm.vocab is set from the stored embedding shape.
// shard == NULL: the whole LLM (one rank). Returns 0 or -1 + ivl_last_error().
int ivl_model_load(ivl_model *m, ivl_backend *be, const ivl_weight_reader *r,
                   const ivl_model_config *cfg, const ivl_llm_shard *shard,
                   const ivl_tp_ctx *tp, int load_vision);
// The same with the ViT split over a tensor-parallel group: vit_tp NULL = no vision on this
// rank; size 1 = the whole ViT.
int ivl_model_load_ex(ivl_model *m, ivl_backend *be, const ivl_weight_reader *r,
                      const ivl_model_config *cfg, const ivl_llm_shard *shard,
                      const ivl_tp_ctx *tp, const ivl_tp_ctx *vit_tp);
void ivl_model_free(ivl_model *m);

// pixels: host F32 [tiles, 3, S, S] -> embeds: backend [tiles * 256, D] (allocated here).
void ivl_model_encode_images(ivl_model *m, const ivl_tensor *pixels_host, ivl_tensor *embeds,
                             const ivl_dump *dump);

// Token embeddings of one step, with image rows spliced in: x [N, D] (first stage).
// img_row[i] >= 0 replaces row i by row img_row[i] of image_embeds; NULL = no images.
void ivl_model_embed_step(ivl_model *m, const int32_t *ids, const int64_t *img_row, int64_t n,
                          const ivl_tensor *image_embeds, ivl_tensor *x);

#endif
