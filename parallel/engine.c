// engine.c - see engine.h.
#include "parallel/engine.h"
#include "core/check.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// The image rows of a step come from each sequence's own embeddings. When every image row
// of the step comes from one tensor, the step reads it directly; else the rows are copied
// into one step tensor (*tmp) and img_row is renumbered (*rows_out, malloc'ed).
static const ivl_tensor *step_images(ivl_engine *e, const ivl_sched_step *st, ivl_tensor *tmp,
                                     int64_t **rows_out) {
    *rows_out = NULL;
    memset(tmp, 0, sizeof *tmp);
    if (!st->any_img) return NULL;
    const ivl_tensor *one = NULL;
    int mixed = 0;
    int64_t nimg = 0;
    for (int i = 0, r = 0; i < st->nseq; r += (int)st->seqs[i].n, i++)
        for (int64_t t = 0; t < st->seqs[i].n; t++)
            if (st->img_row[r + t] >= 0) {
                nimg++;
                if (!one) one = st->embeds[i];
                else if (one != st->embeds[i]) mixed = 1;
            }
    if (!one || !one->data) return one;   // a later pipeline stage holds no embeddings
    if (!mixed) return one;
    const int64_t D = ivl_tensor_cols(one);
    *tmp = ivl_backend_alloc_2d(e->be, nimg, D);
    int64_t *rows = ivl_malloc((size_t)st->rows * sizeof *rows);
    int64_t k = 0, r = 0;
    for (int i = 0; i < st->nseq; i++) {
        const ivl_tensor *src = st->embeds[i];
        const int64_t end = r + st->seqs[i].n;
        while (r < end) {
            if (st->img_row[r] < 0) {
                rows[r++] = -1;
                continue;
            }
            // A run of consecutive source rows: one copy.
            int64_t run = 1;
            while (r + run < end && st->img_row[r + run] == st->img_row[r] + run) run++;
            ivl_tensor d = ivl_tensor_slice(tmp, k, run), sr = ivl_tensor_slice(src, st->img_row[r], run);
            e->be->copy(e->be, &d, &sr);
            for (int64_t j = 0; j < run; j++) rows[r + j] = k + j;
            k += run;
            r += run;
        }
    }
    *rows_out = rows;
    return tmp;
}

int ivl_engine_step(ivl_engine *e) {
    ivl_sched_step st;
    if (!ivl_sched_plan(e->sched, &st)) return 0;
    const int64_t V = e->step.vocab;
    if (st.nseq > e->cap) {
        e->cap = st.nseq * 2;
        e->logits = ivl_realloc(e->logits, (size_t)e->cap * (size_t)V * sizeof *e->logits);
        e->picked = ivl_realloc(e->picked, (size_t)e->cap * sizeof *e->picked);
    }
    ivl_tensor tmp;
    int64_t *rows = NULL;
    const ivl_tensor *img = step_images(e, &st, &tmp, &rows);
    *e->step_embeds = img;
    const int64_t *img_row = st.any_img ? (rows ? rows : st.img_row) : NULL;
    const int sampler = !e->step.is_sampler || e->step.is_sampler(e->step.ctx);
    const int want_logits = e->keep_logits || (e->dump && e->dump->fn);
    double t0 = now_s();
    if (e->step.run_argmax && st.greedy && !want_logits) {
        // Greedy picks on the device; every rank gets the ids.
        e->step.run_argmax(e->step.ctx, st.seqs, st.nseq, st.ids, img_row, e->picked);
    } else {
        e->step.run(e->step.ctx, st.seqs, st.nseq, st.ids, img_row, e->logits, e->dump);
        if (sampler && e->keep_logits && e->on_logits) e->on_logits(e->logits_ctx, &st, e->logits, V);
        if (sampler) ivl_sched_pick(e->sched, &st, e->logits, V, e->picked);
        if (e->step.share_tokens) e->step.share_tokens(e->step.ctx, e->picked, st.nseq);
    }
    e->last_step_s = now_s() - t0;
    *e->step_embeds = NULL;
    if (tmp.data) e->be->free(e->be, &tmp);
    free(rows);
    e->dump = NULL;
    if (e->on_step) e->on_step(e->step_ctx, &st, e->last_step_s);
    ivl_sched_commit(e->sched, &st, e->picked);
    return 1;
}

void ivl_engine_free(ivl_engine *e) {
    free(e->logits);
    free(e->picked);
    e->logits = NULL;
    e->picked = NULL;
    e->cap = 0;
}

int ivl_engine_run(ivl_engine *e, const ivl_engine_io *io) {
    for (uint64_t tick = 0;; tick++) {
        int code = io->feed(io->ctx, e, tick);
        if (code) return code;
        ivl_engine_step(e);
        if (io->drain) io->drain(io->ctx, e, tick);
    }
}

ivl_emb_batch *ivl_emb_batch_new(ivl_tensor *t, int refs) {
    ivl_emb_batch *b = ivl_calloc(1, sizeof *b);
    b->t = *t;
    b->refs = refs;
    memset(t, 0, sizeof *t);
    return b;
}

void ivl_emb_batch_unref(ivl_backend *be, ivl_emb_batch *b) {
    if (!b || --b->refs > 0) return;
    if (b->t.data) be->free(be, &b->t);
    free(b);
}
