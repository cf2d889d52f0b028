// serve_job.h - one chat completion in flight, shared by the HTTP thread that made it and
// the engine thread that runs it, and the bounded queue between them.
//
// The HTTP side fills the input, queues the job and waits on its output; the engine appends
// text as tokens come, and finishes it. A client that goes away sets `cancel`; the engine
// sees it before its next step and cancels the sequence (its KV blocks are freed then).
// Reference counted: the last of the two sides frees it.
#ifndef IVL_SERVE_JOB_H
#define IVL_SERVE_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/models/generate.h"
#include "parallel/serve/serve_request.h"

typedef struct ivl_serve_job {
    // ---- input: set before the job is queued, read-only afterwards ----
    char id[48];                 // "chatcmpl-..."
    int64_t created;             // unix seconds
    int32_t *ids;                // prompt ids [n_ids]
    int n_ids;
    float *pixels;               // [tiles, 3, S, S] or NULL
    int tiles;
    int max_new;
    ivl_sampling sampling;
    char *stop[IVL_SERVE_MAX_STOP];
    int n_stop;
    int stream, include_usage;
    double t_arrival;            // monotonic seconds
    double deadline;             // monotonic seconds; the engine stops the job then
    // ---- output, under mu ----
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *text;                  // the answer so far (stop strings cut off)
    size_t len, cap;
    size_t ready;                // bytes of text that no stop string can take back
    int n_gen;                   // completion tokens (the end-of-turn separator not counted)
    int cached_tokens;           // prompt tokens taken from the prefix cache (set at the end)
    int started;                 // the engine took it
    int done;
    const char *finish_reason;   // "stop", "length", "timeout", "cancelled", "shutdown",
                                 // "error" (the engine could not run it; the log says why)
    double t_first;              // when the first token came (0: none yet)
    // ---- control ----
    atomic_int cancel;           // 1: the client went away
    int refs;                    // under mu
} ivl_serve_job;

ivl_serve_job *ivl_serve_job_new(void);   // refs = 1
void ivl_serve_job_ref(ivl_serve_job *j);
void ivl_serve_job_unref(ivl_serve_job *j);

// Engine side. append: adds decoded text; returns 1 when a stop string appeared (the text is
// cut just before it and generation should end), else 0. finish: sets the reason, wakes
// the waiter.
int ivl_serve_job_append(ivl_serve_job *j, const char *piece, size_t n);
void ivl_serve_job_token(ivl_serve_job *j, double now);   // counts a completion token
void ivl_serve_job_finish(ivl_serve_job *j, const char *reason);

// HTTP side: waits until more than `have` bytes are ready or the job is done, at most
// timeout_s. Returns the ready byte count (under the lock; *done set).
size_t ivl_serve_job_wait(ivl_serve_job *j, size_t have, double timeout_s, int *done);

// A bounded FIFO of jobs.
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ivl_serve_job **items;
    int cap, head, n;
    int closed;
} ivl_serve_queue;

void ivl_serve_queue_init(ivl_serve_queue *q, int cap);
void ivl_serve_queue_free(ivl_serve_queue *q);   // unrefs what is left
// 0: queued (the queue holds a reference); -1: full; -2: closed (shutting down).
int ivl_serve_queue_push(ivl_serve_queue *q, ivl_serve_job *j);
// The oldest job (the caller owns its reference), or NULL after timeout_s.
ivl_serve_job *ivl_serve_queue_pop(ivl_serve_queue *q, double timeout_s);
// The oldest job left in the queue (the queue keeps its reference), or NULL after timeout_s.
// For the queue's only consumer: the job stays valid until that consumer pops it.
ivl_serve_job *ivl_serve_queue_peek(ivl_serve_queue *q, double timeout_s);
// Takes the queued jobs for which match(ctx, job) is nonzero, at most max, into out (the
// caller owns their references); the others keep their order. Returns how many.
int ivl_serve_queue_take_if(ivl_serve_queue *q, int (*match)(void *ctx, ivl_serve_job *j),
                            void *ctx, ivl_serve_job **out, int max);
int ivl_serve_queue_len(ivl_serve_queue *q);
void ivl_serve_queue_close(ivl_serve_queue *q);

double ivl_serve_now(void);   // CLOCK_MONOTONIC seconds

#endif
