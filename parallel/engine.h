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

// One step: 0 when the scheduler had nothing to run, else 1.
int ivl_engine_step(ivl_engine *e);
void ivl_engine_free(ivl_engine *e);   // the scratch (not the scheduler)

#endif
