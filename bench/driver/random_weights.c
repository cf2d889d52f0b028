// random_weights.c - see random_weights.h.
#include "bench/driver/random_weights.h"
#include "core/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// What a tensor holds, which fixes its value distribution.
typedef enum { KIND_MATRIX, KIND_BIAS, KIND_NORM, KIND_LS } value_kind;

typedef struct {
    int ndim;
    int64_t shape[4];
    value_kind kind;
} tensor_info;

static int set(tensor_info *t, value_kind k, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    t->kind = k;
    t->ndim = nd;
    int64_t s[4] = {a, b, c, d};
    memcpy(t->shape, s, sizeof s);
    return 0;
}

// The tensor table of weights/SCHEMA.md, computed from the config.
static int lookup(const ivl_model_config *cfg, const char *name, tensor_info *t) {
    const ivl_vit_config *v = &cfg->vit;
    const ivl_llm_config *l = &cfg->llm;
    const int64_t C = v->hidden, Iv = v->intermediate, P = v->patch_size, G = v->grid;
    const int64_t D = l->hidden, hd = l->head_dim, H = l->heads, K = l->kv_heads;
    const int64_t I = l->intermediate, V = l->vocab, PC = cfg->proj.in_dim;
    int layer = -1, off = 0;
    char rest[128];
    if (!strcmp(name, "vision.class_embedding")) return set(t, KIND_MATRIX, 3, 1, 1, C, 0);
    if (!strcmp(name, "vision.patch_embedding.weight")) return set(t, KIND_MATRIX, 4, C, 3, P, P);
    if (!strcmp(name, "vision.patch_embedding.bias")) return set(t, KIND_BIAS, 1, C, 0, 0, 0);
    if (!strcmp(name, "vision.position_embedding")) return set(t, KIND_MATRIX, 3, 1, G * G + 1, C, 0);
    if (sscanf(name, "vision.layers.%d.%n", &layer, &off) == 1 && off > 0 && layer >= 0 &&
        layer < v->layers) {
        snprintf(rest, sizeof rest, "%s", name + off);
        const int ln = v->norm == IVL_NORM_LAYER;
        if (!strcmp(rest, "norm1.weight") || !strcmp(rest, "norm2.weight"))
            return set(t, KIND_NORM, 1, C, 0, 0, 0);
        if (ln && (!strcmp(rest, "norm1.bias") || !strcmp(rest, "norm2.bias")))
            return set(t, KIND_BIAS, 1, C, 0, 0, 0);
        if (!strcmp(rest, "attn.q.weight") || !strcmp(rest, "attn.k.weight") ||
            !strcmp(rest, "attn.v.weight") || !strcmp(rest, "attn.proj.weight"))
            return set(t, KIND_MATRIX, 2, C, C, 0, 0);
        if (v->qkv_bias && (!strcmp(rest, "attn.q.bias") || !strcmp(rest, "attn.k.bias") ||
                            !strcmp(rest, "attn.v.bias")))
            return set(t, KIND_BIAS, 1, C, 0, 0, 0);
        if (!strcmp(rest, "attn.proj.bias") || !strcmp(rest, "mlp.fc2.bias"))
            return set(t, KIND_BIAS, 1, C, 0, 0, 0);
        if (v->qk_norm && (!strcmp(rest, "attn.q_norm.weight") || !strcmp(rest, "attn.k_norm.weight")))
            return set(t, KIND_NORM, 1, C, 0, 0, 0);
        if (!strcmp(rest, "ls1") || !strcmp(rest, "ls2")) return set(t, KIND_LS, 1, C, 0, 0, 0);
        if (!strcmp(rest, "mlp.fc1.weight")) return set(t, KIND_MATRIX, 2, Iv, C, 0, 0);
        if (!strcmp(rest, "mlp.fc1.bias")) return set(t, KIND_BIAS, 1, Iv, 0, 0, 0);
        if (!strcmp(rest, "mlp.fc2.weight")) return set(t, KIND_MATRIX, 2, C, Iv, 0, 0);
        return -1;
    }
    if (!strcmp(name, "mlp1.0.weight")) return set(t, KIND_NORM, 1, PC, 0, 0, 0);
    if (!strcmp(name, "mlp1.0.bias")) return set(t, KIND_BIAS, 1, PC, 0, 0, 0);
    if (!strcmp(name, "mlp1.1.weight")) return set(t, KIND_MATRIX, 2, D, PC, 0, 0);
    if (!strcmp(name, "mlp1.1.bias") || !strcmp(name, "mlp1.3.bias")) return set(t, KIND_BIAS, 1, D, 0, 0, 0);
    if (!strcmp(name, "mlp1.3.weight")) return set(t, KIND_MATRIX, 2, D, D, 0, 0);
    if (!strcmp(name, "llm.embed") || !strcmp(name, "llm.lm_head")) return set(t, KIND_MATRIX, 2, V, D, 0, 0);
    if (!strcmp(name, "llm.norm")) return set(t, KIND_NORM, 1, D, 0, 0, 0);
    if (sscanf(name, "llm.layers.%d.%n", &layer, &off) == 1 && off > 0 && layer >= 0 &&
        layer < l->layers) {
        snprintf(rest, sizeof rest, "%s", name + off);
        if (!strcmp(rest, "attn_norm") || !strcmp(rest, "ffn_norm")) return set(t, KIND_NORM, 1, D, 0, 0, 0);
        if (!strcmp(rest, "q")) return set(t, KIND_MATRIX, 2, H * hd, D, 0, 0);
        if (!strcmp(rest, "k") || !strcmp(rest, "v")) return set(t, KIND_MATRIX, 2, K * hd, D, 0, 0);
        if (!strcmp(rest, "o")) return set(t, KIND_MATRIX, 2, D, H * hd, 0, 0);
        if (!strcmp(rest, "gate") || !strcmp(rest, "up")) return set(t, KIND_MATRIX, 2, I, D, 0, 0);
        if (!strcmp(rest, "down")) return set(t, KIND_MATRIX, 2, D, I, 0, 0);
    }
    return -1;
}

int ivl_random_weights_shape(const ivl_model_config *cfg, const char *name, int *ndim,
                             int64_t *shape) {
    tensor_info t;
    if (lookup(cfg, name, &t) != 0) return -1;
    *ndim = t.ndim;
    memcpy(shape, t.shape, (size_t)t.ndim * sizeof *shape);
    return 0;
}

static uint64_t mix64(uint64_t z) {   // splitmix64 finaliser: a counter-based generator
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t name_key(uint64_t seed, const char *name) {   // FNV-1a of the name, mixed
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    return mix64(h ^ mix64(seed + 0x9e3779b97f4a7c15ull));
}

// Uniform on [-sqrt(3), sqrt(3)]: unit variance, cheap, never subnormal after scaling.
static inline float unit_value(uint64_t key, uint64_t idx) {
    uint64_t z = mix64(key + idx * 0x9e3779b97f4a7c15ull);
    return (float)(((double)(z >> 11) * (1.0 / 9007199254740992.0)) * 3.4641016151377544 - 1.7320508075688772);
}

static int rw_read(void *ctx, const char *name, ivl_read_kind kind, int64_t start, int64_t count,
                   ivl_dtype dt, ivl_tensor *out) {
    ivl_random_weights *rw = ctx;
    tensor_info t;
    if (lookup(&rw->cfg, name, &t) != 0)
        return ivl_errorf("random weights: no tensor %s in the %s layout", name, rw->cfg.name);
    int64_t rows = t.shape[0], cols = 1;
    for (int i = 1; i < t.ndim; i++) cols *= t.shape[i];
    int64_t r0 = 0, nr = rows, c0 = 0, nc = cols;
    int64_t oshape[4];
    memcpy(oshape, t.shape, sizeof oshape);
    if (kind == IVL_READ_ROWS) {
        if (start < 0 || count < 0 || start + count > rows)
            return ivl_errorf("random weights: rows [%lld, %lld) of %s (%lld rows)", (long long)start,
                              (long long)(start + count), name, (long long)rows);
        r0 = start;
        nr = count;
        oshape[0] = count;
    } else if (kind == IVL_READ_COLS) {
        if (t.ndim != 2 || start < 0 || count < 0 || start + count > cols)
            return ivl_errorf("random weights: columns [%lld, %lld) of %s", (long long)start,
                              (long long)(start + count), name);
        c0 = start;
        nc = count;
        oshape[1] = count;
    }
    float scale = 0.02f, offset = 0.0f;
    if (t.kind == KIND_NORM) offset = 1.0f;
    if (t.kind == KIND_LS) {   // LayerScale init: 1.0 (300M), 0.1 (6B)
        scale = 0.0f;
        offset = rw->cfg.vit.norm == IVL_NORM_RMS ? 0.1f : 1.0f;
    }
    const uint64_t key = name_key(rw->seed, name);
    ivl_tensor f = ivl_tensor_host(IVL_F32, t.ndim, oshape);
    float *p = f.data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < nr; r++)
        for (int64_t c = 0; c < nc; c++)
            p[r * nc + c] = offset + scale * unit_value(key, (uint64_t)((r0 + r) * cols + c0 + c));
    rw->values_made += nr * nc;
    if (dt == IVL_F32) {
        *out = f;
        return 0;
    }
    if (dt != IVL_BF16 && dt != IVL_F16) {
        ivl_tensor_free_host(&f);
        return ivl_errorf("random weights: %s asked as %s (f32, bf16, f16 only)", name, ivl_dtype_name(dt));
    }
    *out = ivl_tensor_host(dt, t.ndim, oshape);
    ivl_convert(out->data, dt, f.data, IVL_F32, (size_t)(nr * nc));
    ivl_tensor_free_host(&f);
    return 0;
}

static int rw_has(void *ctx, const char *name) {
    ivl_random_weights *rw = ctx;
    tensor_info t;
    return lookup(&rw->cfg, name, &t) == 0;
}

static int rw_shape(void *ctx, const char *name, int *ndim, int64_t *shape) {
    ivl_random_weights *rw = ctx;
    if (ivl_random_weights_shape(&rw->cfg, name, ndim, shape) != 0)
        return ivl_errorf("random weights: no tensor %s", name);
    return 0;
}

void ivl_random_weights_init(ivl_random_weights *rw, const ivl_model_config *cfg, uint64_t seed,
                             ivl_weight_reader *r) {
    rw->cfg = *cfg;
    rw->seed = seed;
    rw->values_made = 0;
    r->ctx = rw;
    r->read = rw_read;
    r->has = rw_has;
    r->shape = rw_shape;
    r->quant_bits = NULL;
    r->read_quant = NULL;
}
