// serve_engine.h - the engine loop of `internvl serve`, on every rank (the only thread that
// calls MPI): continuous batching over the session's scheduler (parallel/scheduler.h).
//
// Each tick rank 0 decides, and every rank then does the same in the same order:
//  1. which running requests end now (client gone, per-request timeout, a stop string in the
//     text, shutdown grace over): their ids, cancelled in the scheduler (KV blocks freed);
//  2. which queued jobs join the batch: as many as a sequence slot (--max-seqs) and free KV
//     blocks allow; their prompt ids, sampling settings and pixels. Every rank encodes the
//     tick's new images in one batch (kept until the last of their requests ends) and submits
//     the requests, with content keys of their image rows for prefix reuse;
//  3. one engine step: prefill chunks of new requests mixed with one decode row of each
//     running one. The loop is the engine's (ivl_engine_run): 1 and 2 are its feed, the
//     gauges its drain.
// Rank 0 broadcasts one message per tick (a header, then the cancel ids, the new jobs'
// headers, ids and pixels). Tokens stream into each job on rank 0 (detokenised
// incrementally, stop strings applied) through the scheduler's on_token; on_done finishes the
// job (stop, length, cancelled, timeout, shutdown, error) with its usage, including the prompt
// tokens the prefix cache served. While nothing runs, rank 0 waits on the queue and the other
// ranks wait for the next header in a polled non-blocking broadcast (no spinning).
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
    int max_seqs;                         // most requests in the running batch (--max-seqs)
} ivl_serve_engine;

// Runs until a shutdown signal has drained the queue. Collective. Returns 0.
int ivl_serve_engine_run(ivl_serve_engine *e);

#endif
