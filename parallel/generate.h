// generate.h - prefill + decode of a batch of prompts through the engine's scheduler (the
// commands' common case: chat, forward, serve, bench). Every rank calls it in lockstep.
// The scheduler keeps its prefix cache between calls, so a chat turn prefills only what the
// previous turns did not already compute.
#ifndef IVL_PARALLEL_GENERATE_H
#define IVL_PARALLEL_GENERATE_H

#include <stdint.h>

#include "core/models/dump.h"
#include "parallel/engine.h"

typedef struct {
    const int32_t *ids;        // prompt token ids
    int64_t n;
    const int64_t *img_row;    // per prompt token: row of *embeds or -1; NULL = none
    const uint64_t *row_key;   // per prompt token: content key of image rows (prefix reuse,
                               // see ivl_image_row_keys); NULL: image rows are never shared
    const ivl_tensor *embeds;  // the image embeddings the rows refer to
} ivl_gen_prompt;

typedef struct {
    int max_new_tokens;
    int32_t stop_id;           // template separator; generation stops after emitting it
    ivl_sampling sampling;     // each prompt draws from its own generator seeded with seed
    // Called for every generated token as it is chosen (streaming); may be NULL.
    void (*on_token)(void *ctx, int seq, int32_t token);
    // Optional: called after each step while sequences remain; a nonzero return ends
    // generation there (cancel, timeout, a stop string). With several ranks every rank must
    // get the same answer (the caller agrees it, e.g. a broadcast).
    int (*should_stop)(void *ctx);
    void *cb_ctx;
    float *prefill_logits;     // optional out: [B, V] logits at each prompt's last position
                               // (sampler rank; needs every prompt admitted in the first step)
    int64_t *reused_tokens;    // optional out: prompt positions served from the prefix cache
} ivl_gen_params;

// Generates for B prompts. out is [B, max_new_tokens] (stop token included, then -1);
// out_len[i] = tokens produced. The dump hook sees the first step only. Ends the job with a
// clear message when a prompt can never fit the KV cache.
void ivl_generate(ivl_engine *e, const ivl_gen_prompt *prompts, int B, const ivl_gen_params *p,
                  int32_t *out, int *out_len, const ivl_dump *dump);

// Content keys for the image rows of a prompt: key[t] = hash(the pixels of the image that
// row img_row[t] belongs to, the row's index in that image) for image tokens, 0 elsewhere.
// pixels: host [tiles, 3, S, S]; tiles[i] tiles of image i in order; rows_per_tile rows each.
void ivl_image_row_keys(const float *pixels, int64_t tile_elems, const int *tiles, int n_images,
                        int64_t rows_per_tile, const int64_t *img_row, int64_t n, uint64_t *key);

#endif
