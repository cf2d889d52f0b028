// scheduler.c - see scheduler.h.
#include "parallel/scheduler.h"
#include "core/check.h"
#include "core/log.h"
#include "parallel/kv.h"

#include <stdlib.h>
#include <string.h>

enum { ST_WAITING = 0, ST_RUNNING = 1 };

typedef struct {
    uint64_t id;
    int32_t *tok;              // prompt, then the generated tokens
    int64_t n_prompt, ntok;
    int64_t *img_row;          // [n_prompt] or NULL
    uint64_t *row_key;         // [n_prompt] or NULL
    const ivl_tensor *embeds;
    int max_new, ngen;
    int32_t stop_id;
    ivl_sampling samp;
    uint64_t rng;
    void (*on_token)(void *, uint64_t, int32_t);
    void (*on_done)(void *, uint64_t, const ivl_sched_done *);
    void *cb_ctx;
    int64_t cached;            // positions in the KV cache
    int32_t *blocks;
    int64_t nblocks, bcap;
    int64_t published;         // leading blocks published (or found) in the prefix cache
    uint64_t chain;            // key of block published - 1
    int64_t reused;
    int reused_set, preempted;
    int64_t order;             // admission order
    int status;                // set when it ends
    const char *error;
} sreq;

struct ivl_sched {
    ivl_sched_opts o;
    ivl_kv_blocks *kb;
    sreq **waiting, **running;
    int nwait, nrun, capw, capr;
    uint64_t next_id;
    int64_t next_order;
    // the step being planned
    ivl_llm_seq *seqs;
    uint64_t *req_ids;
    void **ctxs;
    sreq **step_reqs;
    const ivl_tensor **embeds;
    int *emits;
    int nseq, cap_seq;
    int32_t *ids;
    int64_t *img;
    int64_t rows, cap_rows;
    sreq **ended;
    int nended, cap_ended;
    ivl_sched_stats st;
    int warned_exact;
};

static int64_t blocks_for(const ivl_sched *s, int64_t positions) {
    return (positions + s->o.block_size - 1) / s->o.block_size;
}

ivl_sched *ivl_sched_new(const ivl_sched_opts *o) {
    IVL_CHECK(o->n_blocks >= 1 && o->block_size >= 1 && o->max_seqs >= 1 && o->step_tokens >= 1,
              "scheduler: %lld blocks of %d, %d sequences, %lld tokens a step",
              (long long)o->n_blocks, o->block_size, o->max_seqs, (long long)o->step_tokens);
    ivl_sched *s = ivl_calloc(1, sizeof *s);
    s->o = *o;
    if (s->o.rope_exact_len <= 0) s->o.rope_exact_len = INT64_MAX;
    s->kb = ivl_kv_blocks_new(o->n_blocks, o->block_size);
    s->next_id = 1;
    return s;
}

static void req_free(sreq *r) {
    free(r->tok);
    free(r->img_row);
    free(r->row_key);
    free(r->blocks);
    free(r);
}

static void release_blocks(ivl_sched *s, sreq *r) {
    for (int64_t b = 0; b < r->nblocks; b++) ivl_kv_block_release(s->kb, r->blocks[b]);
    r->nblocks = 0;
    r->cached = 0;
    r->published = 0;
    r->chain = 0;
}

static void end_req(ivl_sched *s, sreq *r, int status, const char *error) {
    release_blocks(s, r);
    r->status = status;
    r->error = error;
    if (s->nended == s->cap_ended) {
        s->cap_ended = s->cap_ended ? 2 * s->cap_ended : 16;
        s->ended = ivl_realloc(s->ended, (size_t)s->cap_ended * sizeof *s->ended);
    }
    s->ended[s->nended++] = r;
}

// Calls on_done of the requests that ended (after the scheduler's state is consistent, so a
// callback may submit or cancel).
static void flush_ended(ivl_sched *s) {
    while (s->nended > 0) {
        sreq *r = s->ended[0];
        memmove(s->ended, s->ended + 1, (size_t)(--s->nended) * sizeof *s->ended);
        ivl_sched_done d = {r->status, r->tok + r->n_prompt, r->ngen, r->n_prompt, r->reused,
                            r->preempted, r->error};
        if (r->on_done) r->on_done(r->cb_ctx, r->id, &d);
        req_free(r);
    }
}

void ivl_sched_free(ivl_sched *s) {
    if (!s) return;
    ivl_sched_cancel_all(s);
    ivl_kv_blocks_free(s->kb);
    free(s->waiting); free(s->running);
    free(s->seqs); free(s->req_ids); free(s->ctxs); free(s->step_reqs); free(s->embeds); free(s->emits);
    free(s->ids); free(s->img); free(s->ended);
    free(s);
}

static void push_wait(ivl_sched *s, sreq *r, int front) {
    if (s->nwait == s->capw) {
        s->capw = s->capw ? 2 * s->capw : 16;
        s->waiting = ivl_realloc(s->waiting, (size_t)s->capw * sizeof *s->waiting);
    }
    if (front) {
        memmove(s->waiting + 1, s->waiting, (size_t)s->nwait * sizeof *s->waiting);
        s->waiting[0] = r;
    } else {
        s->waiting[s->nwait] = r;
    }
    s->nwait++;
}

static void push_run(ivl_sched *s, sreq *r) {
    if (s->nrun == s->capr) {
        s->capr = s->capr ? 2 * s->capr : 16;
        s->running = ivl_realloc(s->running, (size_t)s->capr * sizeof *s->running);
    }
    s->running[s->nrun++] = r;
}

static void remove_at(sreq **a, int *n, int i) {
    memmove(a + i, a + i + 1, (size_t)(*n - i - 1) * sizeof *a);
    (*n)--;
}

uint64_t ivl_sched_submit(ivl_sched *s, const ivl_sched_req *q) {
    if (q->n < 1) return (uint64_t)ivl_errorf("an empty prompt cannot be generated from"), 0;
    const int max_new = q->max_new_tokens > 0 ? q->max_new_tokens : 0;
    const int64_t cap = s->o.n_blocks * s->o.block_size, need = q->n + max_new;
    if (need > cap)
        return (uint64_t)ivl_errorf("the request needs %lld KV positions (prompt %lld + %d new "
                                    "tokens) but the KV cache holds %lld (%lld blocks of %d); "
                                    "raise --kv-mem or lower --max-new-tokens / --max-tiles",
                                    (long long)need, (long long)q->n, max_new, (long long)cap,
                                    (long long)s->o.n_blocks, s->o.block_size), 0;
    sreq *r = ivl_calloc(1, sizeof *r);
    r->id = s->next_id++;
    r->n_prompt = r->ntok = q->n;
    r->tok = ivl_malloc((size_t)need * sizeof *r->tok);
    memcpy(r->tok, q->ids, (size_t)q->n * sizeof *r->tok);
    if (q->img_row) {
        r->img_row = ivl_malloc((size_t)q->n * sizeof *r->img_row);
        memcpy(r->img_row, q->img_row, (size_t)q->n * sizeof *r->img_row);
        if (q->row_key) {
            r->row_key = ivl_malloc((size_t)q->n * sizeof *r->row_key);
            memcpy(r->row_key, q->row_key, (size_t)q->n * sizeof *r->row_key);
        }
    }
    r->embeds = q->embeds;
    r->max_new = max_new;
    r->stop_id = q->stop_id;
    r->samp = q->sampling;
    r->rng = q->sampling.seed ? q->sampling.seed : 0x1234abcdull;
    r->on_token = q->on_token;
    r->on_done = q->on_done;
    r->cb_ctx = q->cb_ctx;
    push_wait(s, r, 0);
    return r->id;
}

void ivl_sched_cancel(ivl_sched *s, uint64_t id) {
    for (int i = 0; i < s->nwait; i++)
        if (s->waiting[i]->id == id) {
            sreq *r = s->waiting[i];
            remove_at(s->waiting, &s->nwait, i);
            end_req(s, r, IVL_SCHED_CANCELLED, NULL);
            flush_ended(s);
            return;
        }
    for (int i = 0; i < s->nrun; i++)
        if (s->running[i]->id == id) {
            sreq *r = s->running[i];
            remove_at(s->running, &s->nrun, i);
            end_req(s, r, IVL_SCHED_CANCELLED, NULL);
            flush_ended(s);
            return;
        }
}

void ivl_sched_cancel_all(ivl_sched *s) {
    while (s->nrun > 0) ivl_sched_cancel(s, s->running[s->nrun - 1]->id);
    while (s->nwait > 0) ivl_sched_cancel(s, s->waiting[s->nwait - 1]->id);
}

int ivl_sched_idle(const ivl_sched *s) { return s->nwait == 0 && s->nrun == 0; }
int ivl_sched_running(const ivl_sched *s) { return s->nrun; }
int ivl_sched_waiting(const ivl_sched *s) { return s->nwait; }

int64_t ivl_sched_blocks_short(const ivl_sched *s, int64_t n_prompt) {
    int64_t need = blocks_for(s, n_prompt) - ivl_kv_blocks_available(s->kb);
    return need > 0 ? need : 0;
}

// ---- prefix keys ----

// The key of position t's content: its token id, or for an image row the caller's key of it
// (a key no other request has when the caller gave none).
static uint64_t tok_key(const sreq *r, int64_t t) {
    if (t < r->n_prompt && r->img_row && r->img_row[t] >= 0)
        return r->row_key ? r->row_key[t] | 1ull << 63 : ivl_hash64(r->id * 0x100000001b3ull + (uint64_t)t) | 1ull << 63;
    return (uint64_t)(uint32_t)r->tok[t];
}

static uint64_t block_key(const ivl_sched *s, const sreq *r, int64_t b, uint64_t prev) {
    uint64_t keys[256];
    const int bs = s->o.block_size;
    uint64_t h = prev;
    for (int j0 = 0; j0 < bs; j0 += 256) {   // chained in pieces of 256 (block sizes <= 256 are one)
        int n = bs - j0 < 256 ? bs - j0 : 256;
        for (int j = 0; j < n; j++) keys[j] = tok_key(r, b * bs + j0 + j);
        h = ivl_kv_chain_key(h, keys, n);
    }
    return h;
}

static void add_block(ivl_sched *s, sreq *r, int32_t b) {
    (void)s;
    if (r->nblocks == r->bcap) {
        r->bcap = r->bcap ? 2 * r->bcap : 8;
        r->blocks = ivl_realloc(r->blocks, (size_t)r->bcap * sizeof *r->blocks);
    }
    r->blocks[r->nblocks++] = b;
}

// Takes the cached blocks of r's longest published prefix (at least one position left to
// compute). Only for sequences within the exact-RoPE length.
static void match_prefix(ivl_sched *s, sreq *r) {
    if (!s->o.prefix_reuse || r->ntok > s->o.rope_exact_len || r->nblocks > 0) return;
    const int64_t maxb = (r->ntok - 1) / s->o.block_size;
    uint64_t prev = 0;
    for (int64_t b = 0; b < maxb; b++) {
        uint64_t key = block_key(s, r, b, prev);
        int32_t blk = ivl_kv_block_lookup(s->kb, key);
        if (blk < 0) break;
        add_block(s, r, blk);
        prev = key;
    }
    r->published = r->nblocks;
    r->chain = prev;
    r->cached = r->nblocks * s->o.block_size;
}

static void preempt(ivl_sched *s, int i) {
    sreq *r = s->running[i];
    remove_at(s->running, &s->nrun, i);
    release_blocks(s, r);
    r->preempted++;
    s->st.preemptions++;
    if (r->ntok > s->o.rope_exact_len && !s->warned_exact) {
        s->warned_exact = 1;
        LOG_WARN("KV cache full: a sequence of %lld positions is paused and recomputed; past %lld "
                 "positions the model's RoPE scaling makes the recomputed keys differ slightly "
                 "from the first ones (a larger --kv-mem avoids it)",
                 (long long)r->ntok, (long long)s->o.rope_exact_len);
    }
    push_wait(s, r, 1);
}

static void step_add(ivl_sched *s, sreq *r, int64_t chunk) {
    if (s->nseq == s->cap_seq) {
        s->cap_seq = s->cap_seq ? 2 * s->cap_seq : 64;
        s->seqs = ivl_realloc(s->seqs, (size_t)s->cap_seq * sizeof *s->seqs);
        s->req_ids = ivl_realloc(s->req_ids, (size_t)s->cap_seq * sizeof *s->req_ids);
        s->ctxs = ivl_realloc(s->ctxs, (size_t)s->cap_seq * sizeof *s->ctxs);
        s->step_reqs = ivl_realloc(s->step_reqs, (size_t)s->cap_seq * sizeof *s->step_reqs);
        s->embeds = ivl_realloc(s->embeds, (size_t)s->cap_seq * sizeof *s->embeds);
        s->emits = ivl_realloc(s->emits, (size_t)s->cap_seq * sizeof *s->emits);
    }
    if (s->rows + chunk > s->cap_rows) {
        s->cap_rows = (s->rows + chunk) * 2;
        s->ids = ivl_realloc(s->ids, (size_t)s->cap_rows * sizeof *s->ids);
        s->img = ivl_realloc(s->img, (size_t)s->cap_rows * sizeof *s->img);
    }
    const int i = s->nseq++;
    s->seqs[i] = (ivl_llm_seq){.pos0 = r->cached, .n = chunk, .blocks = r->blocks,
                               .n_blocks = r->nblocks};
    s->req_ids[i] = r->id;
    s->ctxs[i] = r->cb_ctx;
    s->step_reqs[i] = r;
    s->embeds[i] = r->embeds;
    s->emits[i] = r->cached + chunk == r->ntok;
    for (int64_t t = r->cached; t < r->cached + chunk; t++) {
        s->ids[s->rows] = r->tok[t];
        s->img[s->rows] = t < r->n_prompt && r->img_row ? r->img_row[t] : -1;
        s->rows++;
    }
}

// Rows of r for this step given the budget left (0: none this step).
static int64_t chunk_of(const ivl_sched *s, const sreq *r, int64_t budget) {
    const int64_t pending = r->ntok - r->cached;
    if (pending <= budget) return pending;
    // A prompt past the exact-RoPE length is computed whole (alone in a step if need be).
    if (r->ntok > s->o.rope_exact_len) return s->rows == 0 ? pending : 0;
    return budget;
}

// Gives r the blocks for positions up to `upto`; frees blocks by preempting the sequences
// admitted last when needed. 0 when r itself had to be preempted (or failed).
static int grow(ivl_sched *s, sreq *r, int64_t upto) {
    int64_t need = blocks_for(s, upto) - r->nblocks;
    while (need > ivl_kv_blocks_available(s->kb)) {
        int last = s->nrun - 1;
        if (s->running[last] == r) {
            if (s->nrun == 1) {   // alone and still no room: cannot happen after submit's check
                remove_at(s->running, &s->nrun, last);
                end_req(s, r, IVL_SCHED_ERROR, "the KV cache is too small for this sequence");
                return 0;
            }
            preempt(s, last);
            return 0;
        }
        preempt(s, last);
    }
    for (int64_t k = 0; k < need; k++) add_block(s, r, ivl_kv_block_alloc(s->kb));
    return 1;
}

int ivl_sched_plan(ivl_sched *s, ivl_sched_step *st) {
    s->nseq = 0;
    s->rows = 0;
    int64_t budget = s->o.step_tokens;
    // 1. The running sequences, in admission order: a decode row or their next prompt chunk.
    for (int i = 0; i < s->nrun && budget > 0;) {
        sreq *r = s->running[i];
        int64_t chunk = chunk_of(s, r, budget);
        if (chunk == 0) {
            i++;
            continue;
        }
        if (!grow(s, r, r->cached + chunk)) continue;   // r left the running list at i
        step_add(s, r, chunk);
        budget -= chunk;
        i++;
    }
    // 2. Admission, first come first served.
    while (s->nwait > 0 && s->nrun < s->o.max_seqs && budget > 0) {
        sreq *r = s->waiting[0];
        match_prefix(s, r);
        const int64_t need = blocks_for(s, r->ntok) - r->nblocks;
        int64_t chunk = chunk_of(s, r, budget);
        if (need > ivl_kv_blocks_available(s->kb) || chunk == 0) {
            release_blocks(s, r);   // the matched prefix goes back to the cache
            break;
        }
        remove_at(s->waiting, &s->nwait, 0);
        if (!r->reused_set) {
            r->reused = r->cached;
            r->reused_set = 1;
            s->st.reused_tokens += r->cached;
        }
        r->order = s->next_order++;
        push_run(s, r);
        for (int64_t k = blocks_for(s, r->cached + chunk) - r->nblocks; k > 0; k--)
            add_block(s, r, ivl_kv_block_alloc(s->kb));
        step_add(s, r, chunk);
        budget -= chunk;
    }
    flush_ended(s);
    memset(st, 0, sizeof *st);
    if (s->nseq == 0) return 0;
    int greedy = 1, any_img = 0;
    for (int i = 0; i < s->nseq; i++)
        if (s->emits[i] && (s->step_reqs[i]->samp.do_sample || s->step_reqs[i]->samp.repetition_penalty != 1.0f))
            greedy = 0;
    for (int64_t r = 0; r < s->rows; r++) any_img |= s->img[r] >= 0;
    st->nseq = s->nseq;
    st->seqs = s->seqs;
    st->req = s->req_ids;
    st->ctx = s->ctxs;
    st->ids = s->ids;
    st->img_row = s->img;
    st->embeds = s->embeds;
    st->emits = s->emits;
    st->rows = s->rows;
    st->any_img = any_img;
    st->greedy = greedy;
    s->st.steps++;
    if (s->nrun > s->st.peak_running) s->st.peak_running = s->nrun;
    int64_t used = ivl_kv_blocks_used(s->kb);
    if (used > s->st.peak_blocks_used) s->st.peak_blocks_used = used;
    return 1;
}

void ivl_sched_pick(ivl_sched *s, const ivl_sched_step *st, float *logits, int64_t V,
                    int32_t *picked) {
    for (int i = 0; i < st->nseq; i++) {
        sreq *r = s->step_reqs[i];
        picked[i] = -1;
        if (!st->emits[i] || r->max_new == 0) continue;
        picked[i] = ivl_sample_next(logits + (int64_t)i * V, V, r->tok + r->n_prompt, r->ngen,
                                    &r->samp, &r->rng);
    }
}

void ivl_sched_commit(ivl_sched *s, const ivl_sched_step *st, const int32_t *picked) {
    const int bs = s->o.block_size;
    for (int i = 0; i < st->nseq; i++) {
        sreq *r = s->step_reqs[i];
        const int64_t n = st->seqs[i].n;
        if (r->cached < r->n_prompt) s->st.prefill_tokens += n;
        else s->st.decode_tokens += n;
        r->cached += n;
        // Full blocks computed within the exact-RoPE length become shareable.
        if (s->o.prefix_reuse && r->cached <= s->o.rope_exact_len)
            while ((r->published + 1) * bs <= r->cached) {
                uint64_t key = block_key(s, r, r->published, r->chain);
                ivl_kv_block_publish(s->kb, r->blocks[r->published], key);
                r->chain = key;
                r->published++;
            }
        if (!st->emits[i]) continue;
        int status = -1;
        if (r->max_new == 0) {
            status = IVL_SCHED_LENGTH;
        } else {
            const int32_t t = picked[i];
            r->tok[r->ntok++] = t;
            r->ngen++;
            if (r->on_token) r->on_token(r->cb_ctx, r->id, t);
            if (t == r->stop_id) status = IVL_SCHED_STOP;
            else if (r->ngen >= r->max_new) status = IVL_SCHED_LENGTH;
        }
        if (status >= 0) {
            for (int j = 0; j < s->nrun; j++)
                if (s->running[j] == r) {
                    remove_at(s->running, &s->nrun, j);
                    break;
                }
            end_req(s, r, status, NULL);
        }
    }
    s->nseq = 0;
    s->rows = 0;
    flush_ended(s);
}

void ivl_sched_get_stats(const ivl_sched *s, ivl_sched_stats *out) {
    *out = s->st;
    out->running = s->nrun;
    out->waiting = s->nwait;
    out->blocks_total = ivl_kv_blocks_total(s->kb);
    out->blocks_used = ivl_kv_blocks_used(s->kb);
    out->blocks_cached = ivl_kv_blocks_cached(s->kb);
    out->block_size = s->o.block_size;
}
