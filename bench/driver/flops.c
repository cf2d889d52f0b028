// flops.c - see flops.h.
#include "bench/driver/flops.h"

double ivl_flops_vit_tile(const ivl_vit_config *v) {
    const double C = v->hidden, I = v->intermediate, N = (double)v->grid * v->grid + 1;
    const double P = (double)v->grid * v->grid, patch = 3.0 * v->patch_size * v->patch_size;
    const double layer = 2 * N * (4 * C * C + 2 * C * I) + 4 * N * N * C;
    return v->layers * layer + 2 * P * patch * C;
}

double ivl_flops_projector_tile(const ivl_projector_config *p) {
    const double T = p->tokens_per_tile, in = p->in_dim, D = p->out_dim;
    return 2 * T * (in * D + D * D);
}

double ivl_flops_llm_linear_token(const ivl_llm_config *c) {
    const double D = c->hidden, H = c->heads, K = c->kv_heads, hd = c->head_dim, I = c->intermediate;
    return 2.0 * c->layers * (D * (H + 2 * K) * hd + H * hd * D + 3 * D * I);
}

double ivl_flops_llm_head_token(const ivl_llm_config *c) { return 2.0 * c->hidden * c->vocab; }

double ivl_flops_llm_attn(const ivl_llm_config *c, double n_keys) {
    return 4.0 * c->layers * c->heads * c->head_dim * n_keys;
}

double ivl_flops_prefill(const ivl_llm_config *c, int64_t S, int64_t past) {
    // query i (0-based) sees past + i + 1 keys: sum = S past + S(S+1)/2
    const double keys = (double)S * past + (double)S * (S + 1) / 2.0;
    return S * ivl_flops_llm_linear_token(c) + ivl_flops_llm_head_token(c) + ivl_flops_llm_attn(c, keys);
}

double ivl_flops_decode_step(const ivl_llm_config *c, int B, int64_t ctx) {
    return B * (ivl_flops_llm_linear_token(c) + ivl_flops_llm_head_token(c) +
                ivl_flops_llm_attn(c, (double)ctx + 1));
}

double ivl_bytes_decode_step(const ivl_llm_config *c, int B, int64_t ctx, int elt) {
    const double D = c->hidden, H = c->heads, K = c->kv_heads, hd = c->head_dim, I = c->intermediate;
    const double layer = D * (H + 2 * K) * hd + H * hd * D + 3 * D * I + 2 * D;
    const double weights = c->layers * layer + D + (double)c->vocab * D + B * D;
    const double kv = (double)B * (ctx + 1) * 2.0 * c->layers * K * hd;
    return (weights + kv) * elt;
}
