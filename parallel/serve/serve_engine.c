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

enum { CMD_JOB = 1, CMD_EXIT = 2 };

// What every rank needs of a job: the header, then ids, then pixels.
typedef struct {
    int64_t cmd, n_ids, tiles, max_new, do_sample, top_k;
    uint64_t seed;
    float temperature, top_p, repetition_penalty, pad;
} job_header;

typedef struct {
    ivl_serve_engine *e;
    ivl_serve_job *j;             // rank 0
    ivl_token_stream *stream;     // rank 0
    int stop_hit;                 // a stop string appeared
    double grace_end;             // 0: no shutdown yet
    const char *reason;           // why rank 0 stopped the job early
} run_ctx;

// The header's broadcast, waited for politely: an idle rank sleeps between polls instead of
// spinning in MPI_Bcast (ranks share cores with the HTTP threads and with each other).
static void bcast_header(ivl_session *s, job_header *h) {
    MPI_Request rq;
    MPI_Ibcast(h, (int)sizeof *h, MPI_BYTE, 0, s->dist.topo.world.comm, &rq);
    int done = 0;
    while (!done) {
        MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        if (!done) nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
}

static void on_token(void *vctx, int seq, int32_t token) {
    run_ctx *c = vctx;
    (void)seq;
    if (!c->j) return;   // ranks other than 0
    if (token == c->e->stop_id) return;   // the separator ends the answer, unprinted and uncounted
    ivl_serve_job_token(c->j, ivl_serve_now());
    size_t n;
    const char *piece = ivl_token_stream_push(c->stream, token, &n);
    if (piece && n && !c->stop_hit) c->stop_hit = ivl_serve_job_append(c->j, piece, n);
}

// Collective: rank 0 decides, every rank gets the same answer.
static void kv_gauges(ivl_serve_engine *e, int running) {
    ivl_sched_stats st;
    ivl_sched_get_stats(e->s->sched, &st);
    ivl_serve_metrics_gauges(e->metrics, ivl_serve_queue_len(e->queue), running, st.blocks_used,
                             st.blocks_cached, st.blocks_total);
}

static int should_stop(void *vctx) {
    run_ctx *c = vctx;
    ivl_session *s = c->e->s;
    int32_t stop = 0;
    if (c->j) {
        kv_gauges(c->e, 1);
        double now = ivl_serve_now();
        if (*c->e->shutdown && !c->grace_end) c->grace_end = now + c->e->grace_s;
        c->reason = c->stop_hit ? "stop"
                    : atomic_load(&c->j->cancel) ? "cancelled"
                    : now > c->j->deadline ? "timeout"
                    : c->grace_end && now > c->grace_end ? "shutdown" : NULL;
        stop = c->reason != NULL;
    }
    if (s->distributed) ivl_comm_mpi_ops()->bcast(&s->dist.topo.world, &stop, 1, IVL_I32, 0);
    return stop;
}

static void run_job(run_ctx *c, const job_header *h, int32_t *ids, float *pixels) {
    ivl_session *s = c->e->s;
    const ivl_model_config *cfg = &s->model->cfg;
    const int64_t S = cfg->vit.image_size;
    ivl_tensor px = {0};
    if (h->tiles) {
        px = (ivl_tensor){IVL_F32, 4, {h->tiles, 3, S, S}, pixels, IVL_HOST};
    }
    ivl_session_encode_images(s, h->tiles ? &px : NULL, NULL);
    int64_t *img_row = ivl_malloc((size_t)h->n_ids * sizeof *img_row);
    int32_t ctx_id = ivl_chat_image_context_id(s->tok);
    for (int64_t i = 0, r = 0; i < h->n_ids; i++) img_row[i] = h->tiles && ids[i] == ctx_id ? r++ : -1;
    uint64_t *keys = NULL;
    if (h->tiles) {   // content keys of the image rows: the prefix cache knows the same images
        int tiles = (int)h->tiles;
        keys = ivl_malloc((size_t)h->n_ids * sizeof *keys);
        ivl_image_row_keys(pixels, 3 * S * S, &tiles, 1, cfg->proj.tokens_per_tile, img_row,
                           h->n_ids, keys);
    }
    ivl_gen_prompt gp = {ids, h->n_ids, h->tiles ? img_row : NULL, keys, &s->embeds};
    ivl_sampling samp = ivl_sampling_default();
    samp.do_sample = (int)h->do_sample;
    samp.temperature = h->temperature;
    samp.top_p = h->top_p;
    samp.top_k = (int)h->top_k;
    samp.repetition_penalty = h->repetition_penalty;
    samp.seed = h->seed;
    ivl_gen_params par = {.max_new_tokens = (int)h->max_new, .stop_id = c->e->stop_id,
                          .sampling = samp, .on_token = on_token, .should_stop = should_stop,
                          .cb_ctx = c};
    int32_t *gen = ivl_malloc((size_t)h->max_new * sizeof *gen);
    int ngen = 0;
    if (c->stream) ivl_token_stream_reset(c->stream);
    ivl_generate(ivl_session_engine(s), &gp, 1, &par, gen, &ngen, NULL);
    free(keys);
    ivl_session_encode_images(s, NULL, NULL);
    if (c->j) {
        size_t n;
        const char *tail = ivl_token_stream_finish(c->stream, &n);
        if (tail && n && !c->stop_hit) c->stop_hit = ivl_serve_job_append(c->j, tail, n);
        const char *reason = c->reason ? c->reason
                             : ngen > 0 && gen[ngen - 1] == c->e->stop_id ? "stop"
                             : c->stop_hit ? "stop" : "length";
        ivl_serve_job *j = c->j;
        double end = ivl_serve_now();
        double ttft = j->t_first > 0 ? j->t_first - j->t_arrival : -1;
        double tpot = j->n_gen > 1 ? (end - j->t_first) / (j->n_gen - 1) : -1;
        ivl_serve_metrics_done(c->e->metrics, j->n_ids, j->n_gen, ttft, tpot, end - j->t_arrival,
                               reason);
        ivl_serve_job_finish(j, reason);
    }
    free(gen);
    free(img_row);
}

// Rank 0: the next job to run, or NULL (nothing yet). Jobs whose client went away or whose
// time is up are finished here without running.
static ivl_serve_job *next_job(ivl_serve_engine *e, double grace_end) {
    ivl_serve_job *j = ivl_serve_queue_pop(e->queue, 0.05);
    kv_gauges(e, 0);
    if (!j) return NULL;
    double now = ivl_serve_now();
    const char *skip = atomic_load(&j->cancel) ? "cancelled"
                       : now > j->deadline ? "timeout"
                       : grace_end && now > grace_end ? "shutdown" : NULL;
    if (skip) {
        ivl_serve_metrics_done(e->metrics, 0, 0, -1, -1, -1, skip);
        ivl_serve_job_finish(j, skip);
        ivl_serve_job_unref(j);
        return NULL;
    }
    return j;
}

int ivl_serve_engine_run(ivl_serve_engine *e) {
    ivl_session *s = e->s;
    const int root = s->rank == 0;
    // One paged KV cache for the server's life (made by the caller, or here): a finished
    // request's blocks stay in the prefix cache, so the next turn of a conversation
    // prefills only its new message.
    if (!s->sched && ivl_session_kv_init(s, &e->kvo) != 0) ivl_die(1, "%s", ivl_last_error());
    if (root) {
        char d[160];
        ivl_session_kv_describe(s, d, sizeof d);
        LOG_INFO("serve: %s", d);
    }
    run_ctx c = {.e = e, .stream = root ? ivl_token_stream_new(s->tok, 1) : NULL};
    double grace_end = 0;
    int trimmed = 1, draining = 0;
    double idle_since = 0;
    for (;;) {
        job_header h = {0};
        ivl_serve_job *j = NULL;
        if (root) {
            if (*e->shutdown && !draining) {
                draining = 1;
                if (!grace_end) grace_end = ivl_serve_now() + e->grace_s;
                LOG_INFO("serve: shutting down: no new requests; %d queued, %.0f s grace",
                         ivl_serve_queue_len(e->queue), e->grace_s);
                ivl_serve_queue_close(e->queue);
                if (e->on_drain) e->on_drain(e->drain_ctx);
            }
            j = next_job(e, grace_end);
            if (!j && grace_end && ivl_serve_queue_len(e->queue) == 0) {
                h.cmd = CMD_EXIT;
            } else if (!j) {
                // Idle for a while (the HTTP threads have dropped their last jobs): give the
                // freed pixels and buffers back to the system once.
                if (!idle_since) idle_since = ivl_serve_now();
                if (!trimmed && ivl_serve_now() - idle_since > 0.5) {
                    malloc_trim(0);
                    trimmed = 1;
                }
                continue;
            } else {
                idle_since = 0;
                trimmed = 0;
                h = (job_header){CMD_JOB, j->n_ids, j->tiles, j->max_new, j->sampling.do_sample,
                                 j->sampling.top_k, j->sampling.seed, j->sampling.temperature,
                                 j->sampling.top_p, j->sampling.repetition_penalty, 0};
                pthread_mutex_lock(&j->mu);
                j->started = 1;
                pthread_mutex_unlock(&j->mu);
            }
        }
        if (s->distributed) bcast_header(s, &h);
        if (h.cmd == CMD_EXIT) break;
        const int64_t S = s->model->cfg.vit.image_size;
        const size_t npix = (size_t)h.tiles * 3 * (size_t)S * (size_t)S;
        int32_t *ids = root ? j->ids : ivl_malloc((size_t)h.n_ids * sizeof *ids);
        float *pixels = root ? j->pixels : h.tiles ? ivl_malloc(npix * sizeof *pixels) : NULL;
        if (s->distributed) {
            const ivl_comm_ops *ops = ivl_comm_mpi_ops();
            ops->bcast(&s->dist.topo.world, ids, (size_t)h.n_ids, IVL_I32, 0);
            if (h.tiles) ops->bcast(&s->dist.topo.world, pixels, npix, IVL_F32, 0);
        }
        c.j = j;
        c.stop_hit = 0;
        c.reason = NULL;
        c.grace_end = grace_end;
        run_job(&c, &h, ids, pixels);
        if (root && j->pixels) {   // encoded: the pixels are not needed any more
            free(j->pixels);
            j->pixels = NULL;
        }
        if (c.grace_end) grace_end = c.grace_end;   // the signal came during the job
        if (root) {
            ivl_serve_job_unref(j);
        } else {
            free(ids);
            free(pixels);
        }
        c.j = NULL;
    }
    if (c.stream) ivl_token_stream_free(c.stream);
    return 0;
}
