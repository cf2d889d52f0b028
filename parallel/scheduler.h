// scheduler.h - continuous batching over the paged KV cache: requests in, one step's plan
// out, the step's tokens in, results out through callbacks. Every command (caption, chat,
// forward, serve, bench --phases e2e) runs its sequences through it (parallel/engine.h runs
// the plan on the model).
//
// The contract:
// - A request is a prompt (token ids; image rows where the prompt has image tokens), sampling
//   settings with its own seed, stop token and max_new_tokens, and callbacks: on_token for
//   every token as it is chosen (streaming), on_done once at the end (finished, cancelled or
//   failed). ivl_sched_submit copies the prompt.
// - Admission: first come, first served, while fewer than max_seqs run and the pool has free
//   (or evictable cached) blocks for the request's whole remaining prompt. Nothing is reserved
//   for tokens not generated yet: a sequence takes a block when its next position needs one.
// - A step: every running sequence brings its next rows within the step's token budget: one
//   decode row, or the next chunk of its prompt (prefill chunked by the budget and mixed with
//   the decode rows of the others). A prompt longer than ivl_llm_rope_exact_len is not cut
//   (its RoPE would differ) and waits for a step with room for it whole.
// - Preemption: when a sequence needs a block and none is left, the sequence admitted last is
//   paused: its blocks are released and it goes back to the head of the queue, to recompute its
//   prompt and the tokens generated so far (through the prefix cache when its blocks survive)
//   and continue. A request that cannot fit even alone is refused at submit.
// - Prefix reuse: full blocks are published under the hash of their whole prefix (token ids;
//   for image rows, the caller's key of the image's pixels and the row), so a request with the
//   same prefix (system prompt, earlier turns of a chat with their images) takes those blocks
//   by reference and starts its prefill after them; at least the last prompt token is always
//   computed (it gives the first token's logits). Only blocks computed within the exact-RoPE
//   length are shared.
// - Cancellation (ivl_sched_cancel) and failure of one request release its blocks at once and
//   do not disturb the others.
// - Deterministic: no clock, no I/O, no MPI. Ranks that make the same calls in the same order
//   (submit, cancel, plan, commit with the same tokens) hold the same state, so every rank of
//   a distributed job runs its own copy and they agree on every block table.
// Calls between ivl_sched_plan and ivl_sched_commit of a step: only ivl_sched_pick.
#ifndef IVL_PARALLEL_SCHEDULER_H
#define IVL_PARALLEL_SCHEDULER_H

#include <stdint.h>

#include "core/models/generate.h"
#include "core/models/llm.h"
#include "core/tensor.h"

typedef struct ivl_sched ivl_sched;

typedef struct {
    int64_t n_blocks;         // KV pool (ivl_kv_cache) blocks
    int block_size;           // positions per block
    int max_seqs;             // most sequences running at once
    int64_t step_tokens;      // most rows in one step (prefill chunks + decode rows)
    int64_t rope_exact_len;   // ivl_llm_rope_exact_len of the model
    int prefix_reuse;         // 1: share the blocks of identical prefixes
} ivl_sched_opts;

enum { IVL_SCHED_STOP = 0, IVL_SCHED_LENGTH, IVL_SCHED_CANCELLED, IVL_SCHED_ERROR };

typedef struct {
    int status;               // IVL_SCHED_*
    const int32_t *tokens;    // generated tokens (stop token included)
    int ntok;
    int64_t prompt_tokens;
    int64_t reused_tokens;    // prompt positions taken from the prefix cache (first admission)
    int preempted;            // times the sequence was paused and recomputed
    const char *error;        // IVL_SCHED_ERROR
} ivl_sched_done;

typedef struct {
    const int32_t *ids;
    int64_t n;
    const int64_t *img_row;   // per prompt token: row of *embeds, or -1 (NULL: text only)
    const uint64_t *row_key;  // per prompt token: a key of the image row's content (the
                              // image's pixel hash and the row) for prefix reuse; NULL: blocks
                              // from the first image row on are never shared
    const ivl_tensor *embeds; // image embeddings the rows refer to (not owned; the caller keeps
                              // them until on_done)
    int max_new_tokens;
    int32_t stop_id;
    ivl_sampling sampling;    // seed: this request's generator
    void (*on_token)(void *ctx, uint64_t id, int32_t token);
    void (*on_done)(void *ctx, uint64_t id, const ivl_sched_done *d);
    void *cb_ctx;
} ivl_sched_req;

ivl_sched *ivl_sched_new(const ivl_sched_opts *o);
void ivl_sched_free(ivl_sched *s);   // cancels what is left (on_done with CANCELLED)

// A request id (> 0), or 0 when the request can never run (on_done is not called):
// ivl_last_error() says why with the numbers (an empty prompt; prompt + max_new_tokens more
// positions than the whole pool holds).
uint64_t ivl_sched_submit(ivl_sched *s, const ivl_sched_req *r);
// Ends a waiting or running request now (on_done with CANCELLED) and frees its blocks.
// Unknown ids are ignored. Not between plan and commit.
void ivl_sched_cancel(ivl_sched *s, uint64_t id);
void ivl_sched_cancel_all(ivl_sched *s);
int ivl_sched_idle(const ivl_sched *s);      // nothing waiting or running
int ivl_sched_running(const ivl_sched *s);
int ivl_sched_waiting(const ivl_sched *s);
// Blocks a new request of n_prompt tokens needs beyond what is free now (0: it would be
// admitted at the next plan if a sequence slot is free and no request is queued before it).
int64_t ivl_sched_blocks_short(const ivl_sched *s, int64_t n_prompt);

// One step's plan (valid until ivl_sched_commit).
typedef struct {
    int nseq;
    const ivl_llm_seq *seqs;        // positions and block tables
    const uint64_t *req;            // the request of each sequence
    void *const *ctx;               // its cb_ctx
    const int32_t *ids;             // [rows] token ids
    const int64_t *img_row;         // [rows] row of the sequence's embeds, or -1
    const ivl_tensor *const *embeds;// per sequence (NULL: none)
    const int *emits;               // per sequence: its last row gives its next token
    int64_t rows;
    int any_img;
    int greedy;                     // every emitting sequence picks greedily, no penalty
} ivl_sched_step;

// Plans the next step: 0 when nothing can run (idle), else 1. May preempt (see above) and
// end requests that cannot continue (on_done with ERROR).
int ivl_sched_plan(ivl_sched *s, ivl_sched_step *st);
// The token of every emitting sequence from the step's logits [nseq, V] (rows of the
// non-emitting ones are ignored): its sampling settings, history and generator. Only the rank
// that has the logits calls it; picked[i] = -1 for the others.
void ivl_sched_pick(ivl_sched *s, const ivl_sched_step *st, float *logits, int64_t V,
                    int32_t *picked);
// Applies the step: positions advance, picked[i] of emitting sequences is appended (on_token),
// finished requests end (on_done) and free their blocks, full blocks are published.
void ivl_sched_commit(ivl_sched *s, const ivl_sched_step *st, const int32_t *picked);

typedef struct {
    int running, waiting;
    int peak_running;               // most sequences in one step
    int64_t blocks_total, blocks_used, blocks_cached, peak_blocks_used;
    int block_size;
    int64_t reused_tokens;          // prompt positions served from the prefix cache
    int64_t prefill_tokens, decode_tokens;
    int64_t preemptions;
    int64_t steps;
} ivl_sched_stats;
void ivl_sched_get_stats(const ivl_sched *s, ivl_sched_stats *out);

#endif
