// generate.c - see generate.h.
#include "parallel/generate.h"
#include "core/check.h"
#include "parallel/kv.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const ivl_gen_params *p;
    uint64_t *ids;             // request id of each prompt
    int B;
    int32_t *out;
    int *out_len;
    int left;
    float *prefill_logits;
    int64_t V;
    int64_t reused;
    char *logged;              // prefill_logits: prompt i's row is in (sampler rank)
    char *emitted;             // prompt i has had its first logits (every rank knows it)
    int nemitted;
} gen_ctx;

static void mark_emitted(gen_ctx *g, int i) {
    if (i >= 0 && !g->emitted[i]) {
        g->emitted[i] = 1;
        g->nemitted++;
    }
}

static int seq_of(const gen_ctx *g, uint64_t id) {
    for (int i = 0; i < g->B; i++)
        if (g->ids[i] == id) return i;
    return -1;
}

static void gen_token(void *ctx, uint64_t id, int32_t t) {
    gen_ctx *g = ctx;
    int i = seq_of(g, id);
    if (i < 0) return;
    const int maxn = g->p->max_new_tokens;
    mark_emitted(g, i);
    if (g->out_len[i] < maxn) g->out[(int64_t)i * maxn + g->out_len[i]++] = t;
    if (g->p->on_token) g->p->on_token(g->p->cb_ctx, i, t);
}

static void gen_done(void *ctx, uint64_t id, const ivl_sched_done *d) {
    gen_ctx *g = ctx;
    g->left--;
    mark_emitted(g, seq_of(g, id));
    g->reused += d->reused_tokens;
    (void)id;
}

static void gen_logits(void *ctx, const ivl_sched_step *st, const float *logits, int64_t V) {
    gen_ctx *g = ctx;
    for (int k = 0; k < st->nseq; k++) {
        int i = seq_of(g, st->req[k]);
        if (i < 0 || !st->emits[k] || !g->prefill_logits || g->logged[i]) continue;
        memcpy(g->prefill_logits + (int64_t)i * V, logits + (int64_t)k * V, (size_t)V * sizeof(float));
        g->logged[i] = 1;
    }
}

void ivl_generate(ivl_engine *e, const ivl_gen_prompt *prompts, int B, const ivl_gen_params *p,
                  int32_t *out, int *out_len, const ivl_dump *dump) {
    const int maxn = p->max_new_tokens;
    gen_ctx g = {p, ivl_calloc((size_t)(B > 0 ? B : 1), sizeof(uint64_t)), B, out, out_len, B,
                 p->prefill_logits, e->step.vocab, 0, ivl_calloc((size_t)(B > 0 ? B : 1), 1),
                 ivl_calloc((size_t)(B > 0 ? B : 1), 1), 0};
    for (int i = 0; i < B; i++) {
        out_len[i] = 0;
        for (int t = 0; t < maxn; t++) out[(int64_t)i * maxn + t] = -1;
    }
    for (int i = 0; i < B; i++) {
        IVL_CHECK(prompts[i].n > 0, "prompt %d is empty", i);
        ivl_sampling sm = p->sampling;
        ivl_sched_req r = {prompts[i].ids, prompts[i].n, prompts[i].img_row, prompts[i].row_key,
                           prompts[i].embeds, maxn, p->stop_id, sm, gen_token, gen_done, &g};
        g.ids[i] = ivl_sched_submit(e->sched, &r);
        if (!g.ids[i]) ivl_die(1, "prompt %d: %s", i, ivl_last_error());
    }
    e->dump = dump;
    if (p->prefill_logits) {
        e->keep_logits = 1;
        e->on_logits = gen_logits;
        e->logits_ctx = &g;
    }
    ivl_fault_point("prefill");
    int steps = 0;
    while (g.left > 0 && ivl_engine_step(e)) {
        steps++;
        // Every prompt's first logits are in: back to device picks (every rank knows it from
        // the committed tokens, so all take the same step function).
        if (g.nemitted == B) e->keep_logits = 0;
        if (steps == 2) ivl_fault_point("decode");
        if (g.left > 0 && p->should_stop && p->should_stop(p->cb_ctx)) {
            for (int i = 0; i < B; i++) ivl_sched_cancel(e->sched, g.ids[i]);
            break;
        }
    }
    e->on_logits = NULL;
    e->logits_ctx = NULL;
    e->keep_logits = 0;
    e->dump = NULL;
    if (p->reused_tokens) *p->reused_tokens = g.reused;
    free(g.ids);
    free(g.logged);
    free(g.emitted);
}

void ivl_image_row_keys(const float *pixels, int64_t tile_elems, const int *tiles, int n_images,
                        int64_t rows_per_tile, const int64_t *img_row, int64_t n, uint64_t *key) {
    uint64_t *h = ivl_malloc((size_t)(n_images > 0 ? n_images : 1) * sizeof *h);
    int64_t *row0 = ivl_malloc((size_t)(n_images + 1) * sizeof *row0);
    row0[0] = 0;
    const float *p = pixels;
    for (int i = 0; i < n_images; i++) {
        // FNV-1a over the image's float bits, then mixed: the same pixels, the same key.
        uint64_t x = 0xcbf29ce484222325ull;
        const int64_t m = (int64_t)tiles[i] * tile_elems;
        const uint32_t *u = (const uint32_t *)(const void *)p;
        for (int64_t j = 0; j < m; j++) x = (x ^ u[j]) * 0x100000001b3ull;
        h[i] = ivl_hash64(x ^ (uint64_t)tiles[i]);
        p += m;
        row0[i + 1] = row0[i] + tiles[i] * rows_per_tile;
    }
    for (int64_t t = 0; t < n; t++) {
        key[t] = 0;
        if (!img_row || img_row[t] < 0) continue;
        int i = 0;
        while (i < n_images - 1 && img_row[t] >= row0[i + 1]) i++;
        key[t] = ivl_hash64(h[i] + (uint64_t)(img_row[t] - row0[i]));
    }
    free(h);
    free(row0);
}
