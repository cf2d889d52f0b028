// quantize.h - weight-only quantization at conversion (weights/SCHEMA.md "Quantized
// tensors"): which engine tensors are quantized, round-to-nearest int8 / int4, and writing
// the packed integers, scales and zero points as HDF5 datasets.
#ifndef IVL_WEIGHTS_QUANTIZE_H
#define IVL_WEIGHTS_QUANTIZE_H

#include <hdf5.h>
#include <stdint.h>

#include "core/tensor.h"
#include "weights/name_map.h"

typedef struct {
    int bits;          // 0 (off), 8 or 4
    int64_t group;     // inputs per scale; 0 = default (int8: the whole row, int4: 128)
    int vision;        // also the ViT's and the projector's linear weights
} ivl_quant_opts;

// 1 if engine tensor `name` is quantized under q: the LLM's q, k, v, o, gate, up, down and
// lm_head (not the embedding: a row lookup); with q->vision also the ViT's attn.q/k/v/proj
// and mlp.fc1/fc2 weights and the projector's mlp1.1 / mlp1.3 weights.
int ivl_quant_selects(const ivl_quant_opts *q, const char *name);
// The group size used for a tensor of input width K.
int64_t ivl_quant_group(const ivl_quant_opts *q, int64_t K);
// Every selected tensor of the plan must take the group size: 0, or -1 + an error naming the
// first tensor that does not ("--group-size 96 does not divide the input width 2048 of ...").
int ivl_quant_check_plan(const ivl_quant_opts *q, const ivl_plan *plan);
// Round to nearest (ties to even), rows of w [N, K] f32 into a new host ivl_qweight:
// int8: symmetric, s = max|w| / 127 per group (1 if the group is all zero), q = round(w / s)
// clamped to [-127, 127], no zero points. int4: s = max(max w - min w, 1e-5) / 15,
// z = clamp(-round(min w / s), 0, 15), q = clamp(round(w / s) + z, 0, 15) (AutoAWQ's
// pseudo_quantize_tensor with zero points).
void ivl_quant_rtn(const float *w, int64_t N, int64_t K, int bits, int64_t group,
                   ivl_qweight *out);
// Writes /tensors/<name> (packed integers), <name>.scales (scale_dt: F32 or F16) and, when
// q->zeros, <name>.zeros, with the attributes of the schema. 0 or -1 + error.
int ivl_quant_write(hid_t group, const char *name, const char *hf_name, int64_t hf_row0,
                    const ivl_qweight *q, const char *method, ivl_dtype scale_dt);

#endif
