// flops.h - work and memory traffic per benchmark phase, from spec section 10 (forward only,
// 1 multiply-add = 2 FLOPs). Counts are for the WHOLE model, whatever the layout: MFU divides
// them by (time x peak per rank x ranks). Attention counts the causal triangle (the useful
// work), not a full square a kernel might compute.
#ifndef IVL_BENCH_FLOPS_H
#define IVL_BENCH_FLOPS_H

#include <stdint.h>

#include "core/models/config.h"

// ViT forward of one tile: layers x (2N(4C^2 + 2C Iv) + 4N^2 C) + patch embedding.
double ivl_flops_vit_tile(const ivl_vit_config *v);
// Pixel shuffle + mlp1 of one tile: 2 T (4C D + D^2).
double ivl_flops_projector_tile(const ivl_projector_config *p);
// LLM linear layers per token (no head, no attention scores): 2L(D(H+2K)hd + H hd D + 3 D I).
double ivl_flops_llm_linear_token(const ivl_llm_config *c);
// LM head per token: 2 D V.
double ivl_flops_llm_head_token(const ivl_llm_config *c);
// Attention scores + weighted sum for one query seeing n keys: 4 L H hd n.
double ivl_flops_llm_attn(const ivl_llm_config *c, double n_keys);
// Prefill of S tokens after `past` cached tokens, logits at the last position only.
double ivl_flops_prefill(const ivl_llm_config *c, int64_t S, int64_t past);
// One decode step: B sequences, each one new token at position ctx (sees ctx + 1 keys).
double ivl_flops_decode_step(const ivl_llm_config *c, int B, int64_t ctx);

// Bytes a decode step must read at least: every LLM weight except the embedding table (read
// B rows only) plus the KV cache of every sequence, in dtype size `elt` (4 f32, 2 bf16).
double ivl_bytes_decode_step(const ivl_llm_config *c, int B, int64_t ctx, int elt);

#endif
