// engine.h - runs the scheduler's steps on the model: plan (parallel/scheduler.h), the
// forward of the planned rows through an ivl_step (one rank or any layout, parallel/dist.h),
// the token of every emitting sequence (greedy on the device when the whole step is greedy
// and the step can, else sampled from the logits on the sampler rank and shared), commit.
// Every rank of a job calls ivl_engine_step in lockstep with schedulers in the same state.
#ifndef IVL_PARALLEL_ENGINE_H
#define IVL_PARALLEL_ENGINE_H

#include "core/backend.h"
#include "core/models/generate.h"
#include "parallel/scheduler.h"

typedef struct {
    ivl_sched *sched;
    ivl_step step;
    ivl_backend *be;
    const ivl_tensor **step_embeds;   // where the step reads the image rows of a step from
    // Optional: the dump hook, for the next step only (then cleared); keep_logits (until the
    // caller clears it): each step's logits [nseq, V] go to on_logits on the sampler rank
    // (forward's prefill logits, chat's dump) and no pick is made on the device.
    const ivl_dump *dump;
    int keep_logits;
    void (*on_logits)(void *ctx, const ivl_sched_step *st, const float *logits, int64_t V);
    void *logits_ctx;
    // Optional: after each step's forward, before its commit (every rank): timings.
    void (*on_step)(void *ctx, const ivl_sched_step *st, double seconds);
    void *step_ctx;
    // scratch
    float *logits;
    int32_t *picked;
    int cap;
    double last_step_s;               // wall time of the last forward (timings)
} ivl_engine;

// The image embeddings of one batch of new images (a tick of caption or serve), shared by the
// requests that refer to them until the last of them ends (a preempted request recomputes its
// prompt from them). ivl_emb_batch_new takes *t over (leaves it empty).
typedef struct {
    ivl_tensor t;
    int refs;
} ivl_emb_batch;
ivl_emb_batch *ivl_emb_batch_new(ivl_tensor *t, int refs);
void ivl_emb_batch_unref(ivl_backend *be, ivl_emb_batch *b);   // NULL ok

// One step: 0 when the scheduler had nothing to run, else 1.
int ivl_engine_step(ivl_engine *e);

// Where requests come from and where results go, for ivl_engine_run (every rank).
typedef struct {
    // Before each step: brings new requests into the scheduler (every rank submits the same
    // ones in the same order) and decides whether to go on: 0 = step, nonzero = end the loop
    // with that code (every rank must return the same).
    int (*feed)(void *ctx, ivl_engine *e, uint64_t tick);
    // After each step (may be NULL): results reach their sink, progress.
    void (*drain)(void *ctx, ivl_engine *e, uint64_t tick);
    void *ctx;
} ivl_engine_io;

// The loop every long-running command shares: feed, step, drain, until feed says stop.
// Returns feed's code.
int ivl_engine_run(ivl_engine *e, const ivl_engine_io *io);
void ivl_engine_free(ivl_engine *e);   // the scratch (not the scheduler)

#endif
