// name_map.h - the conversion plan: every engine tensor of weights/SCHEMA.md, with its
// expected shape (from the config) and where its rows come from in the Hugging Face
// checkpoint. Splits (ViT qkv, InternLM2 wqkv per kv group, Phi-3 qkv_proj/gate_up_proj) are
// lists of row segments of one source tensor, so every engine tensor is written straight from
// the source tensor's buffer.
#ifndef IVL_WEIGHTS_NAME_MAP_H
#define IVL_WEIGHTS_NAME_MAP_H

#include <stdint.h>

#include "core/models/config.h"
#include "core/tensor.h"

typedef struct {
    int64_t src_row, dst_row, rows;   // rows along the first dimension
} ivl_row_segment;

typedef struct {
    char name[128];                   // engine name (dataset under /tensors)
    int ndim;
    int64_t shape[IVL_MAX_DIMS];
    char hf_name[160];                // source tensor
    int hf_ndim;
    int64_t hf_shape[IVL_MAX_DIMS];   // expected shape of the source tensor
    int nseg;                         // 0: the whole source tensor, as is
    ivl_row_segment *seg;
} ivl_plan_entry;

typedef struct {
    ivl_plan_entry *e;
    int n, cap;
} ivl_plan;

// Builds the plan for cfg (cfg->llm.vocab must already be the checkpoint's vocab).
void ivl_plan_build(const ivl_model_config *cfg, ivl_plan *plan);
void ivl_plan_free(ivl_plan *plan);

// "vision", "projector" or "llm" from an engine tensor name; NULL if it is none of them.
const char *ivl_tensor_part(const char *engine_name);

#endif
