// serve_engine.h - the engine loop of `internvl serve`, on every rank (the only thread that
// calls MPI). Rank 0 takes a job from the queue, broadcasts it (prompt ids, sampling,
// pixels) to every rank, and all ranks encode the images and run ivl_generate over the
// session's step, as `internvl chat` does. Tokens stream back into the job on rank 0
// (detokenised incrementally, stop strings applied). Between decode steps rank 0 decides
// whether to stop (client gone, per-request timeout, stop string, shutdown grace over) and
// broadcasts that decision, so every rank leaves the loop at the same step. One paged KV
// cache (parallel/scheduler.h) serves every job; its prefix cache keeps finished requests'
// blocks for the next turn of a conversation.
//
// One request at a time: running several jobs in one batch through the scheduler replaces
// the inside of this loop; the queue, job and HTTP layers stay.
#ifndef IVL_SERVE_ENGINE_H
#define IVL_SERVE_ENGINE_H

#include <signal.h>

#include "parallel/serve/serve_job.h"
#include "parallel/serve/serve_metrics.h"
#include "parallel/session.h"

typedef struct {
    ivl_session *s;
    int32_t stop_id;                      // the template's separator
    ivl_serve_queue *queue;               // rank 0
    ivl_serve_metrics *metrics;           // rank 0
    volatile sig_atomic_t *shutdown;      // set by SIGTERM/SIGINT (every rank; rank 0 decides)
    double grace_s;                       // after a shutdown signal, running jobs get this long
    void (*on_drain)(void *ctx);          // rank 0: stop accepting (called once)
    void *drain_ctx;
    ivl_kv_opts kvo;                      // the KV cache (--kv-mem ...)
} ivl_serve_engine;

// Runs until a shutdown signal has drained the queue. Collective. Returns 0.
int ivl_serve_engine_run(ivl_serve_engine *e);

#endif
