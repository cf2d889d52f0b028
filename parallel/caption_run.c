// caption_run.c - see caption_run.h. Rank 0 plans and writes; every rank computes.
#include "parallel/caption_run.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/msg.h"
#include "core/check.h"
#include "core/log.h"
#include "parallel/caption_feed.h"
#include "parallel/caption_progress.h"
#include "parallel/caption_retry.h"
#include "parallel/caption_utf8.h"
#include "parallel/watchdog.h"

// ---- prompts ----

static int encode_prompt(const ivl_caption_engine *e, const ivl_caption_opts *o, int tiles,
                         ivl_token_list *ids) {
    const char *sys = o->system ? o->system : (e->cfg->system_message[0] ? e->cfg->system_message : NULL);
    ivl_chat_prompt p = {.system = sys, .question = o->prompt, .tiles = &tiles, .n_images = 1,
                         .tokens_per_tile = e->cfg->proj.tokens_per_tile};
    return ivl_chat_encode(e->tok, e->tmpl, &p, ids, NULL);
}

static int max_image_tiles(const ivl_model_config *cfg, int max_tiles) {
    return max_tiles + (cfg->use_thumbnail && max_tiles > 1 ? 1 : 0);
}

int64_t ivl_caption_max_ctx(const ivl_tokenizer *tok, const ivl_chat_template *tmpl,
                            const ivl_model_config *cfg, const ivl_caption_opts *o) {
    ivl_caption_engine e = {.cfg = cfg, .tok = tok, .tmpl = tmpl};
    ivl_token_list ids = {0};
    if (encode_prompt(&e, o, max_image_tiles(cfg, o->max_tiles), &ids) != 0) return -1;
    int64_t n = ids.n + o->max_new_tokens;
    ivl_token_list_free(&ids);
    return n;
}

// ---- rank 0's state ----

// One image being captioned (rank 0).
typedef struct {
    int unit;
    char *key, *source;
    char *meta;                // --keep-meta: the "meta" object's JSON text
    int tiles, width, height;
    int64_t prompt_len;
    double decode_ms, preprocess_ms, vision_ms, llm_ms;
} seq_state;

typedef struct {
    char *buf;
    size_t len, cap;
    int64_t lines;
} line_buf;

typedef struct {
    const ivl_caption_engine *e;
    const ivl_caption_opts *o;
    const ivl_cap_inputs *in;
    ivl_cap_unit_state *units;
    line_buf *pending;           // per unit
    ivl_cap_feed *feed;
    int feed_ended;
    ivl_cap_progress prog;
    ivl_caption_summary *sum;
    double last_flush;
    int fatal;
    char fatal_msg[1024];
    int64_t sealed_units, sealed_images;   // for the total estimate
    int tar_units;
} leader;

static void lb_add(line_buf *b, const char *s) {
    size_t l = strlen(s);
    if (b->len + l + 2 > b->cap) {
        b->cap = (b->len + l + 2) * 2;
        b->buf = ivl_realloc(b->buf, b->cap);
    }
    memcpy(b->buf + b->len, s, l);
    b->len += l;
    b->buf[b->len++] = '\n';
    b->lines++;
}

static void add_result(leader *L, int unit, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    IVL_CHECK(s, "cannot format a result line (out of memory)");
    lb_add(&L->pending[unit], s);
    L->units[unit].pending++;
    free(s);
    cJSON_Delete(j);
}

// Adds name: s as valid UTF-8 (caption_utf8.h); with hex_name, the raw bytes too when escaped.
static void add_text(cJSON *j, const char *name, const char *s, const char *hex_name) {
    int esc;
    char *t = ivl_cap_key_json(s, &esc);
    cJSON_AddStringToObject(j, name, t);
    free(t);
    if (esc && hex_name) {
        char *h = ivl_cap_hex(s);
        cJSON_AddStringToObject(j, hex_name, h);
        free(h);
    }
}

static cJSON *result_head(leader *L, const char *key, const char *source, const char *meta) {
    cJSON *j = cJSON_CreateObject();
    add_text(j, "key", key, "key_hex");
    add_text(j, "source", source ? source : "", "source_hex");
    add_text(j, "model", L->o->model_name ? L->o->model_name : L->e->cfg->name, NULL);
    add_text(j, "prompt", L->o->prompt, NULL);
    if (L->o->settings_id) cJSON_AddStringToObject(j, "settings", L->o->settings_id);
    cJSON *m = meta ? cJSON_Parse(meta) : NULL;     // built by caption_meta.c: valid JSON
    if (m) cJSON_AddItemToObject(j, "meta", m);
    return j;
}

static void error_result(leader *L, int unit, const ivl_cap_item *it, const char *msg) {
    cJSON *j = result_head(L, it->key, it->source, it->meta);
    add_text(j, "error", msg, NULL);
    add_result(L, unit, j);
    L->sum->failed++;
    L->prog.failed++;
}

static void maybe_complete(leader *L, int u);

// An image whose failure is not its own (caption_retry.h): no line; the unit stays
// incomplete, so the next run reads the key again.
static void retry_later(leader *L, int unit, const char *key, const char *msg) {
    ivl_cap_unit_state *st = &L->units[unit];
    st->retried++;
    st->failed = 1;
    L->prog.retried++;
    if (L->sum->retried++ < 20)
        LOG_WARN("%s: key '%s' not recorded, it is retried by the next run: %s",
                 L->in->units[unit].name, key, msg);
    maybe_complete(L, unit);
}

static void seq_free(seq_state *s) {
    if (!s) return;
    free(s->key);
    free(s->source);
    free(s->meta);
    free(s);
}

static void finish_seq(leader *L, seq_state *s, const ivl_sched_done *d) {
    char *text = ivl_tokenizer_decode(L->e->tok, d->tokens, d->ntok, 1, NULL);
    char *cap = ivl_chat_response(L->e->tmpl, text ? text : "");
    cJSON *j = result_head(L, s->key, s->source, s->meta);
    add_text(j, "caption", cap ? cap : "", NULL);   // U+FFFD already (detok), to be sure
    cJSON_AddNumberToObject(j, "tiles", s->tiles);
    cJSON_AddNumberToObject(j, "width", s->width);
    cJSON_AddNumberToObject(j, "height", s->height);
    cJSON_AddNumberToObject(j, "prompt_tokens", (double)s->prompt_len);
    cJSON_AddNumberToObject(j, "generated_tokens", d->ntok);
    cJSON_AddStringToObject(j, "finish", d->status == IVL_SCHED_STOP ? "stop" : "length");
    cJSON *t = cJSON_AddObjectToObject(j, "timings");
    cJSON_AddNumberToObject(t, "decode_ms", round(s->decode_ms * 1e3) / 1e3);
    cJSON_AddNumberToObject(t, "preprocess_ms", round(s->preprocess_ms * 1e3) / 1e3);
    cJSON_AddNumberToObject(t, "vision_ms", round(s->vision_ms * 1e3) / 1e3);
    cJSON_AddNumberToObject(t, "llm_ms", round(s->llm_ms * 1e3) / 1e3);
    add_result(L, s->unit, j);
    free(text);
    free(cap);
    L->sum->done++;
    L->sum->gen_tokens += d->ntok;
    L->sum->prompt_tokens += s->prompt_len;
    L->prog.done++;
    L->prog.tokens += d->ntok;
}

static void maybe_complete(leader *L, int u) {
    ivl_cap_unit_state *st = &L->units[u];
    if (st->complete || st->expected < 0 || st->written + st->retried < st->expected || st->pending)
        return;
    if (st->failed) {
        ivl_cap_out_close(&st->out);
        st->complete = 1;   // closed, but no .done marker: the next run tries again
        return;
    }
    if (ivl_cap_out_mark_done(&st->out) != 0) {
        L->fatal = 1;
        snprintf(L->fatal_msg, sizeof L->fatal_msg, "%s", ivl_last_error());
        return;
    }
    LOG_DEBUG("%s complete (%lld results)", st->out.path, (long long)st->out.lines);
    ivl_cap_out_close(&st->out);
    st->complete = 1;
    L->sum->units_done++;
}

// Writes every unit's pending lines (one append + fsync each).
static void flush_all(leader *L) {
    for (int u = 0; u < L->in->n; u++) {
        line_buf *b = &L->pending[u];
        ivl_cap_unit_state *st = &L->units[u];
        if (b->lines == 0) continue;
        if (!L->fatal) {
            if (ivl_cap_out_append(&st->out, b->buf, b->len, b->lines) != 0) {
                L->fatal = 1;
                snprintf(L->fatal_msg, sizeof L->fatal_msg, "%s", ivl_last_error());
            } else {
                st->written += b->lines;
            }
        }
        st->pending = 0;
        b->len = 0;
        b->lines = 0;
        if (!L->fatal) maybe_complete(L, u);
    }
    L->last_flush = ivl_cap_now();
    ivl_fault_point("caption_flush");
}

static int unit_ready(leader *L) {
    for (int u = 0; u < L->in->n; u++) {
        ivl_cap_unit_state *st = &L->units[u];
        if (!st->complete && st->expected >= 0 &&
            st->written + st->pending + st->retried >= st->expected)
            return 1;
    }
    return 0;
}

static void update_total(leader *L) {
    // Files units are counted up front; a tar shard's images are known once it is sealed,
    // so unread shards are estimated from the average of the sealed ones.
    if (L->tar_units == 0) {
        L->prog.total = L->in->known_images;
        return;
    }
    if (L->sealed_units == 0) {
        L->prog.total = -1;
        return;
    }
    double avg = (double)L->sealed_images / L->sealed_units;
    L->prog.total = L->in->known_images + (int64_t)(avg * L->tar_units);
}

// Bookkeeping for the feed's non-image events. Returns 1 when the feed has ended.
static int handle_event(leader *L, ivl_cap_event *ev) {
    ivl_cap_unit_state *st = ev->kind == IVL_CAP_EV_END ? NULL : &L->units[ev->unit];
    switch (ev->kind) {
    case IVL_CAP_EV_UNIT_DONE:
        st->complete = 1;
        L->sum->units_done++;
        L->sum->skipped += ev->count;
        L->prog.skipped += ev->count;
        if (L->in->units[ev->unit].kind == IVL_CAP_TAR) {
            L->sealed_units++;
            L->sealed_images += ev->count;
        }
        ivl_cap_out_close(&st->out);
        break;
    case IVL_CAP_EV_SEALED:
    case IVL_CAP_EV_UNIT_FAILED:
        st->expected = ev->count;
        L->sum->skipped += ev->skipped;
        L->prog.skipped += ev->skipped;
        L->sum->dups += ev->dups;
        L->sum->dups_across += ev->dups_across;
        L->prog.dups += ev->dups;
        L->prog.dups_across += ev->dups_across;
        if (ev->kind == IVL_CAP_EV_UNIT_FAILED) {
            LOG_ERROR("%s (its output stays incomplete; the next run tries it again)", ev->message);
            st->failed = 1;
            L->sum->units_failed++;
        }
        if (L->in->units[ev->unit].kind == IVL_CAP_TAR) {
            L->sealed_units++;
            L->sealed_images += ev->count + ev->skipped;
        }
        maybe_complete(L, ev->unit);
        break;
    case IVL_CAP_EV_FATAL:
        L->fatal = 1;
        snprintf(L->fatal_msg, sizeof L->fatal_msg, "%s", ev->message);
        break;
    case IVL_CAP_EV_END:
        L->feed_ended = 1;
        break;
    default:
        break;
    }
    update_total(L);
    ivl_cap_event_free(ev);
    return L->feed_ended;
}

// ---- requests (every rank) ----

typedef struct run_state run_state;

// One request's context in the scheduler, on every rank.
typedef struct {
    run_state *rs;
    ivl_emb_batch *batch;      // the tick's embeddings (parallel/engine.h)
    ivl_tensor view;           // its rows of batch->t (empty on ranks without embeddings)
    seq_state *seq;            // rank 0
} cap_req;

struct run_state {
    leader *L;                 // rank 0, else NULL
    ivl_backend *be;
};

static void on_done(void *ctx, uint64_t id, const ivl_sched_done *d) {
    cap_req *cr = ctx;
    run_state *rs = cr->rs;
    (void)id;
    if (rs->L && cr->seq) {
        if (d->status == IVL_SCHED_STOP || d->status == IVL_SCHED_LENGTH) {
            finish_seq(rs->L, cr->seq, d);
        } else if (d->status == IVL_SCHED_ERROR) {
            ivl_cap_item it = {.key = cr->seq->key, .source = cr->seq->source, .meta = cr->seq->meta};
            error_result(rs->L, cr->seq->unit, &it, d->error ? d->error : "generation failed");
        }
        // Cancelled (a second signal, a job error): no line; the next run redoes the key.
        seq_free(cr->seq);
    }
    ivl_emb_batch_unref(rs->be, cr->batch);
    free(cr);
}

// Timings: each sequence's share of the step's time, by its rows (rank 0).
static void on_step(void *ctx, const ivl_sched_step *st, double seconds) {
    run_state *rs = ctx;
    if (!rs->L || st->rows == 0) return;
    for (int i = 0; i < st->nseq; i++) {
        cap_req *cr = st->ctx[i];
        if (cr->seq) cr->seq->llm_ms += seconds * 1e3 * (double)st->seqs[i].n / (double)st->rows;
    }
}

// ---- the plan (rank 0): which images start this tick ----

typedef struct {
    Ivl__BatchPlan plan;
    Ivl__ImageRef *refs;
    Ivl__ImageRef **ref_ptrs;
    Ivl__Sequence *sq;
    Ivl__Sequence **sq_ptrs;
    uint32_t *img_idx;
    seq_state **seqs;           // the new images' states, in plan order
    int32_t **prompts;          // their prompt ids (owned until the plan is sent)
    int n, cap;
    uint8_t *pixels;            // [total_tiles, S, S, 3]: the tiles before normalising
    int64_t pix_cap;            // bytes
    int64_t tiles;
} plan_build;

static void pb_reserve(plan_build *pb) {
    if (pb->n < pb->cap) return;
    pb->cap = pb->cap ? 2 * pb->cap : 16;
    pb->refs = ivl_realloc(pb->refs, (size_t)pb->cap * sizeof *pb->refs);
    pb->ref_ptrs = ivl_realloc(pb->ref_ptrs, (size_t)pb->cap * sizeof *pb->ref_ptrs);
    pb->sq = ivl_realloc(pb->sq, (size_t)pb->cap * sizeof *pb->sq);
    pb->sq_ptrs = ivl_realloc(pb->sq_ptrs, (size_t)pb->cap * sizeof *pb->sq_ptrs);
    pb->img_idx = ivl_realloc(pb->img_idx, (size_t)pb->cap * sizeof *pb->img_idx);
    pb->seqs = ivl_realloc(pb->seqs, (size_t)pb->cap * sizeof *pb->seqs);
    pb->prompts = ivl_realloc(pb->prompts, (size_t)pb->cap * sizeof *pb->prompts);
}

static void admit(leader *L, plan_build *pb, ivl_cap_event *ev, ivl_token_list *ids) {
    const int64_t per_tile = (int64_t)3 * L->e->cfg->vit.image_size * L->e->cfg->vit.image_size;   // bytes
    pb_reserve(pb);
    seq_state *s = ivl_calloc(1, sizeof *s);
    s->unit = ev->unit;
    s->key = ev->item.key;
    s->source = ev->item.source;
    s->meta = ev->item.meta;
    ev->item.key = ev->item.source = ev->item.meta = NULL;
    s->tiles = ev->img.grid.ntiles;
    s->width = ev->img.width;
    s->height = ev->img.height;
    s->prompt_len = ids->n;
    s->decode_ms = ev->img.decode_s * 1e3;
    s->preprocess_ms = ev->img.preprocess_s * 1e3;
    // Its tiles go after the tick's other new tiles.
    const int64_t tile0 = pb->tiles;
    int64_t need = (tile0 + s->tiles) * per_tile;
    if (need > pb->pix_cap) {
        pb->pix_cap = need * 2;
        pb->pixels = ivl_realloc(pb->pixels, (size_t)pb->pix_cap);
    }
    memcpy(pb->pixels + tile0 * per_tile, ev->img.pixels, (size_t)(s->tiles * per_tile));
    const int k = pb->n++;
    Ivl__ImageRef *r = &pb->refs[k];
    ivl__image_ref__init(r);
    r->key = s->key;
    r->tiles = (uint32_t)s->tiles;
    r->width = (uint32_t)s->width;
    r->height = (uint32_t)s->height;
    r->first_tile = (uint32_t)tile0;
    pb->seqs[k] = s;
    pb->prompts[k] = ids->ids;
    Ivl__Sequence *q = &pb->sq[k];
    ivl__sequence__init(q);
    q->id = (uint64_t)k;
    q->key = s->key;
    q->prompt_ids = ids->ids;
    q->n_prompt_ids = (size_t)ids->n;
    pb->img_idx[k] = (uint32_t)k;
    q->n_images = 1;   // q->images is set when the plan is complete (img_idx may move)
    ids->ids = NULL;
    ids->n = ids->cap = 0;
    pb->tiles += s->tiles;
}

// Pops decoded images and starts them while the scheduler has a sequence slot and KV blocks
// for their prompts (beyond one block of headroom per running sequence), and their prompts
// fit one step's rows. Preempted requests waiting in the scheduler go first.
static void plan_admit(leader *L, plan_build *pb, ivl_sched *sched, int stop) {
    ivl_token_list ids = {0};
    const int bs = L->e->kv_block;
    int64_t rows = 0, blocks = 0;
    for (;;) {
        if (stop || L->fatal || L->feed_ended) break;
        const int running = ivl_sched_running(sched), waiting = ivl_sched_waiting(sched);
        if (waiting > 0 || running + pb->n >= L->o->max_seqs) break;
        ivl_cap_event ev;
        const int busy = running + pb->n > 0;
        if (!ivl_cap_feed_pop(L->feed, &ev, busy ? 0 : 200)) {
            if (busy) break;
            if (L->o->stop_level && *L->o->stop_level) break;   // waiting: let the signal through
            ivl_cap_progress_update(&L->prog, 0);
            if (L->last_flush + L->o->flush_s <= ivl_cap_now()) flush_all(L);
            continue;
        }
        if (ev.kind != IVL_CAP_EV_IMAGE) {
            handle_event(L, &ev);
            continue;
        }
        if (ev.item.error || ev.img.status != 0) {
            const char *msg = ev.item.error ? ev.item.error : ev.img.error;
            if (ivl_cap_failure_is_final(&ev.item, &ev.img))
                error_result(L, ev.unit, &ev.item, msg);
            else
                retry_later(L, ev.unit, ev.item.key, msg);
            ivl_cap_event_free(&ev);
            continue;
        }
        ids.n = 0;
        if (encode_prompt(L->e, L->o, ev.img.grid.ntiles, &ids) != 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "cannot build the prompt: %s", ivl_last_error());
            error_result(L, ev.unit, &ev.item, msg);
            ivl_cap_event_free(&ev);
            continue;
        }
        if (ids.n + L->o->max_new_tokens > L->e->kv_positions) {
            char msg[600];
            snprintf(msg, sizeof msg, "the image's prompt (%d tokens, %d tiles) + %d new tokens "
                     "needs %lld KV positions, the KV cache holds %lld: raise --kv-mem or lower "
                     "--max-tiles", ids.n, ev.img.grid.ntiles, L->o->max_new_tokens,
                     (long long)(ids.n + L->o->max_new_tokens), (long long)L->e->kv_positions);
            error_result(L, ev.unit, &ev.item, msg);
            ivl_cap_event_free(&ev);
            continue;
        }
        const int64_t nb = (ids.n + bs - 1) / bs;
        if (busy && (ivl_sched_blocks_short(sched, (blocks + nb + running) * bs) > 0 ||
                     rows + ids.n > L->o->batch_tokens)) {
            ivl_cap_feed_unpop(L->feed, &ev);   // a later tick
            break;
        }
        rows += ids.n;
        blocks += nb;
        admit(L, pb, &ev, &ids);
        ivl_cap_event_free(&ev);
    }
    ivl_token_list_free(&ids);
}

// Every rank: the plan's new requests into the scheduler, with their image rows.
static void submit_plan(const ivl_caption_engine *e, const ivl_caption_opts *o, run_state *rs,
                        const Ivl__BatchPlan *p, ivl_tensor *embeds, seq_state **seqs) {
    if (p->n_sequences == 0) return;
    const int64_t per = e->cfg->proj.tokens_per_tile;
    ivl_emb_batch *b = ivl_emb_batch_new(embeds, (int)p->n_sequences);   // owns them now
    int64_t *img = NULL;
    size_t img_cap = 0;
    for (size_t i = 0; i < p->n_sequences; i++) {
        const Ivl__Sequence *q = p->sequences[i];
        const Ivl__ImageRef *ref = p->images[q->images[0]];
        cap_req *cr = ivl_calloc(1, sizeof *cr);
        cr->rs = rs;
        cr->batch = b;
        cr->seq = seqs ? seqs[i] : NULL;
        if (b->t.data)
            cr->view = ivl_tensor_slice(&b->t, (int64_t)ref->first_tile * per, (int64_t)ref->tiles * per);
        if (q->n_prompt_ids > img_cap) {
            img_cap = q->n_prompt_ids;
            img = ivl_realloc(img, img_cap * sizeof *img);
        }
        for (size_t k = 0, r = 0; k < q->n_prompt_ids; k++)
            img[k] = q->prompt_ids[k] == e->img_context ? (int64_t)r++ : -1;
        ivl_sampling sm = o->sampling;
        // Each image's draws are seeded by the seed and its key: results do not depend on
        // batching or on which rank samples.
        sm.seed = (o->sampling.seed ? o->sampling.seed : 0x1234abcdull) ^ ivl_keyset_hash(q->key);
        ivl_sched_req r = {q->prompt_ids, (int64_t)q->n_prompt_ids, img, NULL, &cr->view,
                           o->max_new_tokens, e->stop_id, sm, NULL, on_done, cr};
        IVL_CHECK(ivl_sched_submit(e->eng->sched, &r) != 0, "caption: %s", ivl_last_error());
    }
    free(img);
}

static void update_batch_stats(leader *L, ivl_sched *sched) {
    ivl_sched_stats st;
    ivl_sched_get_stats(sched, &st);
    L->prog.in_flight = st.running;
    L->prog.peak_in_flight = st.peak_running;
    L->prog.kv_used = st.blocks_used;
    L->prog.kv_peak = st.peak_blocks_used;
    L->prog.kv_total = st.blocks_total;
    L->prog.reused_tokens = st.reused_tokens;
    L->prog.preemptions = st.preemptions;
    L->sum->peak_in_flight = st.peak_running;
    L->sum->kv_peak_blocks = st.peak_blocks_used;
    L->sum->kv_blocks = st.blocks_total;
    L->sum->reused_tokens = st.reused_tokens;
    L->sum->preemptions = st.preemptions;
}

// ---- the loop ----

// The loop's state on every rank (rank 0's planning state in L).
typedef struct {
    const ivl_caption_engine *e;
    const ivl_caption_opts *o;
    ivl_caption_summary *sum;
    ivl_comm_group world;
    const ivl_comm_ops *mpi;
    int rank;
    leader L;
    run_state rs;
    plan_build pb;
    int rc;
    char errmsg[1024];
    int64_t fault_tick;
    ivl_watchdog *wd;
    uint64_t tick;
} cap_loop;

// Before each step (ivl_engine_io.feed): agree on stopping, rank 0 decides which images start
// and broadcasts them, their tiles are encoded, every rank submits them. Nonzero ends the loop.
static int cap_feed(void *ctx, ivl_engine *eng, uint64_t tick) {
    cap_loop *c = ctx;
    const ivl_caption_engine *e = c->e;
    const ivl_caption_opts *o = c->o;
    const int rank = c->rank;
    const int S = e->cfg->vit.image_size;
    const int64_t per_tile = (int64_t)3 * S * S;
    ivl_sched *sched = eng->sched;
    plan_build *pb = &c->pb;
    c->tick = tick;
    // 1. Agree on stopping.
    ivl_watchdog_beat(c->wd, tick);
    ivl_watchdog_phase(c->wd, "the stop-flag all-reduce at the start of a step (all ranks)");
    int32_t flags[2] = {o->stop_level ? (int32_t)*o->stop_level : 0, 0};
    c->mpi->allreduce(&c->world, flags, 2, IVL_I32, IVL_COMM_MAX);
    const int stop = flags[0];
    // A second signal drops the running sequences (their keys are redone by the next run).
    if (stop >= 2) ivl_sched_cancel_all(sched);
    ivl_watchdog_beat(c->wd, tick);
    ivl_watchdog_phase(c->wd, rank == 0 ? "planning (waiting for decoded images from the input)"
                                        : "the plan broadcast from rank 0");

    // 2. Rank 0 decides which images start now.
    Ivl__Envelope env = IVL__ENVELOPE__INIT;
    Ivl__Control ctl = IVL__CONTROL__INIT;
    if (rank == 0) {
        leader *L = &c->L;
        pb->n = 0;
        pb->tiles = 0;
        plan_admit(L, pb, sched, stop);
        ivl__batch_plan__init(&pb->plan);
        pb->plan.batch_id = tick;
        for (int k = 0; k < pb->n; k++) {
            pb->ref_ptrs[k] = &pb->refs[k];
            pb->sq_ptrs[k] = &pb->sq[k];
            pb->sq[k].images = &pb->img_idx[k];
        }
        pb->plan.images = pb->ref_ptrs;
        pb->plan.n_images = (size_t)pb->n;
        pb->plan.total_tiles = (uint32_t)pb->tiles;
        pb->plan.sequences = pb->sq_ptrs;
        pb->plan.n_sequences = (size_t)pb->n;
        if (L->fatal || (pb->n == 0 && ivl_sched_idle(sched))) {
            ctl.kind = L->fatal ? IVL__CONTROL__KIND__ERROR
                       : (stop || !L->feed_ended) ? IVL__CONTROL__KIND__STOP
                                                  : IVL__CONTROL__KIND__SHUTDOWN;
            ctl.message = L->fatal ? L->fatal_msg : "";
            env.body_case = IVL__ENVELOPE__BODY_CONTROL;
            env.control = &ctl;
        } else {
            env.body_case = IVL__ENVELOPE__BODY_PLAN;
            env.plan = &pb->plan;
        }
        ivl_watchdog_phase(c->wd, "the plan broadcast to the other ranks");
    }
    Ivl__Envelope *got = (Ivl__Envelope *)ivl_msg_bcast(&c->world, &ivl__envelope__descriptor,
                                                        &env.base, 0);
    IVL_CHECK(got, "caption plan broadcast: %s", ivl_last_error());
    if (rank == 0)
        for (int k = 0; k < pb->n; k++) free(pb->prompts[k]);
    if (got->body_case == IVL__ENVELOPE__BODY_CONTROL) {
        int kind = got->control->kind;
        if (kind == IVL__CONTROL__KIND__ERROR) {
            snprintf(c->errmsg, sizeof c->errmsg, "%s", got->control->message);
            c->rc = 1;
            c->sum->fatal = 1;
        } else if (kind == IVL__CONTROL__KIND__STOP) {
            c->rc = IVL_CAPTION_EXIT_REQUEUE;
            c->sum->stopped = 1;
        }
        ivl_msg_free(&got->base);
        return 1;
    }
    const Ivl__BatchPlan *plan = got->plan;

    // 3. Vision: every new image's tiles in one batch; each rank gets only the tiles it
    // encodes (its share), from rank 0, as uint8 (a quarter of the normalised floats), and
    // normalises them itself (ToTensor + Normalize, the reference's float32 arithmetic).
    ivl_watchdog_phase(c->wd, "the vision encoder (tile transfer from rank 0, embedding join)");
    double t_vis = ivl_cap_now();
    ivl_tensor embeds = {0};
    const int64_t new_tiles = plan->total_tiles;
    if (new_tiles > 0) {
        int64_t t0 = 0, t1 = new_tiles;
        if (e->tile_share) e->tile_share(e->encode_ctx, rank, new_tiles, &t0, &t1);
        const uint8_t *mine = NULL;
        uint8_t *got_px = NULL;
        if (rank == 0) {
            for (int r = 1; r < c->world.size; r++) {
                int64_t a, b;
                e->tile_share(e->encode_ctx, r, new_tiles, &a, &b);
                if (b > a)
                    c->mpi->send(&c->world, pb->pixels + a * per_tile, (size_t)((b - a) * per_tile),
                                 IVL_U8, r);
            }
            mine = pb->pixels + t0 * per_tile;
        } else if (t1 > t0) {
            got_px = ivl_malloc((size_t)((t1 - t0) * per_tile));
            c->mpi->recv(&c->world, got_px, (size_t)((t1 - t0) * per_tile), IVL_U8, 0);
            mine = got_px;
        }
        ivl_tensor px = {IVL_F32, 4, {t1 - t0, 3, S, S}, NULL, IVL_HOST};
        if (t1 > t0) {
            px.data = ivl_malloc((size_t)((t1 - t0) * per_tile) * sizeof(float));
            ivl_tiles_normalize_f32(mine, (int)(t1 - t0), S, px.data);
        }
        free(got_px);
        e->encode(e->encode_ctx, t1 > t0 ? &px : NULL, new_tiles, &embeds);
        free(px.data);
    }
    t_vis = ivl_cap_now() - t_vis;
    if (rank == 0)
        for (int k = 0; k < pb->n; k++)
            pb->seqs[k]->vision_ms = t_vis * 1e3 * pb->seqs[k]->tiles / (double)new_tiles;
    submit_plan(e, o, &c->rs, plan, &embeds, rank == 0 ? pb->seqs : NULL);
    if (embeds.data) e->be->free(e->be, &embeds);   // a plan without sequences
    ivl_msg_free(&got->base);
    // 4. Then one engine step (parallel/engine.h): prefill chunks of the new sequences mixed
    // with a decode row of each running one; finished ones write their lines through on_done.
    ivl_watchdog_phase(c->wd, "the model step (tensor-parallel all-reduces, pipeline sends)");
    return 0;
}

// After each step (ivl_engine_io.drain): results reach the disk, progress (rank 0).
static void cap_drain(void *ctx, ivl_engine *eng, uint64_t tick) {
    cap_loop *c = ctx;
    // Fault injection (tests): IVL_FAULT=caption:<rank> kills that rank at tick
    // IVL_FAULT_CAPTION_TICK (default 8), in the middle of a job.
    if ((int64_t)tick == c->fault_tick) ivl_fault_point("caption");
    if (c->rank != 0) return;
    leader *L = &c->L;
    ivl_watchdog_phase(c->wd, "writing results");
    update_batch_stats(L, eng->sched);
    const int stop = c->o->stop_level && *c->o->stop_level;
    if (L->last_flush + c->o->flush_s <= ivl_cap_now() || unit_ready(L) || stop) flush_all(L);
    ivl_cap_progress_update(&L->prog, 0);
}

int ivl_caption_run(const ivl_caption_engine *e, const ivl_cap_inputs *in,
                    const ivl_caption_opts *o, ivl_caption_summary *sum) {
    memset(sum, 0, sizeof *sum);
    cap_loop *c = ivl_calloc(1, sizeof *c);
    c->e = e;
    c->o = o;
    c->sum = sum;
    ivl_comm_group_world(&c->world);
    c->mpi = ivl_comm_mpi_ops();
    const int rank = c->rank = c->world.rank;
    const int S = e->cfg->vit.image_size;
    leader *L = &c->L;
    c->rs = (run_state){rank == 0 ? L : NULL, e->be};
    e->eng->on_step = on_step;
    e->eng->step_ctx = &c->rs;
    if (rank == 0) {
        L->e = e;
        L->o = o;
        L->in = in;
        L->sum = sum;
        L->units = ivl_calloc((size_t)in->n, sizeof *L->units);
        for (int u = 0; u < in->n; u++) L->units[u].expected = -1;
        for (int u = 0; u < in->n; u++) L->tar_units += in->units[u].kind == IVL_CAP_TAR;
        L->pending = ivl_calloc((size_t)in->n, sizeof *L->pending);
        sum->units = in->n;
        ivl_cap_progress_init(&L->prog, o->progress_bar, o->log_s);
        update_total(L);
        ivl_preprocess_opts popt = ivl_preprocess_defaults();
        popt.image_size = S;
        popt.min_tiles = e->cfg->min_dynamic_patch > 0 ? e->cfg->min_dynamic_patch : 1;
        popt.max_tiles = o->max_tiles;
        if (o->max_pixels > 0) popt.max_pixels = o->max_pixels;
        popt.max_file_bytes = o->max_member_bytes;   // files by path: the tar member limit
        popt.exif_transpose = o->exif_transpose;
        popt.use_thumbnail = e->cfg->use_thumbnail;
        popt.dtype = IVL_U8;   // decoded tiles wait in the queue and travel as uint8
        L->feed = ivl_cap_feed_start(in, L->units, o->out_dir, &popt, o->threads, o->queue,
                                     o->max_member_bytes);
        L->last_flush = ivl_cap_now();
    }
    const char *ft = getenv("IVL_FAULT_CAPTION_TICK");
    c->fault_tick = ft ? atoll(ft) : 8;
    // A frozen rank would leave the others in MPI forever: a thread ends the job (watchdog.h).
    // One rank waits for nobody: no watchdog (a slow step on one CPU is not a hang).
    c->wd = ivl_watchdog_start(c->world.size > 1 ? o->step_timeout_s : 0, rank, c->world.size);
    ivl_engine_io io = {cap_feed, cap_drain, c};
    ivl_engine_run(e->eng, &io);
    // Whatever is still running (a job error) ends without a line: the next run redoes it.
    ivl_sched_cancel_all(e->eng->sched);
    e->eng->on_step = NULL;
    e->eng->step_ctx = NULL;

    int rc = c->rc;
    if (rank == 0) {
        // Everything finished reaches the disk before we return, whatever stopped us.
        ivl_cap_feed_stop(L->feed);
        update_batch_stats(L, e->eng->sched);
        flush_all(L);
        if (L->fatal && !c->errmsg[0]) snprintf(c->errmsg, sizeof c->errmsg, "%s", L->fatal_msg);
        if (L->fatal) {
            rc = 1;
            sum->fatal = 1;
        }
        for (int u = 0; u < in->n; u++) {
            if (L->units[u].opened && !L->units[u].complete) ivl_cap_out_close(&L->units[u].out);
            free(L->pending[u].buf);
        }
        sum->seconds = ivl_cap_now() - L->prog.t0;
        ivl_cap_progress_finish(&L->prog, sum->units_done, sum->units, sum->units_failed, sum->stopped);
        if (rc == 0 && sum->units_done < sum->units) rc = 1;
        if (c->errmsg[0]) LOG_ERROR("caption stopped: %s", c->errmsg);
        free(L->units);
        free(L->pending);
        plan_build *pb = &c->pb;
        free(pb->refs); free(pb->ref_ptrs); free(pb->sq); free(pb->sq_ptrs); free(pb->img_idx);
        free(pb->seqs); free(pb->prompts); free(pb->pixels);
    }
    // Every rank returns the same code.
    int32_t code = rc;
    ivl_watchdog_beat(c->wd, c->tick);
    ivl_watchdog_phase(c->wd, "the exit-code broadcast at the end of the job");
    c->mpi->bcast(&c->world, &code, 1, IVL_I32, 0);
    ivl_watchdog_stop(c->wd);
    ivl_comm_group_free(&c->world);
    free(c);
    return code;
}
