// vit.c - InternViT forward (spec section 2): patch embedding, CLS, position embedding,
// pre-norm encoder layers with LayerScale, optional q/k RMSNorm over the full width, no
// final norm, CLS dropped at the end.
#include "core/models/vit.h"
#include "core/check.h"
#include "core/models/load_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIT_MAX_TILES_PER_CHUNK 8   // bounds activation memory: 8 x 1025 x Iv floats

static int load_norm(ivl_backend *be, const ivl_weight_reader *r, const ivl_vit_config *c,
                     const char *prefix, ivl_tensor *w, ivl_tensor *b) {
    char name[200];
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (ivl_load_1d(be, r, name, c->hidden, w)) return -1;
    if (c->norm == IVL_NORM_LAYER) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        if (ivl_load_1d(be, r, name, c->hidden, b)) return -1;
    }
    return 0;
}

int ivl_vit_shard_init(const ivl_vit_config *c, int rank, int size, ivl_vit_shard *s) {
    if (size < 1 || rank < 0 || rank >= size)
        return ivl_errorf("bad ViT tensor-parallel rank %d of %d", rank, size);
    if (size > c->heads)
        return ivl_errorf("--vit-tp %d is larger than the ViT's %d heads", size, c->heads);
    s->rank = rank;
    s->size = size;
    s->head0 = (int)((int64_t)c->heads * rank / size);
    s->heads = (int)((int64_t)c->heads * (rank + 1) / size) - s->head0;
    s->inter0 = (int64_t)c->intermediate * rank / size;
    s->inter = (int64_t)c->intermediate * (rank + 1) / size - s->inter0;
    return 0;
}

// A row block of a weight, or a slice of a vector.
static int load_rows(ivl_backend *be, const ivl_weight_reader *r, const char *name, int64_t r0,
                     int64_t n, int64_t cols, ivl_tensor *out) {
    if (cols > 1 ? ivl_load_weight(be, r, name, IVL_READ_ROWS, r0, n, n, cols, out)
                 : ivl_load_tensor(be, r, name, IVL_READ_ROWS, r0, n, n, cols, out))
        return -1;
    if (cols == 1) *out = ivl_tensor_reshape(out, 1, &n);
    return 0;
}

static int load_layer(ivl_backend *be, const ivl_weight_reader *r, const ivl_vit_config *c,
                      const ivl_vit_shard *sh, int l, ivl_vit_layer *L) {
    char p[96], n[160];
    const int64_t C = c->hidden, hd = c->head_dim;
    const int64_t f0 = sh->head0 * hd, F = sh->heads * hd;   // this rank's q/k/v features
    const int64_t i0 = sh->inter0, I = sh->inter;
    const int owner = sh->rank == 0;   // adds the row-parallel biases, once per group
    snprintf(p, sizeof p, "vision.layers.%d", l);
#define NAME(fmt) (snprintf(n, sizeof n, "%s." fmt, p), n)
    if (load_norm(be, r, c, NAME("norm1"), &L->norm1_w, &L->norm1_b)) return -1;
    if (load_norm(be, r, c, NAME("norm2"), &L->norm2_w, &L->norm2_b)) return -1;
    if (load_rows(be, r, NAME("attn.q.weight"), f0, F, C, &L->q_w)) return -1;
    if (load_rows(be, r, NAME("attn.k.weight"), f0, F, C, &L->k_w)) return -1;
    if (load_rows(be, r, NAME("attn.v.weight"), f0, F, C, &L->v_w)) return -1;
    if (c->qkv_bias) {
        if (load_rows(be, r, NAME("attn.q.bias"), f0, F, 1, &L->q_b)) return -1;
        if (load_rows(be, r, NAME("attn.k.bias"), f0, F, 1, &L->k_b)) return -1;
        if (load_rows(be, r, NAME("attn.v.bias"), f0, F, 1, &L->v_b)) return -1;
    }
    if (c->qk_norm) {
        if (load_rows(be, r, NAME("attn.q_norm.weight"), f0, F, 1, &L->q_norm_w)) return -1;
        if (load_rows(be, r, NAME("attn.k_norm.weight"), f0, F, 1, &L->k_norm_w)) return -1;
    }
    if (ivl_load_weight(be, r, NAME("attn.proj.weight"), IVL_READ_COLS, f0, F, C, F, &L->proj_w))
        return -1;
    if (owner && ivl_load_1d(be, r, NAME("attn.proj.bias"), C, &L->proj_b)) return -1;
    if (ivl_load_1d(be, r, NAME("ls1"), C, &L->ls1)) return -1;
    if (ivl_load_1d(be, r, NAME("ls2"), C, &L->ls2)) return -1;
    if (load_rows(be, r, NAME("mlp.fc1.weight"), i0, I, C, &L->fc1_w)) return -1;
    if (load_rows(be, r, NAME("mlp.fc1.bias"), i0, I, 1, &L->fc1_b)) return -1;
    if (ivl_load_weight(be, r, NAME("mlp.fc2.weight"), IVL_READ_COLS, i0, I, C, I, &L->fc2_w))
        return -1;
    if (owner && ivl_load_1d(be, r, NAME("mlp.fc2.bias"), C, &L->fc2_b)) return -1;
#undef NAME
    return 0;
}

int ivl_vit_load(ivl_backend *be, const ivl_weight_reader *r, const ivl_vit_config *c,
                 const ivl_vit_shard *shard, ivl_vit_weights *w) {
    memset(w, 0, sizeof *w);
    if (shard) w->shard = *shard;
    else if (ivl_vit_shard_init(c, 0, 1, &w->shard) != 0) return -1;
    const int64_t C = c->hidden, P = c->patch_size, G = c->grid;
    if (ivl_load_2d(be, r, "vision.class_embedding", 1, C, &w->class_embedding)) return -1;
    if (ivl_load_2d(be, r, "vision.patch_embedding.weight", C, 3 * P * P, &w->patch_w)) return -1;
    if (ivl_load_1d(be, r, "vision.patch_embedding.bias", C, &w->patch_b)) return -1;
    if (ivl_load_2d(be, r, "vision.position_embedding", G * G + 1, C, &w->position_embedding))
        return -1;
    w->layers = ivl_calloc((size_t)c->layers, sizeof *w->layers);
    for (int l = 0; l < c->layers; l++)
        if (load_layer(be, r, c, &w->shard, l, &w->layers[l])) return -1;
    return 0;
}

void ivl_vit_free(ivl_backend *be, const ivl_vit_config *c, ivl_vit_weights *w) {
    ivl_free_tensor(be, &w->class_embedding);
    ivl_free_tensor(be, &w->patch_w);
    ivl_free_tensor(be, &w->patch_b);
    ivl_free_tensor(be, &w->position_embedding);
    for (int l = 0; w->layers && l < c->layers; l++) {
        ivl_tensor *t = (ivl_tensor *)&w->layers[l];
        for (size_t i = 0; i < sizeof(ivl_vit_layer) / sizeof(ivl_tensor); i++)
            ivl_free_tensor(be, &t[i]);
    }
    free(w->layers);
    w->layers = NULL;
}

static void norm(ivl_backend *be, const ivl_vit_config *c, ivl_tensor *y, const ivl_tensor *x,
                 const ivl_tensor *w, const ivl_tensor *b) {
    if (c->norm == IVL_NORM_RMS)
        be->rmsnorm(be, y, x, w, c->norm_eps);
    else
        be->layernorm(be, y, x, w, b, c->norm_eps);
}

static const ivl_tensor *opt(const ivl_tensor *t) { return t->data ? t : NULL; }

// Scratch buffers for one chunk of tiles.
typedef struct {
    ivl_tensor x, h, q, k, v, attn, mlp, patches;
    ivl_tensor ss;   // F32 [rows]: q/k sums of squares (tensor-parallel q/k norm)
} vit_scratch;

static void allreduce(const ivl_tp_ctx *tp, ivl_backend *be, ivl_tensor *t) {
    if (tp && tp->size > 1) tp->allreduce_sum(tp->comm, be, t);
}

// RMSNorm of q or k over the full width C (all heads jointly, spec 2), also when this rank
// holds only some of the heads: the sums of squares are summed over the group first.
static void qk_norm(ivl_backend *be, const ivl_vit_config *c, const ivl_tp_ctx *tp,
                    ivl_tensor *x, const ivl_tensor *w, ivl_tensor *ss) {
    if (!tp || tp->size == 1) {
        be->rmsnorm(be, x, x, w, c->norm_eps);
        return;
    }
    be->sumsq_rows(be, ss, x);
    tp->allreduce_sum(tp->comm, be, ss);
    be->rmsnorm_ss(be, x, x, ss, w, c->hidden, c->norm_eps);
}

static void dump_tiles(const ivl_dump *d, const char *name, ivl_backend *be, const ivl_tensor *x,
                       int64_t tiles, int64_t n, int64_t C) {
    if (!d || !d->fn) return;
    ivl_tensor v = ivl_tensor_reshape(x, 3, (int64_t[]){tiles, n, C});
    d->fn(d->ctx, name, be, &v);
}

// One encoder layer over M = tiles * N tokens (spec 2, step 4).
static void vit_layer_forward(ivl_backend *be, const ivl_vit_config *c, const ivl_vit_shard *sh,
                              const ivl_tp_ctx *tp, const ivl_vit_layer *L, vit_scratch *s,
                              int64_t tiles, int64_t N) {
    const int H = sh->heads, hd = c->head_dim;
    norm(be, c, &s->h, &s->x, &L->norm1_w, opt(&L->norm1_b));
    be->matmul(be, &s->q, &s->h, &L->q_w, opt(&L->q_b));
    be->matmul(be, &s->k, &s->h, &L->k_w, opt(&L->k_b));
    be->matmul(be, &s->v, &s->h, &L->v_w, opt(&L->v_b));
    if (c->qk_norm) {   // RMSNorm over all heads jointly, not per head
        qk_norm(be, c, tp, &s->q, &L->q_norm_w, &s->ss);
        qk_norm(be, c, tp, &s->k, &L->k_norm_w, &s->ss);
    }
    // Bidirectional attention within each tile, all tiles in one call (one launch on CUDA).
    ivl_attn_seq *ts = ivl_malloc((size_t)tiles * sizeof *ts);
    for (int64_t t = 0; t < tiles; t++) ts[t] = (ivl_attn_seq){t * N, N, t * N, N, NULL, 0};
    be->attention_batch(be, &s->attn, &s->q, &s->k, &s->v, H, H, hd, 0, ts, (int)tiles,
                        1.0f / sqrtf((float)hd));
    free(ts);
    be->matmul(be, &s->h, &s->attn, &L->proj_w, opt(&L->proj_b));
    allreduce(tp, be, &s->h);
    be->add_scaled(be, &s->x, &s->h, &L->ls1);
    norm(be, c, &s->h, &s->x, &L->norm2_w, opt(&L->norm2_b));
    be->matmul(be, &s->mlp, &s->h, &L->fc1_w, &L->fc1_b);
    be->gelu(be, &s->mlp, &s->mlp);
    be->matmul(be, &s->h, &s->mlp, &L->fc2_w, opt(&L->fc2_b));
    allreduce(tp, be, &s->h);
    be->add_scaled(be, &s->x, &s->h, &L->ls2);
}

void ivl_vit_forward(ivl_backend *be, const ivl_vit_config *c, const ivl_vit_weights *w,
                     const ivl_tp_ctx *tp, const ivl_tensor *pixels, ivl_tensor *out,
                     const ivl_dump *dump) {
    const ivl_vit_shard *sh = &w->shard;
    const int64_t F = (int64_t)sh->heads * c->head_dim;   // local q/k/v width
    const int64_t B = pixels->shape[0], C = c->hidden, P = (int64_t)c->grid * c->grid;
    const int64_t N = P + 1;   // CLS + patches
    IVL_CHECK(pixels->ndim == 4 && pixels->shape[1] == 3 && pixels->shape[2] == c->image_size &&
                  pixels->shape[3] == c->image_size,
              "pixel_values must be [tiles, 3, %d, %d]", c->image_size, c->image_size);
    IVL_CHECK(ivl_tensor_rows(out) == B * P && ivl_tensor_cols(out) == C,
              "ViT output buffer must be [%lld, %lld]", (long long)(B * P), (long long)C);
    // With a dump hook every tile goes in one chunk so each name is dumped once, whole.
    int64_t chunk = (dump && dump->fn) ? B : (B < VIT_MAX_TILES_PER_CHUNK ? B : VIT_MAX_TILES_PER_CHUNK);
    if (chunk < 1) return;
    vit_scratch s;
    s.x = ivl_backend_alloc_2d(be, chunk * N, C);
    s.h = ivl_backend_alloc_2d(be, chunk * N, C);
    s.q = ivl_backend_alloc_2d(be, chunk * N, F);
    s.k = ivl_backend_alloc_2d(be, chunk * N, F);
    s.v = ivl_backend_alloc_2d(be, chunk * N, F);
    s.attn = ivl_backend_alloc_2d(be, chunk * N, F);
    s.mlp = ivl_backend_alloc_2d(be, chunk * N, sh->inter);
    s.ss = be->alloc(be, IVL_F32, 1, (int64_t[]){chunk * N});
    s.patches = ivl_backend_alloc_2d(be, chunk * P, C);

    for (int64_t b0 = 0; b0 < B; b0 += chunk) {
        int64_t tb = B - b0 < chunk ? B - b0 : chunk;
        vit_scratch v = s;   // views sized to this chunk
        ivl_tensor *bufs[] = {&v.x, &v.h, &v.q, &v.k, &v.v, &v.attn, &v.mlp};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) *bufs[i] = ivl_tensor_slice(bufs[i], 0, tb * N);
        v.patches = ivl_tensor_slice(&s.patches, 0, tb * P);
        v.ss = ivl_tensor_slice(&s.ss, 0, tb * N);

        // Embeddings: [CLS; patches] + position embedding (448 input: no interpolation).
        ivl_tensor pix = ivl_tensor_slice(pixels, b0, tb);
        be->patch_embed(be, &v.patches, &pix, &w->patch_w, &w->patch_b, c->patch_size);
        for (int64_t t = 0; t < tb; t++) {
            ivl_tensor cls = ivl_tensor_slice(&v.x, t * N, 1);
            ivl_tensor body = ivl_tensor_slice(&v.x, t * N + 1, P);
            ivl_tensor src = ivl_tensor_slice(&v.patches, t * P, P);
            be->copy(be, &cls, &w->class_embedding);
            be->copy(be, &body, &src);
            ivl_tensor tile = ivl_tensor_slice(&v.x, t * N, N);
            be->add(be, &tile, &w->position_embedding);
        }
        dump_tiles(dump, "vit.embeddings", be, &v.x, tb, N, C);

        for (int l = 0; l < c->layers; l++) {
            vit_layer_forward(be, c, sh, tp, &w->layers[l], &v, tb, N);
            char name[32];
            snprintf(name, sizeof name, "vit.layer.%d", l);
            dump_tiles(dump, name, be, &v.x, tb, N, C);
        }
        for (int64_t t = 0; t < tb; t++) {   // drop CLS
            ivl_tensor src = ivl_tensor_slice(&v.x, t * N + 1, P);
            ivl_tensor dst = ivl_tensor_slice(out, (b0 + t) * P, P);
            be->copy(be, &dst, &src);
        }
    }
    ivl_tensor *all[] = {&s.x, &s.h, &s.q, &s.k, &s.v, &s.attn, &s.mlp, &s.patches, &s.ss};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) be->free(be, all[i]);
}
