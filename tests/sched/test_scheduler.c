// test_scheduler.c - the scheduler and the paged KV bookkeeping (parallel/scheduler.h,
// parallel/kv.h) against a model stand-in that uses the KV cache the way attention does.
//
// The stand-in: each step writes, for every row, the row's token into the KV pool at the
// position's block and offset (as scatter_rows does), then "attends": the sequence's next
// token is a hash of every (position, token) it reads back through its block table for
// positions 0 .. pos0+n-1. So a wrong block table, a block shared that should not be, a
// prefix that does not hold what its key says, or a recompute that feeds other tokens all
// change the generated tokens. Every run is compared with the same requests run one at a
// time with plenty of room.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "parallel/kv.h"
#include "parallel/scheduler.h"

static int failures = 0;
#define EXPECT(c, ...)                                         \
    do {                                                       \
        if (!(c)) {                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                      \
            fputc('\n', stderr);                               \
            failures++;                                        \
        }                                                      \
    } while (0)

#define V 1000
#define MAXREQ 64
#define MAXGEN 64

typedef struct {
    int32_t gen[MAXREQ][MAXGEN];
    int ngen[MAXREQ];
    int status[MAXREQ];
    int64_t reused[MAXREQ];
    int preempted[MAXREQ];
    int done;
    uint64_t id_of[MAXREQ];
} results;

typedef struct {
    results *res;
    int idx;
} req_ctx;

static void on_token(void *ctx, uint64_t id, int32_t t) {
    req_ctx *c = ctx;
    (void)id;
    if (c->res->ngen[c->idx] < MAXGEN) c->res->gen[c->idx][c->res->ngen[c->idx]++] = t;
}

static void on_done(void *ctx, uint64_t id, const ivl_sched_done *d) {
    req_ctx *c = ctx;
    (void)id;
    c->res->status[c->idx] = d->status;
    c->res->reused[c->idx] = d->reused_tokens;
    c->res->preempted[c->idx] = d->preempted;
    c->res->done++;
    EXPECT(d->ntok == c->res->ngen[c->idx], "request %d: %d tokens in on_done, %d streamed",
           c->idx, d->ntok, c->res->ngen[c->idx]);
}

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// The KV pool of the stand-in: one (token, position) pair per row.
typedef struct {
    int64_t *tok, *pos;
    int64_t rows;
    int bs;
} pool;

// One step of the stand-in model: logits with a single maximum at the "next token".
static void fake_step(pool *P, const ivl_sched_step *st, float *logits) {
    int64_t r = 0;
    for (int i = 0; i < st->nseq; i++) {
        const ivl_llm_seq *q = &st->seqs[i];
        for (int64_t t = 0; t < q->n; t++, r++) {
            const int64_t p = q->pos0 + t;
            const int64_t row = (int64_t)q->blocks[p / P->bs] * P->bs + p % P->bs;
            P->tok[row] = st->ids[r];
            P->pos[row] = p;
        }
        uint64_t h = 17;
        const int64_t len = q->pos0 + q->n;
        for (int64_t p = 0; p < len; p++) {
            const int64_t row = (int64_t)q->blocks[p / P->bs] * P->bs + p % P->bs;
            if (P->pos[row] != p) failures++, fprintf(stderr, "FAIL: position %lld reads a row holding position %lld\n", (long long)p, (long long)P->pos[row]);
            h = mix(h ^ (uint64_t)(P->tok[row] * 131 + p));
        }
        for (int k = 0; k < V; k++) logits[(int64_t)i * V + k] = 0.0f;
        logits[(int64_t)i * V + (int64_t)(h % (V - 1)) + 1] = 1.0f;   // token 0 is the stop token
    }
}

typedef struct {
    int64_t n;
    int32_t ids[600];
    int max_new;
} prompt;

// Runs the prompts (submitted all at once, or `stagger` of them per step) through a
// scheduler; cancel_after: cancel request 0 after that many steps (-1: never).
static ivl_sched_stats run(const ivl_sched_opts *o, prompt *ps, int np, results *res, int stagger,
                           int cancel_after) {
    memset(res, 0, sizeof *res);
    ivl_sched *s = ivl_sched_new(o);
    pool P = {ivl_calloc((size_t)(o->n_blocks * o->block_size), sizeof(int64_t)),
              ivl_calloc((size_t)(o->n_blocks * o->block_size), sizeof(int64_t)),
              o->n_blocks * o->block_size, o->block_size};
    req_ctx ctx[MAXREQ];
    float *logits = ivl_malloc(sizeof(float) * V * MAXREQ * 2);
    int32_t picked[MAXREQ * 2];
    int submitted = 0, steps = 0;
    for (;;) {
        int k = stagger > 0 ? stagger : np;
        while (k-- > 0 && submitted < np) {
            ctx[submitted] = (req_ctx){res, submitted};
            ivl_sched_req r = {ps[submitted].ids, ps[submitted].n, NULL, NULL, NULL,
                               ps[submitted].max_new, 0, ivl_sampling_default(), on_token,
                               on_done, &ctx[submitted]};
            res->id_of[submitted] = ivl_sched_submit(s, &r);
            EXPECT(res->id_of[submitted] != 0, "submit %d: %s", submitted, ivl_last_error());
            submitted++;
        }
        if (steps == cancel_after) ivl_sched_cancel(s, res->id_of[0]);
        ivl_sched_step st;
        if (!ivl_sched_plan(s, &st)) {
            if (submitted == np) break;
            continue;
        }
        int64_t rows = 0;
        for (int i = 0; i < st.nseq; i++) rows += st.seqs[i].n;
        EXPECT(rows == st.rows, "step rows");
        EXPECT(st.rows <= o->step_tokens || st.nseq == 1, "step of %lld rows over the budget %lld",
               (long long)st.rows, (long long)o->step_tokens);
        EXPECT(st.nseq <= o->max_seqs, "%d sequences in a step", st.nseq);
        fake_step(&P, &st, logits);
        ivl_sched_pick(s, &st, logits, V, picked);
        ivl_sched_commit(s, &st, picked);
        steps++;
        EXPECT(steps < 100000, "no progress");
        if (steps >= 100000) break;
    }
    ivl_sched_stats stats;
    ivl_sched_get_stats(s, &stats);
    EXPECT(stats.blocks_used == 0, "%lld blocks still referenced when idle", (long long)stats.blocks_used);
    ivl_sched_free(s);
    free(P.tok);
    free(P.pos);
    free(logits);
    return stats;
}

static void make_prompts(prompt *ps, int np, int shared, uint64_t seed) {
    for (int i = 0; i < np; i++) {
        ps[i].n = shared + 5 + (int64_t)(mix(seed + (uint64_t)i) % 60);
        for (int64_t t = 0; t < ps[i].n; t++)
            ps[i].ids[t] = t < shared ? (int32_t)(1 + t % 97)
                                      : (int32_t)(1 + mix(seed * 1000 + (uint64_t)(i * 600 + t)) % (V - 1));
        ps[i].max_new = 10 + (int)(mix(seed + 77 + (uint64_t)i) % 30);
    }
}

static void same_results(const results *a, const results *b, int np, const char *what) {
    for (int i = 0; i < np; i++) {
        EXPECT(a->ngen[i] == b->ngen[i] && !memcmp(a->gen[i], b->gen[i], sizeof(int32_t) * (size_t)a->ngen[i]),
               "%s: request %d generated other tokens (%d vs %d tokens)", what, i, a->ngen[i], b->ngen[i]);
        EXPECT(a->status[i] == b->status[i], "%s: request %d status %d vs %d", what, i, a->status[i], b->status[i]);
    }
}

static void test_blocks(void) {
    ivl_kv_blocks *kb = ivl_kv_blocks_new(4, 16);
    int32_t a = ivl_kv_block_alloc(kb), b = ivl_kv_block_alloc(kb);
    EXPECT(a >= 0 && b >= 0 && a != b, "two blocks");
    ivl_kv_block_publish(kb, a, 111);
    ivl_kv_block_release(kb, a);   // cached
    EXPECT(ivl_kv_blocks_cached(kb) == 1 && ivl_kv_blocks_available(kb) == 3, "a cached block counts as available");
    EXPECT(ivl_kv_block_lookup(kb, 111) == a && ivl_kv_block_refs(kb, a) == 1, "lookup takes the cached block");
    EXPECT(ivl_kv_block_lookup(kb, 111) == a && ivl_kv_block_refs(kb, a) == 2, "shared by two");
    EXPECT(ivl_kv_block_lookup(kb, 222) == -1, "unknown key");
    ivl_kv_block_release(kb, a);
    ivl_kv_block_release(kb, a);
    ivl_kv_block_release(kb, b);
    // Fill the pool: the cached block is evicted last-resort and its key forgotten.
    int32_t x[4];
    for (int i = 0; i < 4; i++) x[i] = ivl_kv_block_alloc(kb);
    EXPECT(x[3] == a, "the cached block is taken only when nothing is free (got %d, cached %d)", x[3], a);
    EXPECT(ivl_kv_block_alloc(kb) == -1, "an empty pool");
    EXPECT(ivl_kv_block_lookup(kb, 111) == -1, "an evicted block's key is gone");
    for (int i = 0; i < 4; i++) ivl_kv_block_release(kb, x[i]);
    EXPECT(ivl_kv_blocks_available(kb) == 4 && ivl_kv_blocks_used(kb) == 0, "all back");
    // Many keys through the table (inserts and evictions with backward-shift deletion).
    ivl_kv_blocks *big = ivl_kv_blocks_new(64, 4);
    for (uint64_t round = 0; round < 50; round++) {
        int32_t got[64];
        for (int i = 0; i < 64; i++) {
            got[i] = ivl_kv_block_alloc(big);
            EXPECT(got[i] >= 0, "alloc in round %llu", (unsigned long long)round);
            ivl_kv_block_publish(big, got[i], round * 1000 + (uint64_t)i + 1);
        }
        for (int i = 0; i < 64; i++) ivl_kv_block_release(big, got[i]);
        for (int i = 0; i < 64; i += 7)
            EXPECT(ivl_kv_block_lookup(big, round * 1000 + (uint64_t)i + 1) == got[i], "round %llu key %d",
                   (unsigned long long)round, i);
        for (int i = 0; i < 64; i += 7) ivl_kv_block_release(big, got[i]);
    }
    ivl_kv_blocks_free(big);
    ivl_kv_blocks_free(kb);
}

int main(void) {
    test_blocks();
    enum { NP = 24 };
    static prompt ps[NP];
    static results alone, r;
    make_prompts(ps, NP, 40, 1);
    // Reference: one at a time, plenty of room, no sharing.
    ivl_sched_opts big = {.n_blocks = 4096, .block_size = 16, .max_seqs = 1, .step_tokens = 100000,
                          .rope_exact_len = 0, .prefix_reuse = 0};
    run(&big, ps, NP, &alone, 0, -1);
    EXPECT(alone.done == NP, "reference: %d of %d done", alone.done, NP);

    // Continuous batching with chunked prefill (budget 48 rows), no sharing.
    ivl_sched_opts o = {.n_blocks = 4096, .block_size = 16, .max_seqs = 16, .step_tokens = 48,
                        .prefix_reuse = 0};
    ivl_sched_stats st = run(&o, ps, NP, &r, 3, -1);
    same_results(&alone, &r, NP, "chunked prefill");
    EXPECT(st.peak_running > 4, "peak in flight %d", st.peak_running);

    // Prefix reuse: the 40 shared tokens (2 full blocks of 16) come from the cache.
    o.prefix_reuse = 1;
    st = run(&o, ps, NP, &r, 2, -1);
    same_results(&alone, &r, NP, "prefix reuse");
    int64_t reused = 0;
    for (int i = 0; i < NP; i++) reused += r.reused[i];
    EXPECT(st.reused_tokens == reused && reused >= (NP - 2) * 32,
           "reused %lld positions (stats %lld), expected at least %d", (long long)reused,
           (long long)st.reused_tokens, (NP - 2) * 32);

    // Preemption: a pool too small for everything in flight; sequences are paused and
    // recomputed; the same tokens.
    ivl_sched_opts tight = {.n_blocks = 24, .block_size = 8, .max_seqs = 16, .step_tokens = 64,
                            .prefix_reuse = 1};
    st = run(&tight, ps, NP, &r, NP, -1);
    same_results(&alone, &r, NP, "preemption");
    EXPECT(st.preemptions > 0, "no preemption in a tight pool (peak %lld of %lld blocks)",
           (long long)st.peak_blocks_used, (long long)st.blocks_total);
    tight.prefix_reuse = 0;
    st = run(&tight, ps, NP, &r, NP, -1);
    same_results(&alone, &r, NP, "preemption without prefix reuse");

    // A long prompt past the exact-RoPE length is never cut into chunks.
    static prompt lp[2];
    make_prompts(lp, 2, 0, 9);
    lp[0].n = 500;
    for (int t = 0; t < 500; t++) lp[0].ids[t] = (int32_t)(1 + t % 500);
    static results la, lb;
    run(&big, lp, 2, &la, 0, -1);
    ivl_sched_opts ex = {.n_blocks = 4096, .block_size = 16, .max_seqs = 4, .step_tokens = 64,
                         .rope_exact_len = 256, .prefix_reuse = 1};
    run(&ex, lp, 2, &lb, 0, -1);
    same_results(&la, &lb, 2, "a long prompt");

    // Cancel mid-prefill: its blocks come back (checked by run: nothing referenced at the end).
    static results c;
    ivl_sched_opts co = {.n_blocks = 4096, .block_size = 16, .max_seqs = 4, .step_tokens = 16,
                         .prefix_reuse = 1};
    run(&co, ps, 4, &c, 0, 1);
    EXPECT(c.status[0] == IVL_SCHED_CANCELLED && c.ngen[0] == 0, "request 0 cancelled mid-prefill");
    for (int i = 1; i < 4; i++) EXPECT(c.status[i] != IVL_SCHED_CANCELLED, "request %d not cancelled", i);

    // Refused at the door: more positions than the pool holds.
    ivl_sched_opts small = {.n_blocks = 2, .block_size = 16, .max_seqs = 4, .step_tokens = 64};
    ivl_sched *s = ivl_sched_new(&small);
    ivl_sched_req q = {ps[0].ids, ps[0].n, NULL, NULL, NULL, 8, 0, ivl_sampling_default(), NULL, NULL, NULL};
    EXPECT(ivl_sched_submit(s, &q) == 0 && strstr(ivl_last_error(), "KV cache holds 32"),
           "a request larger than the pool is refused with the numbers: %s", ivl_last_error());
    ivl_sched_free(s);

    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("PASS\n");
    return 0;
}
