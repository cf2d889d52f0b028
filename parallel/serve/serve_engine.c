// serve_engine.c - see serve_engine.h.
#define _GNU_SOURCE
#include "parallel/serve/serve_engine.h"

#include <malloc.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/check.h"
#include "core/log.h"
#include "core/text/chat.h"
#include "parallel/generate.h"

enum { CMD_TICK = 1, CMD_EXIT = 2 };

// A tick's header: what follows it in the tick's message.
typedef struct {
    int64_t cmd, n_cancel, n_new, n_ids, tiles;
} tick_header;

// One new job, as every rank needs it (its ids and pixels follow the headers, in order).
typedef struct {
    int64_t n_ids, tiles, max_new, do_sample, top_k;
    uint64_t seed;
    float temperature, top_p, repetition_penalty, pad;
} job_header;

// One tick's message: rank 0 fills it, the other ranks receive it.
typedef struct {
    tick_header h;
    uint64_t *cancel;          // [n_cancel] scheduler ids to end now
    int cancel_cap;
    job_header *jobs;          // [n_new]
    ivl_serve_job **job;       // [n_new] rank 0: the jobs (their queue references)
    int jobs_cap;
    int32_t *ids;              // [n_ids] every new job's prompt ids, one after the other
    int64_t ids_cap;
    float *pixels;             // [tiles, 3, S, S] every new job's tiles (this tick only)
    int64_t pix_cap;           // tiles
} tick_msg;

typedef struct serve_req serve_req;

typedef struct {
    ivl_serve_engine *e;
    int root;
    int block_size;            // KV positions per block
    int max_seqs;
    serve_req *live;           // rank 0: the requests in the scheduler
    double grace_end;          // 0: no shutdown yet
    int draining;
    double idle_since;
    int trimmed;
    tick_msg msg;              // this tick's message
} loop_state;

// One request in the scheduler (every rank; the job side on rank 0 only).
struct serve_req {
    loop_state *ls;
    ivl_emb_batch *batch;          // NULL: text only
    ivl_tensor view;           // its rows of batch->t (empty on stages without embeddings)
    uint64_t id;               // the scheduler's id (the same on every rank)
    ivl_serve_job *j;          // rank 0: the job (this request holds a reference)
    ivl_token_stream *stream;  // rank 0: detokeniser
    int stop_hit;              // a stop string appeared in the text
    const char *reason;        // rank 0: why it is being cancelled (NULL: it was not)
    serve_req *prev, *next;    // rank 0: loop_state.live
};

// ---- messages ----

// The header's broadcast. While requests run, a plain broadcast (the next tick follows at
// once). While the scheduler is idle the wait may be long: an idle rank sleeps between polls
// of a non-blocking broadcast instead of spinning in MPI_Bcast (ranks share cores with the
// HTTP threads and with each other). Every rank's scheduler is in the same state here, so
// all take the same kind of broadcast.
static void bcast_header(ivl_session *s, tick_header *h) {
    if (!ivl_sched_idle(s->sched)) {
        MPI_Bcast(h, (int)sizeof *h, MPI_BYTE, 0, s->dist.topo.world.comm);
        return;
    }
    MPI_Request rq;
    MPI_Ibcast(h, (int)sizeof *h, MPI_BYTE, 0, s->dist.topo.world.comm, &rq);
    int done = 0;
    while (!done) {
        MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        if (!done) nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
}

static int64_t tile_floats(const ivl_session *s) {
    const int64_t S = s->model->cfg.vit.image_size;
    return 3 * S * S;
}

// Room in m for n_cancel cancels, n_new jobs, n_ids ids and tiles tiles.
static void msg_reserve(tick_msg *m, int64_t n_cancel, int64_t n_new, int64_t n_ids,
                        int64_t tiles, int64_t per_tile) {
    if (n_cancel > m->cancel_cap) {
        m->cancel_cap = (int)(2 * n_cancel);
        m->cancel = ivl_realloc(m->cancel, (size_t)m->cancel_cap * sizeof *m->cancel);
    }
    if (n_new > m->jobs_cap) {
        m->jobs_cap = (int)(2 * n_new);
        m->jobs = ivl_realloc(m->jobs, (size_t)m->jobs_cap * sizeof *m->jobs);
        m->job = ivl_realloc(m->job, (size_t)m->jobs_cap * sizeof *m->job);
    }
    if (n_ids > m->ids_cap) {
        m->ids_cap = 2 * n_ids;
        m->ids = ivl_realloc(m->ids, (size_t)m->ids_cap * sizeof *m->ids);
    }
    if (tiles > m->pix_cap) {
        m->pix_cap = tiles + 4;
        m->pixels = ivl_realloc(m->pixels, (size_t)(m->pix_cap * per_tile) * sizeof(float));
    }
}

// The pixels are per tick (megabytes a tile): given back after every tick that had some.
static void msg_drop_pixels(tick_msg *m) {
    free(m->pixels);
    m->pixels = NULL;
    m->pix_cap = 0;
}

static void msg_free(tick_msg *m) {
    free(m->cancel);
    free(m->jobs);
    free(m->job);
    free(m->ids);
    free(m->pixels);
}

// Every rank gets rank 0's message (the header is already shared).
static void share_msg(ivl_session *s, tick_msg *m) {
    const ivl_comm_ops *ops = ivl_comm_mpi_ops();
    const ivl_comm_group *w = &s->dist.topo.world;
    const int64_t per_tile = tile_floats(s);
    if (s->rank != 0) msg_reserve(m, m->h.n_cancel, m->h.n_new, m->h.n_ids, m->h.tiles, per_tile);
    if (m->h.n_cancel) ops->bcast(w, m->cancel, (size_t)m->h.n_cancel, IVL_I64, 0);
    if (m->h.n_new) {
        MPI_Bcast(m->jobs, (int)(m->h.n_new * (int64_t)sizeof *m->jobs), MPI_BYTE, 0, w->comm);
        ops->bcast(w, m->ids, (size_t)m->h.n_ids, IVL_I32, 0);
    }
    if (m->h.tiles) ops->bcast(w, m->pixels, (size_t)(m->h.tiles * per_tile), IVL_F32, 0);
}

// ---- rank 0: the jobs' side ----

static void update_gauges(loop_state *ls) {
    ivl_serve_engine *e = ls->e;
    ivl_sched_stats st;
    ivl_sched_get_stats(e->s->sched, &st);
    ivl_serve_gauges g = {.queue_length = ivl_serve_queue_len(e->queue),
                          .running = st.running,
                          .peak_running = st.peak_running,
                          .kv_used = st.blocks_used,
                          .kv_cached = st.blocks_cached,
                          .kv_total = st.blocks_total,
                          .reused_tokens = st.reused_tokens,
                          .preemptions = st.preemptions};
    ivl_serve_metrics_gauges(e->metrics, &g);
}

// Why a job must end now (client gone, its timeout, shutdown grace over), or NULL.
static const char *end_reason(const loop_state *ls, ivl_serve_job *j, double now) {
    return atomic_load(&j->cancel) ? "cancelled"
           : now > j->deadline ? "timeout"
           : ls->grace_end && now > ls->grace_end ? "shutdown" : NULL;
}

static const char *done_reason(const serve_req *r, const ivl_sched_done *d) {
    if (r->reason) return r->reason;
    switch (d->status) {
    case IVL_SCHED_STOP: return "stop";
    case IVL_SCHED_LENGTH: return r->stop_hit ? "stop" : "length";
    case IVL_SCHED_CANCELLED: return "shutdown";   // the scheduler freed at exit
    default: return "error";
    }
}

static void live_link(loop_state *ls, serve_req *r) {
    r->prev = NULL;
    r->next = ls->live;
    if (ls->live) ls->live->prev = r;
    ls->live = r;
}

static void live_unlink(loop_state *ls, serve_req *r) {
    if (r->prev) r->prev->next = r->next;
    else ls->live = r->next;
    if (r->next) r->next->prev = r->prev;
}

static void append_text(serve_req *r, const char *piece, size_t n) {
    if (piece && n && !r->stop_hit) r->stop_hit = ivl_serve_job_append(r->j, piece, n);
}

// A job that ends: metrics, then the waiting HTTP thread is woken.
static void end_job(ivl_serve_engine *e, ivl_serve_job *j, const char *reason, int cached) {
    double end = ivl_serve_now();
    pthread_mutex_lock(&j->mu);
    j->cached_tokens = cached;
    const int n_gen = j->n_gen, started = j->started;
    const double t_first = j->t_first;
    pthread_mutex_unlock(&j->mu);
    double ttft = t_first > 0 ? t_first - j->t_arrival : -1;
    double tpot = n_gen > 1 ? (end - t_first) / (n_gen - 1) : -1;
    ivl_serve_metrics_done(e->metrics, started ? j->n_ids : 0, n_gen, ttft, tpot,
                           started ? end - j->t_arrival : -1, reason);
    ivl_serve_job_finish(j, reason);
}

static void finish_req(serve_req *r, const ivl_sched_done *d) {
    loop_state *ls = r->ls;
    size_t n;
    const char *tail = ivl_token_stream_finish(r->stream, &n);
    append_text(r, tail, n);
    const char *reason = done_reason(r, d);
    if (d->status == IVL_SCHED_ERROR)
        LOG_ERROR("serve: request %s failed in the engine: %s", r->j->id,
                  d->error ? d->error : "(no message)");
    end_job(ls->e, r->j, reason, (int)d->reused_tokens);
    live_unlink(ls, r);
    ivl_token_stream_free(r->stream);
    ivl_serve_job_unref(r->j);
}

// ---- the scheduler's callbacks (every rank) ----

static void on_token(void *ctx, uint64_t id, int32_t token) {
    serve_req *r = ctx;
    (void)id;
    if (!r->j) return;   // ranks other than 0
    if (token == r->ls->e->stop_id) return;   // the separator ends the answer, uncounted
    ivl_serve_job_token(r->j, ivl_serve_now());
    size_t n;
    const char *piece = ivl_token_stream_push(r->stream, token, &n);
    append_text(r, piece, n);
}

static void on_done(void *ctx, uint64_t id, const ivl_sched_done *d) {
    serve_req *r = ctx;
    (void)id;
    if (r->j) finish_req(r, d);
    ivl_emb_batch_unref(r->ls->e->s->be, r->batch);
    free(r);
}

// ---- rank 0: the tick's plan ----

static void start_drain(loop_state *ls) {
    ivl_serve_engine *e = ls->e;
    ls->draining = 1;
    ls->grace_end = ivl_serve_now() + e->grace_s;
    LOG_INFO("serve: shutting down: no new requests; %d running, %d queued, %.0f s grace",
             ivl_sched_running(e->s->sched), ivl_serve_queue_len(e->queue), e->grace_s);
    ivl_serve_queue_close(e->queue);
    if (e->on_drain) e->on_drain(e->drain_ctx);
}

// Running requests that end now: their ids into the message (cancelled on every rank).
static void plan_cancels(loop_state *ls, tick_msg *m) {
    const double now = ivl_serve_now();
    int n = 0;
    for (serve_req *r = ls->live; r; r = r->next) n++;
    msg_reserve(m, n, 0, 0, 0, 0);
    for (serve_req *r = ls->live; r; r = r->next) {
        if (r->reason) continue;
        const char *why = r->stop_hit ? "stop" : end_reason(ls, r->j, now);
        if (!why) continue;
        r->reason = why;
        m->cancel[m->h.n_cancel++] = r->id;
    }
}

// Whether a prompt of n_ids tokens joins the batch this tick, after the tick's other new
// jobs (new_blocks blocks for their prompts): a sequence slot, no preempted request waiting
// before it, and free KV blocks for its prompt plus one block of headroom per running
// sequence. Alone it always goes (prepare checked that it fits the whole cache).
static int has_room(const loop_state *ls, const tick_msg *m, int64_t n_ids, int64_t new_blocks) {
    ivl_sched *sch = ls->e->s->sched;
    const int running = ivl_sched_running(sch);
    const int n = (int)m->h.n_new;
    if (ivl_sched_waiting(sch) > 0 || running + n >= ls->max_seqs) return 0;
    if (running + n == 0) return 1;
    const int bs = ls->block_size;
    const int64_t nb = (n_ids + bs - 1) / bs;
    return ivl_sched_blocks_short(sch, (new_blocks + nb + running) * bs) == 0;
}

static void add_job(loop_state *ls, tick_msg *m, ivl_serve_job *j) {
    const int64_t per_tile = tile_floats(ls->e->s);
    msg_reserve(m, 0, m->h.n_new + 1, m->h.n_ids + j->n_ids, m->h.tiles + j->tiles, per_tile);
    const int64_t k = m->h.n_new++;
    m->jobs[k] = (job_header){j->n_ids, j->tiles, j->max_new, j->sampling.do_sample,
                              j->sampling.top_k, j->sampling.seed, j->sampling.temperature,
                              j->sampling.top_p, j->sampling.repetition_penalty, 0};
    m->job[k] = j;
    memcpy(m->ids + m->h.n_ids, j->ids, (size_t)j->n_ids * sizeof *m->ids);
    m->h.n_ids += j->n_ids;
    if (j->tiles) {   // copied into the tick's batch: the job's own copy is not needed again
        memcpy(m->pixels + m->h.tiles * per_tile, j->pixels,
               (size_t)(j->tiles * per_tile) * sizeof(float));
        m->h.tiles += j->tiles;
        free(j->pixels);
        j->pixels = NULL;
    }
    pthread_mutex_lock(&j->mu);
    j->started = 1;
    pthread_mutex_unlock(&j->mu);
}

static int job_ends(void *ctx, ivl_serve_job *j) {
    return end_reason(ctx, j, ivl_serve_now()) != NULL;
}

// Queued jobs whose client went away or whose time is up end now, wherever they wait (a full
// batch can keep the queue waiting for a long time).
static void sweep_queue(loop_state *ls) {
    ivl_serve_job *out[64];
    int n;
    while ((n = ivl_serve_queue_take_if(ls->e->queue, job_ends, ls, out, 64)) > 0)
        for (int k = 0; k < n; k++) {
            end_job(ls->e, out[k], end_reason(ls, out[k], ivl_serve_now()), 0);
            ivl_serve_job_unref(out[k]);
        }
}

// Queued jobs that join the batch now, oldest first, while there is room. When nothing runs,
// waits up to 50 ms for a job (the idle wait).
static void plan_admits(loop_state *ls, tick_msg *m, int busy) {
    ivl_serve_engine *e = ls->e;
    int64_t new_blocks = 0;
    sweep_queue(ls);
    for (;;) {
        ivl_serve_job *j = ivl_serve_queue_peek(e->queue, busy || m->h.n_new ? 0 : 0.05);
        if (!j) break;
        const char *skip = end_reason(ls, j, ivl_serve_now());
        if (!skip && !has_room(ls, m, j->n_ids, new_blocks)) break;
        j = ivl_serve_queue_pop(e->queue, 0);   // the one peeked (the only consumer)
        if (skip) {
            end_job(e, j, skip, 0);
            ivl_serve_job_unref(j);
            continue;
        }
        new_blocks += (j->n_ids + ls->block_size - 1) / ls->block_size;
        add_job(ls, m, j);
    }
}

// Idle for a while (the HTTP threads have dropped their last jobs): give the freed pixels
// and buffers back to the system once.
static void idle_trim(loop_state *ls) {
    const double now = ivl_serve_now();
    if (!ls->idle_since) ls->idle_since = now;
    if (!ls->trimmed && now - ls->idle_since > 0.5) {
        malloc_trim(0);
        ls->trimmed = 1;
    }
}

// Rank 0: the tick's message. 0: nothing to do yet (idle; nothing is broadcast).
static int plan_tick(loop_state *ls, tick_msg *m) {
    ivl_serve_engine *e = ls->e;
    memset(&m->h, 0, sizeof m->h);
    if (*e->shutdown && !ls->draining) start_drain(ls);
    const int busy = !ivl_sched_idle(e->s->sched);
    plan_cancels(ls, m);
    plan_admits(ls, m, busy);
    if (busy || m->h.n_new) {
        m->h.cmd = CMD_TICK;
        ls->idle_since = 0;
        ls->trimmed = 0;
        return 1;
    }
    update_gauges(ls);
    if (ls->draining && ivl_serve_queue_len(e->queue) == 0) {
        m->h.cmd = CMD_EXIT;
        return 1;
    }
    idle_trim(ls);
    return 0;
}

// ---- every rank: the tick ----

// The tick's new images, encoded in one batch (every rank passes the same pixels); the
// batch then belongs to the requests that refer to it.
static ivl_emb_batch *encode_tick(ivl_session *s, const tick_msg *m) {
    if (!m->h.tiles) return NULL;
    const int64_t S = s->model->cfg.vit.image_size;
    ivl_tensor px = {IVL_F32, 4, {m->h.tiles, 3, S, S}, m->pixels, IVL_HOST};
    ivl_session_encode_images(s, &px, NULL);
    int refs = 0;
    for (int64_t k = 0; k < m->h.n_new; k++) refs += m->jobs[k].tiles > 0;
    return ivl_emb_batch_new(&s->embeds, refs);
}

static ivl_sampling job_sampling(const job_header *h) {
    ivl_sampling sm = ivl_sampling_default();
    sm.do_sample = (int)h->do_sample;
    sm.temperature = h->temperature;
    sm.top_p = h->top_p;
    sm.top_k = (int)h->top_k;
    sm.repetition_penalty = h->repetition_penalty;
    sm.seed = h->seed;   // this request's own generator
    return sm;
}

// The image rows of a prompt (rows of its view) and their content keys (the prefix cache
// knows the same images again: a later turn of the conversation reuses their blocks).
static void image_rows(ivl_session *s, const job_header *h, const int32_t *ids,
                       const float *pixels, int64_t *img_row, uint64_t *keys) {
    const int32_t ctx_id = ivl_chat_image_context_id(s->tok);
    for (int64_t i = 0, r = 0; i < h->n_ids; i++) img_row[i] = ids[i] == ctx_id ? r++ : -1;
    int tiles = (int)h->tiles;
    ivl_image_row_keys(pixels, tile_floats(s), &tiles, 1, s->model->cfg.proj.tokens_per_tile,
                       img_row, h->n_ids, keys);
}

// One new request into the scheduler (every rank, in the message's order).
static void submit_job(loop_state *ls, const job_header *h, const int32_t *ids,
                       const float *pixels, int64_t tile0, ivl_emb_batch *b, ivl_serve_job *j) {
    ivl_session *s = ls->e->s;
    serve_req *r = ivl_calloc(1, sizeof *r);
    r->ls = ls;
    r->j = j;
    int64_t *img_row = NULL;
    uint64_t *keys = NULL;
    if (h->tiles) {
        const int64_t per = s->model->cfg.proj.tokens_per_tile;
        r->batch = b;
        if (b->t.data) r->view = ivl_tensor_slice(&b->t, tile0 * per, h->tiles * per);
        img_row = ivl_malloc((size_t)h->n_ids * sizeof *img_row);
        keys = ivl_malloc((size_t)h->n_ids * sizeof *keys);
        image_rows(s, h, ids, pixels, img_row, keys);
    }
    ivl_sched_req q = {ids, h->n_ids, img_row, keys, h->tiles ? &r->view : NULL,
                       (int)h->max_new, ls->e->stop_id, job_sampling(h), on_token, on_done, r};
    r->id = ivl_sched_submit(s->sched, &q);   // copies the prompt, rows and keys
    free(img_row);
    free(keys);
    if (r->id && j) {
        r->stream = ivl_token_stream_new(s->tok, 1);
        live_link(ls, r);
    } else if (!r->id) {   // every rank alike (prepare refuses what cannot fit, so rare)
        if (j) {
            LOG_ERROR("serve: request %s cannot run: %s", j->id, ivl_last_error());
            end_job(ls->e, j, "error", 0);
            ivl_serve_job_unref(j);
        }
        ivl_emb_batch_unref(s->be, r->batch);
        free(r);
    }
}

static void submit_tick(loop_state *ls, const tick_msg *m) {
    ivl_session *s = ls->e->s;
    ivl_emb_batch *b = encode_tick(s, m);
    const int64_t per_tile = tile_floats(s);
    int64_t id0 = 0, tile0 = 0;
    for (int64_t k = 0; k < m->h.n_new; k++) {
        const job_header *h = &m->jobs[k];
        submit_job(ls, h, m->ids + id0, m->pixels + tile0 * per_tile, tile0, b,
                   ls->root ? m->job[k] : NULL);
        id0 += h->n_ids;
        tile0 += h->tiles;
    }
}

// ivl_engine_run's feed, every rank: waits for rank 0's next tick (rank 0 plans it; while
// nothing runs it waits for requests here), then applies its cancels and submits its new
// requests, the same calls in the same order on every rank. 0: step; 1: the server stops.
static int feed(void *ctx, ivl_engine *eng, uint64_t tick) {
    loop_state *ls = ctx;
    ivl_session *s = ls->e->s;
    tick_msg *m = &ls->msg;
    (void)eng;
    (void)tick;
    while (ls->root && !plan_tick(ls, m)) {}
    if (s->distributed) bcast_header(s, &m->h);
    if (m->h.cmd == CMD_EXIT) return 1;
    if (s->distributed) share_msg(s, m);
    for (int64_t k = 0; k < m->h.n_cancel; k++) ivl_sched_cancel(s->sched, m->cancel[k]);
    submit_tick(ls, m);
    if (m->h.tiles) msg_drop_pixels(m);
    return 0;
}

// ivl_engine_run's drain: the gauges after the step (rank 0).
static void drain(void *ctx, ivl_engine *eng, uint64_t tick) {
    loop_state *ls = ctx;
    (void)eng;
    (void)tick;
    if (ls->root) update_gauges(ls);
}

int ivl_serve_engine_run(ivl_serve_engine *e) {
    ivl_session *s = e->s;
    // One paged KV cache for the server's life (made by the caller, or here): a finished
    // request's blocks stay in the prefix cache, so the next turn of a conversation
    // prefills only its new message.
    if (!s->sched && ivl_session_kv_init(s, &e->kvo) != 0) ivl_die(1, "%s", ivl_last_error());
    loop_state ls = {.e = e, .root = s->rank == 0, .block_size = s->dist.kv.block_size,
                     .max_seqs = e->max_seqs > 0 ? e->max_seqs : 32, .trimmed = 1};
    if (ls.root) {
        char d[200];
        ivl_session_kv_describe(s, d, sizeof d);
        LOG_INFO("serve: %s; at most %d sequences in the running batch", d, ls.max_seqs);
    }
    ivl_engine_io io = {feed, drain, &ls};
    ivl_engine_run(ivl_session_engine(s), &io);
    msg_free(&ls.msg);
    return 0;
}
