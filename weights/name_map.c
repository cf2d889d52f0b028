// name_map.c - see name_map.h. Names and shapes follow spec section 6 and weights/SCHEMA.md.
#include "weights/name_map.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

static ivl_plan_entry *add(ivl_plan *p, const char *hf, int hf_ndim, const int64_t *hf_shape,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));

// Adds an entry that copies hf as is (engine shape = source shape) and returns it.
static ivl_plan_entry *add(ivl_plan *p, const char *hf, int hf_ndim, const int64_t *hf_shape,
                           const char *fmt, ...) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 512;
        p->e = ivl_realloc(p->e, (size_t)p->cap * sizeof *p->e);
    }
    ivl_plan_entry *e = &p->e[p->n++];
    memset(e, 0, sizeof *e);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    snprintf(e->hf_name, sizeof e->hf_name, "%s", hf);
    e->hf_ndim = e->ndim = hf_ndim;
    memcpy(e->hf_shape, hf_shape, sizeof(int64_t) * (size_t)hf_ndim);
    memcpy(e->shape, hf_shape, sizeof(int64_t) * (size_t)hf_ndim);
    return e;
}

#define SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

// Rows [row0, row0+rows) of the source: the engine tensor's first dimension becomes rows.
static void take_rows(ivl_plan_entry *e, int64_t row0, int64_t rows) {
    e->shape[0] = rows;
    e->nseg = 1;
    e->seg = ivl_malloc(sizeof *e->seg);
    e->seg[0] = (ivl_row_segment){row0, 0, rows};
}

// q/k/v from a source whose first dimension is [q | k | v] blocks of sizes nq, nk, nk.
static void split3(ivl_plan *p, const char *hf, int ndim, const int64_t *shape, int64_t nq,
                   int64_t nk, const char *prefix, const char *suffix) {
    const char *part[3] = {"q", "k", "v"};
    int64_t row0[3] = {0, nq, nq + nk}, rows[3] = {nq, nk, nk};
    for (int i = 0; i < 3; i++)
        take_rows(add(p, hf, ndim, shape, "%s%s%s", prefix, part[i], suffix), row0[i], rows[i]);
}

static void plan_vit(const ivl_vit_config *v, ivl_plan *p) {
    int64_t C = v->hidden, I = v->intermediate, P = v->patch_size;
    int64_t npos = (int64_t)v->grid * v->grid + 1;
    add(p, "vision_model.embeddings.class_embedding", SHAPE(1, 1, C), "vision.class_embedding");
    add(p, "vision_model.embeddings.patch_embedding.weight", SHAPE(C, 3, P, P),
        "vision.patch_embedding.weight");
    add(p, "vision_model.embeddings.patch_embedding.bias", SHAPE(C), "vision.patch_embedding.bias");
    add(p, "vision_model.embeddings.position_embedding", SHAPE(1, npos, C),
        "vision.position_embedding");
    char hf[160], pre[64];
    for (int L = 0; L < v->layers; L++) {
#define HF(s) (snprintf(hf, sizeof hf, "vision_model.encoder.layers.%d.%s", L, s), hf)
        snprintf(pre, sizeof pre, "vision.layers.%d.", L);
        add(p, HF("norm1.weight"), SHAPE(C), "%snorm1.weight", pre);
        if (v->norm == IVL_NORM_LAYER) add(p, HF("norm1.bias"), SHAPE(C), "%snorm1.bias", pre);
        add(p, HF("norm2.weight"), SHAPE(C), "%snorm2.weight", pre);
        if (v->norm == IVL_NORM_LAYER) add(p, HF("norm2.bias"), SHAPE(C), "%snorm2.bias", pre);
        char apre[80];
        snprintf(apre, sizeof apre, "%sattn.", pre);
        split3(p, HF("attn.qkv.weight"), SHAPE(3 * C, C), C, C, apre, ".weight");
        if (v->qkv_bias) split3(p, HF("attn.qkv.bias"), SHAPE(3 * C), C, C, apre, ".bias");
        if (v->qk_norm) {
            add(p, HF("attn.q_norm.weight"), SHAPE(C), "%sattn.q_norm.weight", pre);
            add(p, HF("attn.k_norm.weight"), SHAPE(C), "%sattn.k_norm.weight", pre);
        }
        add(p, HF("attn.proj.weight"), SHAPE(C, C), "%sattn.proj.weight", pre);
        add(p, HF("attn.proj.bias"), SHAPE(C), "%sattn.proj.bias", pre);
        add(p, HF("mlp.fc1.weight"), SHAPE(I, C), "%smlp.fc1.weight", pre);
        add(p, HF("mlp.fc1.bias"), SHAPE(I), "%smlp.fc1.bias", pre);
        add(p, HF("mlp.fc2.weight"), SHAPE(C, I), "%smlp.fc2.weight", pre);
        add(p, HF("mlp.fc2.bias"), SHAPE(C), "%smlp.fc2.bias", pre);
        add(p, HF("ls1"), SHAPE(C), "%sls1", pre);
        add(p, HF("ls2"), SHAPE(C), "%sls2", pre);
#undef HF
    }
}

static void plan_projector(const ivl_projector_config *c, ivl_plan *p) {
    int64_t in = c->in_dim, D = c->out_dim;
    add(p, "mlp1.0.weight", SHAPE(in), "mlp1.0.weight");
    add(p, "mlp1.0.bias", SHAPE(in), "mlp1.0.bias");
    add(p, "mlp1.1.weight", SHAPE(D, in), "mlp1.1.weight");
    add(p, "mlp1.1.bias", SHAPE(D), "mlp1.1.bias");
    add(p, "mlp1.3.weight", SHAPE(D, D), "mlp1.3.weight");
    add(p, "mlp1.3.bias", SHAPE(D), "mlp1.3.bias");
}

// InternLM2 wqkv rows are grouped per kv group g: G query heads, then key g, then value g
// (spec 4.1). q gathers query head n = g*G + s from slot s of group g; k and v take slots G
// and G+1.
static void plan_wqkv(const ivl_llm_config *c, ivl_plan *p, const char *hf, int L) {
    int64_t D = c->hidden, H = c->heads, K = c->kv_heads, hd = c->head_dim, G = H / K;
    int64_t rows = (H + 2 * K) * hd;
    ivl_plan_entry *q = add(p, hf, SHAPE(rows, D), "llm.layers.%d.q", L);
    q->shape[0] = H * hd;
    q->nseg = (int)H;
    q->seg = ivl_malloc((size_t)H * sizeof *q->seg);
    for (int64_t n = 0; n < H; n++)
        q->seg[n] = (ivl_row_segment){((n / G) * (G + 2) + n % G) * hd, n * hd, hd};
    for (int kv = 0; kv < 2; kv++) {
        ivl_plan_entry *e = add(p, hf, SHAPE(rows, D), "llm.layers.%d.%s", L, kv ? "v" : "k");
        e->shape[0] = K * hd;
        e->nseg = (int)K;
        e->seg = ivl_malloc((size_t)K * sizeof *e->seg);
        for (int64_t g = 0; g < K; g++)
            e->seg[g] = (ivl_row_segment){(g * (G + 2) + G + kv) * hd, g * hd, hd};
    }
}

static void plan_llm(const ivl_llm_config *c, ivl_plan *p) {
    int64_t D = c->hidden, H = c->heads, K = c->kv_heads, hd = c->head_dim;
    int64_t I = c->intermediate, V = c->vocab;
    int phi3 = c->arch == IVL_LLM_PHI3;
    add(p, phi3 ? "language_model.model.embed_tokens.weight"
                : "language_model.model.tok_embeddings.weight", SHAPE(V, D), "llm.embed");
    char hf[160];
    for (int L = 0; L < c->layers; L++) {
#define HF(s) (snprintf(hf, sizeof hf, "language_model.model.layers.%d.%s", L, s), hf)
        if (phi3) {
            add(p, HF("input_layernorm.weight"), SHAPE(D), "llm.layers.%d.attn_norm", L);
            char pre[64];
            snprintf(pre, sizeof pre, "llm.layers.%d.", L);
            split3(p, HF("self_attn.qkv_proj.weight"), SHAPE((H + 2 * K) * hd, D), H * hd,
                   K * hd, pre, "");
            add(p, HF("self_attn.o_proj.weight"), SHAPE(D, H * hd), "llm.layers.%d.o", L);
            add(p, HF("post_attention_layernorm.weight"), SHAPE(D), "llm.layers.%d.ffn_norm", L);
            // gate_up_proj: first I rows gate, next I rows up (spec 5).
            take_rows(add(p, HF("mlp.gate_up_proj.weight"), SHAPE(2 * I, D), "llm.layers.%d.gate", L), 0, I);
            take_rows(add(p, HF("mlp.gate_up_proj.weight"), SHAPE(2 * I, D), "llm.layers.%d.up", L), I, I);
            add(p, HF("mlp.down_proj.weight"), SHAPE(D, I), "llm.layers.%d.down", L);
        } else {
            add(p, HF("attention_norm.weight"), SHAPE(D), "llm.layers.%d.attn_norm", L);
            plan_wqkv(c, p, HF("attention.wqkv.weight"), L);
            add(p, HF("attention.wo.weight"), SHAPE(D, H * hd), "llm.layers.%d.o", L);
            add(p, HF("ffn_norm.weight"), SHAPE(D), "llm.layers.%d.ffn_norm", L);
            add(p, HF("feed_forward.w1.weight"), SHAPE(I, D), "llm.layers.%d.gate", L);
            add(p, HF("feed_forward.w3.weight"), SHAPE(I, D), "llm.layers.%d.up", L);
            add(p, HF("feed_forward.w2.weight"), SHAPE(D, I), "llm.layers.%d.down", L);
        }
#undef HF
    }
    add(p, "language_model.model.norm.weight", SHAPE(D), "llm.norm");
    add(p, phi3 ? "language_model.lm_head.weight" : "language_model.output.weight", SHAPE(V, D),
        "llm.lm_head");
}

void ivl_plan_build(const ivl_model_config *cfg, ivl_plan *plan) {
    memset(plan, 0, sizeof *plan);
    plan_vit(&cfg->vit, plan);
    plan_projector(&cfg->proj, plan);
    plan_llm(&cfg->llm, plan);
}

void ivl_plan_free(ivl_plan *plan) {
    for (int i = 0; i < plan->n; i++) free(plan->e[i].seg);
    free(plan->e);
    memset(plan, 0, sizeof *plan);
}

const char *ivl_tensor_part(const char *n) {
    if (!strncmp(n, "vision.", 7)) return "vision";
    if (!strncmp(n, "mlp1.", 5)) return "projector";
    if (!strncmp(n, "llm.", 4)) return "llm";
    return NULL;
}
