// generate.h - the "step" (one forward of a batch of sequences over the paged KV cache) and
// the token choice, greedy or sampled with Hugging Face generate semantics. The step hides
// where the model runs: one rank (ivl_model_local_step) or any layout (parallel/dist.h). The
// loop that admits, steps and finishes sequences is parallel/scheduler.h.
#ifndef IVL_MODELS_GENERATE_H
#define IVL_MODELS_GENERATE_H

#include <stdint.h>

#include "core/models/dump.h"
#include "core/models/internvl.h"
#include "core/models/llm.h"

typedef struct ivl_step {
    void *ctx;
    int64_t vocab;
    // One forward step: sequence i contributes seqs[i].n rows of ids (and img_row, where
    // img_row[r] >= 0 takes row img_row[r] of the image embeddings instead of the token
    // embedding; NULL = text only). Writes each sequence's last-row logits to logits [nseq, V].
    void (*run)(void *ctx, const ivl_llm_seq *seqs, int nseq, const int32_t *ids,
                const int64_t *img_row, float *logits, const ivl_dump *dump);
    // Optional (NULL: logits everywhere). A distributed step delivers the logits to one rank
    // only (world rank 0): is_sampler says whether this rank has them, and share_tokens gives
    // the n tokens that rank picked to every rank (collective).
    int (*is_sampler)(void *ctx);
    void (*share_tokens)(void *ctx, int32_t *tokens, int n);
    // Optional (NULL: greedy picks from the logits on the host). As run, but writes each
    // sequence's greedy token (first maximum of its logits) to next_ids [nseq] instead of
    // the logits: on a GPU only nseq ids come back per step instead of nseq x V floats.
    // Used for greedy decoding without a repetition penalty.
    void (*run_argmax)(void *ctx, const ivl_llm_seq *seqs, int nseq, const int32_t *ids,
                       const int64_t *img_row, int32_t *next_ids);
} ivl_step;

// The forward of one step on the layers this rank holds (the whole model on one rank, or a
// pipeline stage's share): the first stage embeds the rows (ids, and image rows from
// image_embeds where img_row[r] >= 0; dump "llm.embeds"), a later stage takes x [N, D] as
// received from the previous one; then its layers (dump "llm.layer.i"). x [N, D] is allocated
// by the caller, N = the sum of seqs[i].n.
void ivl_model_stage_forward(ivl_model *m, ivl_kv_cache *kv, const ivl_llm_seq *seqs, int nseq,
                             const int32_t *ids, const int64_t *img_row,
                             const ivl_tensor *image_embeds, ivl_tensor *x, const ivl_dump *dump);
// The row of each sequence's last token in a step's rows (malloc'ed [nseq]); *n_rows = N.
int64_t *ivl_step_last_rows(const ivl_llm_seq *seqs, int nseq, int64_t *n_rows);

// The step of one rank holding the whole model, for programs without MPI (bench/gpu_e2e).
// The engine's commands run every layout, one rank included, through parallel/dist.h.
typedef struct {
    ivl_model *model;
    ivl_kv_cache *kv;
    const ivl_tensor *image_embeds;   // backend [rows, D] or NULL
} ivl_local_step;
ivl_step ivl_model_local_step(ivl_local_step *ctx);

typedef struct {
    int do_sample;              // 0: greedy (argmax), the default of the official chat()
    float temperature;          // HF default 1.0
    int top_k;                  // HF default 50 (0 = off)
    float top_p;                // HF default 1.0
    float repetition_penalty;   // HF default 1.0 (applied to the tokens generated so far)
    uint64_t seed;
} ivl_sampling;

ivl_sampling ivl_sampling_default(void);

// The sampling distribution over the vocabulary after Hugging Face's logits processors, in
// generate()'s order: repetition penalty, temperature, top-k, top-p (then softmax).
// logits [V] is modified in place; probs [V] receives the probabilities (0 = removed).
void ivl_sample_probs(float *logits, int64_t V, const int32_t *history, int n_history,
                      const ivl_sampling *s, float *probs);
// Picks the next token from logits [V] (modified in place) given the tokens generated so far:
// argmax when !do_sample, else one draw from ivl_sample_probs with the seeded generator.
int32_t ivl_sample_next(float *logits, int64_t V, const int32_t *history, int n_history,
                        const ivl_sampling *s, uint64_t *rng_state);

#endif
