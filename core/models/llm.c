// llm.c - decoder forward shared by InternLM2 and Phi-3 (spec 4 and 5), for one rank's shard.
#include "core/models/llm.h"
#include "core/check.h"
#include "core/models/load_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ivl_llm_shard_init(const ivl_llm_config *c, int tp_rank, int tp_size, int layer0,
                       int layer1, ivl_llm_shard *s) {
    memset(s, 0, sizeof *s);
    const int H = c->heads, K = c->kv_heads, T = tp_size;
    if (T < 1 || tp_rank < 0 || tp_rank >= T) return ivl_errorf("bad tensor-parallel rank %d of %d", tp_rank, T);
    if (H % T)
        return ivl_errorf("--tp %d does not divide the LLM's %d attention heads; use a tp that "
                          "divides %d", T, H, H);
    if (K % T && T % K)
        return ivl_errorf("--tp %d and the LLM's %d KV heads: tp must divide %d or be a "
                          "multiple of it", T, K, K);
    if (c->intermediate % T)
        return ivl_errorf("--tp %d does not divide the LLM's intermediate size %d", T,
                          c->intermediate);
    if (layer0 < 0 || layer1 > c->layers || layer0 >= layer1)
        return ivl_errorf("pipeline stage layers [%d, %d) invalid for %d layers", layer0,
                          layer1, c->layers);
    s->tp_rank = tp_rank;
    s->tp_size = T;
    s->heads = H / T;
    s->q_head0 = tp_rank * s->heads;
    if (K >= T) {
        s->kv_heads = K / T;
        s->kv_head0 = tp_rank * s->kv_heads;
    } else {   // more ranks than KV heads: each rank keeps the one its query heads use
        s->kv_heads = 1;
        s->kv_head0 = s->q_head0 / (H / K);
    }
    s->inter = c->intermediate / T;
    s->inter0 = tp_rank * s->inter;
    s->vocab_chunk = (c->vocab + T - 1) / T;
    s->vocab0 = (int64_t)tp_rank * s->vocab_chunk;
    int64_t end = s->vocab0 + s->vocab_chunk < c->vocab ? s->vocab0 + s->vocab_chunk : c->vocab;
    s->vocab_local = end > s->vocab0 ? end - s->vocab0 : 0;
    s->layer0 = layer0;
    s->layer1 = layer1;
    s->has_embed = layer0 == 0;
    s->has_head = layer1 == c->layers;
    return 0;
}

static int load_layer(ivl_backend *be, const ivl_weight_reader *r, const ivl_llm_config *c,
                      const ivl_llm_shard *s, int l, ivl_llm_layer *L) {
    char n[128];
    const int64_t D = c->hidden, hd = c->head_dim;
#define NAME(x) (snprintf(n, sizeof n, "llm.layers.%d." x, l), n)
    if (ivl_load_1d(be, r, NAME("attn_norm"), D, &L->attn_norm)) return -1;
    if (ivl_load_1d(be, r, NAME("ffn_norm"), D, &L->ffn_norm)) return -1;
    // Column-parallel: this rank's heads are a contiguous row block.
    if (ivl_load_weight(be, r, NAME("q"), IVL_READ_ROWS, s->q_head0 * hd, s->heads * hd,
                        s->heads * hd, D, &L->q)) return -1;
    if (ivl_load_weight(be, r, NAME("k"), IVL_READ_ROWS, s->kv_head0 * hd, s->kv_heads * hd,
                        s->kv_heads * hd, D, &L->k)) return -1;
    if (ivl_load_weight(be, r, NAME("v"), IVL_READ_ROWS, s->kv_head0 * hd, s->kv_heads * hd,
                        s->kv_heads * hd, D, &L->v)) return -1;
    if (ivl_load_weight(be, r, NAME("gate"), IVL_READ_ROWS, s->inter0, s->inter, s->inter, D,
                        &L->gate)) return -1;
    if (ivl_load_weight(be, r, NAME("up"), IVL_READ_ROWS, s->inter0, s->inter, s->inter, D,
                        &L->up)) return -1;
    // Row-parallel: this rank's input features are a column block.
    if (ivl_load_weight(be, r, NAME("o"), IVL_READ_COLS, s->q_head0 * hd, s->heads * hd, D,
                        s->heads * hd, &L->o)) return -1;
    if (ivl_load_weight(be, r, NAME("down"), IVL_READ_COLS, s->inter0, s->inter, D, s->inter,
                        &L->down)) return -1;
#undef NAME
    return 0;
}

int ivl_llm_load(ivl_backend *be, const ivl_weight_reader *r, const ivl_llm_config *c,
                 const ivl_llm_shard *s, ivl_llm_weights *w) {
    memset(w, 0, sizeof *w);
    const int64_t D = c->hidden;
    if (s->has_embed && s->vocab_local > 0 &&
        ivl_load_tensor(be, r, "llm.embed", IVL_READ_ROWS, s->vocab0, s->vocab_local,
                        s->vocab_local, D, &w->embed)) return -1;
    w->layers = ivl_calloc((size_t)c->layers, sizeof *w->layers);
    for (int l = s->layer0; l < s->layer1; l++)
        if (load_layer(be, r, c, s, l, &w->layers[l])) return -1;
    if (s->has_head) {
        if (ivl_load_1d(be, r, "llm.norm", D, &w->norm)) return -1;
        if (s->vocab_local > 0 &&
            ivl_load_weight(be, r, "llm.lm_head", IVL_READ_ROWS, s->vocab0, s->vocab_local,
                            s->vocab_local, D, &w->lm_head)) return -1;
    }
    return 0;
}

void ivl_llm_free(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *s,
                  ivl_llm_weights *w) {
    ivl_free_tensor(be, &w->embed);
    ivl_free_tensor(be, &w->norm);
    ivl_free_tensor(be, &w->lm_head);
    for (int l = 0; w->layers && l < c->layers; l++) {
        ivl_tensor *t = (ivl_tensor *)&w->layers[l];
        for (size_t i = 0; i < sizeof(ivl_llm_layer) / sizeof(ivl_tensor); i++)
            ivl_free_tensor(be, &t[i]);
    }
    free(w->layers);
    w->layers = NULL;
}

int64_t ivl_kv_bytes_per_token(const ivl_llm_config *c, const ivl_llm_shard *s, ivl_dtype dt) {
    return 2LL * (s->layer1 - s->layer0) * s->kv_heads * c->head_dim * (int64_t)ivl_dtype_size(dt);
}

void ivl_kv_cache_init(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *s,
                       int64_t n_blocks, int block_size, ivl_kv_cache *kv) {
    IVL_CHECK(n_blocks >= 1 && block_size >= 1, "KV cache of %lld blocks of %d positions",
              (long long)n_blocks, block_size);
    memset(kv, 0, sizeof *kv);
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->k = ivl_calloc((size_t)c->layers, sizeof *kv->k);
    kv->v = ivl_calloc((size_t)c->layers, sizeof *kv->v);
    const int64_t rows = n_blocks * block_size, w = (int64_t)s->kv_heads * c->head_dim;
    const int64_t nl = s->layer1 - s->layer0;
    kv->pool = ivl_backend_alloc_2d(be, 2 * nl * rows, w);
    for (int l = s->layer0; l < s->layer1; l++) {
        kv->k[l] = ivl_tensor_slice(&kv->pool, 2 * (l - s->layer0) * rows, rows);
        kv->v[l] = ivl_tensor_slice(&kv->pool, (2 * (l - s->layer0) + 1) * rows, rows);
    }
    kv->layer0 = s->layer0;
    kv->layer1 = s->layer1;
}

void ivl_kv_cache_free(ivl_backend *be, const ivl_llm_shard *s, ivl_kv_cache *kv) {
    ivl_free_tensor(be, &kv->pool);
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
    (void)s;
}

void ivl_llm_embed(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *s,
                   const ivl_llm_weights *w, const ivl_tp_ctx *tp, const int32_t *ids,
                   int64_t n, ivl_tensor *x) {
    IVL_CHECK(s->has_embed, "token embedding asked of a stage without it");
    for (int64_t i = 0; i < n; i++)
        IVL_CHECK(ids[i] >= 0 && ids[i] < c->vocab, "token id %d out of the vocabulary (%d)",
                  ids[i], c->vocab);
    if (s->tp_size == 1) {
        be->embed(be, x, &w->embed, ids, n);
        return;
    }
    // Vocab-parallel: look up the ids this rank owns, zero the other rows, sum over ranks.
    int32_t *local = ivl_malloc((size_t)n * sizeof *local);
    for (int64_t i = 0; i < n; i++) {
        int64_t id = ids[i] - s->vocab0;
        local[i] = (id >= 0 && id < s->vocab_local) ? (int32_t)id : 0;
    }
    if (s->vocab_local > 0) be->embed(be, x, &w->embed, local, n);
    for (int64_t i = 0; i < n; i++) {
        int64_t id = ids[i] - s->vocab0;
        if (s->vocab_local == 0 || id < 0 || id >= s->vocab_local) {
            ivl_tensor row = ivl_tensor_slice(x, i, 1);
            be->zero(be, &row);
        }
    }
    free(local);
    tp->allreduce_sum(tp->comm, be, x);
}

// Scratch for one step of N tokens.
typedef struct {
    ivl_tensor h, q, k, v, attn, gate, up;
    float *cos, *sin;   // host [N, hd/2]
} llm_scratch;

static void tp_allreduce(const ivl_tp_ctx *tp, ivl_backend *be, ivl_tensor *t) {
    if (tp && tp->size > 1) tp->allreduce_sum(tp->comm, be, t);
}

// Attention sub-block of one layer (pre-norm input already in s->h).
static void llm_attention(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *sh,
                          const ivl_llm_layer *L, ivl_kv_cache *kv, int l,
                          const ivl_llm_seq *seqs, int nseq, llm_scratch *s) {
    const int hd = c->head_dim;
    // q, k, v from one input: one launch in decode on CUDA (same results as three matmuls).
    ivl_tensor *qkv[3] = {&s->q, &s->k, &s->v};
    const ivl_tensor *wqkv[3] = {&L->q, &L->k, &L->v};
    be->matmul_n(be, 3, qkv, &s->h, wqkv);
    be->rope(be, &s->q, sh->heads, hd, s->cos, s->sin);
    be->rope(be, &s->k, sh->kv_heads, hd, s->cos, s->sin);
    // The step's new k/v rows go to each sequence's blocks, then one attention call covers
    // every sequence, reading its keys through its block table: two scatters and one
    // attention per layer whatever the batch.
    const int64_t bs = kv->block_size;
    int64_t N = 0;
    for (int i = 0; i < nseq; i++) N += seqs[i].n;
    int64_t *rows = ivl_malloc(sizeof(int64_t) * (size_t)(N ? N : 1));
    ivl_attn_seq *as = ivl_malloc(sizeof(ivl_attn_seq) * (size_t)(nseq ? nseq : 1));
    for (int64_t i = 0, r0 = 0; i < nseq; r0 += seqs[i].n, i++) {
        const int64_t n = seqs[i].n, pos0 = seqs[i].pos0;
        for (int64_t t = 0; t < n; t++) {
            const int64_t p = pos0 + t;
            rows[r0 + t] = (int64_t)seqs[i].blocks[p / bs] * bs + p % bs;
        }
        as[i] = (ivl_attn_seq){.q_row0 = r0, .n = n, .kv_row0 = 0, .len = pos0 + n,
                               .blocks = seqs[i].blocks, .block_size = (int)bs};
    }
    be->scatter_rows(be, &kv->k[l], &s->k, rows, N);
    be->scatter_rows(be, &kv->v[l], &s->v, rows, N);
    be->attention_batch(be, &s->attn, &s->q, &kv->k[l], &kv->v[l], sh->heads, sh->kv_heads, hd,
                        1, as, nseq, 1.0f / sqrtf((float)hd));
    free(rows);
    free(as);
}

void ivl_llm_forward_layers(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *sh,
                            const ivl_llm_weights *w, const ivl_tp_ctx *tp, ivl_kv_cache *kv,
                            const ivl_llm_seq *seqs, int nseq, ivl_tensor *x,
                            const ivl_dump *dump) {
    const int64_t D = c->hidden, hd = c->head_dim, half = hd / 2;
    int64_t N = 0;
    for (int i = 0; i < nseq; i++) {
        const ivl_llm_seq *q = &seqs[i];
        IVL_CHECK(q->pos0 >= 0 && q->n >= 0, "sequence %d of a step: positions %lld + %lld", i,
                  (long long)q->pos0, (long long)q->n);
        const int64_t need = (q->pos0 + q->n + kv->block_size - 1) / kv->block_size;
        IVL_CHECK(q->n == 0 || (q->blocks && q->n_blocks >= need),
                  "sequence %d of a step reaches position %lld but its block table holds %lld "
                  "blocks of %d", i, (long long)(q->pos0 + q->n - 1), (long long)q->n_blocks,
                  kv->block_size);
        for (int64_t b = 0; b < need; b++)
            IVL_CHECK(q->blocks[b] >= 0 && q->blocks[b] < kv->n_blocks,
                      "sequence %d: block %d out of the KV pool (%lld blocks)", i, q->blocks[b],
                      (long long)kv->n_blocks);
        N += q->n;
    }
    IVL_CHECK(ivl_tensor_rows(x) == N && ivl_tensor_cols(x) == D, "hidden state must be [%lld, %lld]",
              (long long)N, (long long)D);
    llm_scratch s;
    s.h = ivl_backend_alloc_2d(be, N, D);
    s.q = ivl_backend_alloc_2d(be, N, (int64_t)sh->heads * hd);
    s.attn = ivl_backend_alloc_2d(be, N, (int64_t)sh->heads * hd);
    s.k = ivl_backend_alloc_2d(be, N, (int64_t)sh->kv_heads * hd);
    s.v = ivl_backend_alloc_2d(be, N, (int64_t)sh->kv_heads * hd);
    s.gate = ivl_backend_alloc_2d(be, N, sh->inter);
    s.up = ivl_backend_alloc_2d(be, N, sh->inter);
    s.cos = ivl_malloc((size_t)(N * half) * sizeof(float));
    s.sin = ivl_malloc((size_t)(N * half) * sizeof(float));
    // RoPE rows for every token of the step: the same for all layers.
    for (int64_t i = 0, r0 = 0; i < nseq; r0 += seqs[i].n, i++)
        ivl_llm_rope_rows(c, seqs[i].pos0, seqs[i].n, s.cos + r0 * half, s.sin + r0 * half);

    for (int l = sh->layer0; l < sh->layer1; l++) {
        const ivl_llm_layer *L = &w->layers[l];
        be->rmsnorm(be, &s.h, x, &L->attn_norm, c->rms_eps);
        llm_attention(be, c, sh, L, kv, l, seqs, nseq, &s);
        be->matmul(be, &s.h, &s.attn, &L->o, NULL);
        tp_allreduce(tp, be, &s.h);
        be->add(be, x, &s.h);

        be->rmsnorm(be, &s.h, x, &L->ffn_norm, c->rms_eps);
        be->matmul_glu(be, &s.gate, &s.up, &s.h, &L->gate, &L->up);   // silu(h wg) * (h wu)
        be->matmul(be, &s.h, &s.gate, &L->down, NULL);
        tp_allreduce(tp, be, &s.h);
        be->add(be, x, &s.h);

        char name[32];
        snprintf(name, sizeof name, "llm.layer.%d", l);
        ivl_dump_tensor(dump, name, be, x);
    }
    ivl_tensor *bufs[] = {&s.h, &s.q, &s.attn, &s.k, &s.v, &s.gate, &s.up};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->free(be, bufs[i]);
    free(s.cos);
    free(s.sin);
}

void ivl_llm_logits(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *sh,
                    const ivl_llm_weights *w, const ivl_tp_ctx *tp, const ivl_tensor *x,
                    const int64_t *rows, int n, float *logits_host, const ivl_dump *dump) {
    IVL_CHECK(sh->has_head, "LM head asked of a stage without it");
    const int64_t D = c->hidden, V = c->vocab, chunk = sh->vocab_chunk;
    if (dump && dump->fn) {   // the final norm over every row, for layer-by-layer comparison
        ivl_tensor all = ivl_backend_alloc_2d(be, ivl_tensor_rows(x), D);
        be->rmsnorm(be, &all, x, &w->norm, c->rms_eps);
        ivl_dump_tensor(dump, "llm.norm", be, &all);
        be->free(be, &all);
    }
    ivl_tensor h = ivl_backend_alloc_2d(be, n, D);
    for (int i = 0; i < n; i++) {
        ivl_tensor dst = ivl_tensor_slice(&h, i, 1), src = ivl_tensor_slice(x, rows[i], 1);
        be->copy(be, &dst, &src);
    }
    be->rmsnorm(be, &h, &h, &w->norm, c->rms_eps);
    // Every rank computes a [n, chunk] block (zero-padded past V) so the gather is uniform.
    ivl_tensor local = ivl_backend_alloc_2d(be, n, chunk);
    if (sh->vocab_local == chunk) {
        be->matmul(be, &local, &h, &w->lm_head, NULL);
    } else if (sh->vocab_local > 0) {
        ivl_tensor part = ivl_backend_alloc_2d(be, n, sh->vocab_local);
        be->matmul(be, &part, &h, &w->lm_head, NULL);
        ivl_tensor host = ivl_backend_to_host_f32(be, &part);
        ivl_tensor padded = ivl_tensor_host_2d(IVL_F32, n, chunk);
        for (int i = 0; i < n; i++)
            memcpy((float *)padded.data + (int64_t)i * chunk,
                   (float *)host.data + (int64_t)i * sh->vocab_local,
                   (size_t)sh->vocab_local * sizeof(float));
        be->upload(be, &local, &padded);
        ivl_tensor_free_host(&host);
        ivl_tensor_free_host(&padded);
        be->free(be, &part);
    }
    ivl_tensor full_h;
    if (sh->tp_size > 1) {
        ivl_tensor full = ivl_backend_alloc_2d(be, n, chunk * sh->tp_size);
        tp->allgather_cols(tp->comm, be, &full, &local);
        full_h = ivl_backend_to_host_f32(be, &full);
        be->free(be, &full);
    } else {
        full_h = ivl_backend_to_host_f32(be, &local);
    }
    const int64_t width = chunk * sh->tp_size;
    for (int i = 0; i < n; i++)
        memcpy(logits_host + (int64_t)i * V, (float *)full_h.data + (int64_t)i * width,
               (size_t)V * sizeof(float));
    ivl_tensor_free_host(&full_h);
    be->free(be, &local);
    be->free(be, &h);
}

void ivl_llm_argmax(ivl_backend *be, const ivl_llm_config *c, const ivl_llm_shard *sh,
                    const ivl_llm_weights *w, const ivl_tensor *x, const int64_t *rows, int n,
                    int32_t *ids_host) {
    IVL_CHECK(sh->has_head, "LM head asked of a stage without it");
    IVL_CHECK(sh->tp_size == 1 && sh->vocab_local == c->vocab,
              "ivl_llm_argmax needs the whole vocabulary on this rank (tp 1)");
    ivl_tensor h = ivl_backend_alloc_2d(be, n, c->hidden);
    for (int i = 0; i < n; i++) {
        ivl_tensor dst = ivl_tensor_slice(&h, i, 1), src = ivl_tensor_slice(x, rows[i], 1);
        be->copy(be, &dst, &src);
    }
    be->rmsnorm(be, &h, &h, &w->norm, c->rms_eps);
    // Same shape as ivl_llm_logits' matmul at tp 1, so the same values; only ids come back.
    ivl_tensor logits = ivl_backend_alloc_2d(be, n, c->vocab);
    be->matmul(be, &logits, &h, &w->lm_head, NULL);
    be->argmax(be, &logits, ids_host);
    be->free(be, &logits);
    be->free(be, &h);
}
