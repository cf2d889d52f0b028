// serve_prepare.h - a checked request -> a job ready for the engine: each image fetched
// (serve_media.h), decoded and tiled through core/image with the model's settings, the
// conversation through the model's chat template (core/text/chat.h) exactly as `internvl
// chat` builds it, so a greedy request gets the same tokens as chat. Runs on the HTTP
// threads; refuses what cannot fit (tiles, context) with a 4xx before anything is queued.
#ifndef IVL_SERVE_PREPARE_H
#define IVL_SERVE_PREPARE_H

#include "core/models/config.h"
#include "core/text/chat.h"
#include "parallel/serve/serve_job.h"
#include "parallel/serve/serve_media.h"
#include "parallel/serve/serve_request.h"

typedef struct {
    const ivl_model_config *cfg;
    const ivl_tokenizer *tok;     // read-only, shared by the HTTP threads (tokenizer.h)
    const ivl_chat_template *tp;
    int32_t stop_id;
    int64_t max_pixels;           // per image (decompression bombs)
    int max_total_tiles;          // per request
    int default_max_tokens;       // when the request gives none (clipped to the context)
    double timeout_s;             // per request, from arrival
    ivl_serve_media_opts media;
    int64_t context;              // positions a request may use: the model's context, or the
                                  // KV cache's when smaller (0: the model's)
} ivl_serve_model;

// Fills j's input (ids, pixels, sampling, limits, id, times). 0, or -1 with *e (4xx).
int ivl_serve_prepare(const ivl_serve_model *m, const ivl_serve_request *r, ivl_serve_job *j,
                      ivl_serve_error *e);

#endif
