// serve_prepare.c - see serve_prepare.h.
#include "parallel/serve/serve_prepare.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/check.h"
#include "core/image/image.h"

static atomic_ulong g_next_id;

// Decodes and tiles every image into one [tiles, 3, S, S] buffer, in image order.
static int prepare_images(const ivl_serve_model *m, const ivl_serve_request *r, int *tiles,
                          ivl_serve_job *j, ivl_serve_error *e) {
    const ivl_model_config *cfg = m->cfg;
    ivl_preprocess_opts po = ivl_preprocess_defaults();
    po.image_size = cfg->vit.image_size;
    po.min_tiles = cfg->min_dynamic_patch;
    po.max_tiles = r->max_tiles ? r->max_tiles : cfg->max_dynamic_patch;
    po.use_thumbnail = cfg->use_thumbnail;
    po.max_pixels = m->max_pixels;
    if (po.min_tiles > po.max_tiles) po.min_tiles = po.max_tiles;
    const size_t tile_elems = 3 * (size_t)po.image_size * (size_t)po.image_size;
    for (int i = 0; i < r->n_images; i++) {
        char param[64];
        snprintf(param, sizeof param, "messages.content.image_url[%d]", i);
        uint8_t *bytes;
        size_t n;
        if (ivl_serve_media_fetch(r->image_urls[i], &m->media, param, &bytes, &n, e)) return -1;
        ivl_image img;
        int st = ivl_image_decode(bytes, n, param, m->max_pixels, &img);
        free(bytes);
        if (st != IVL_IMAGE_OK) {
            ivl_serve_fail(e, 400, param, "%s%s", ivl_last_error(),
                           st == IVL_IMAGE_E_TOO_LARGE ? " (server option --max-pixels)"
                           : st == IVL_IMAGE_E_NOT_IMAGE || st == IVL_IMAGE_E_UNSUPPORTED
                               ? " (send a JPEG or PNG image)" : "");
            e->code = "invalid_image";
            return -1;
        }
        ivl_tile_grid grid;
        void *pix = NULL;
        int rc = ivl_image_preprocess(&img, &po, &grid, &pix);
        ivl_image_free(&img);
        if (rc != 0) return ivl_serve_fail(e, 400, param, "%s", ivl_last_error());
        if (j->tiles + grid.ntiles > m->max_total_tiles) {
            free(pix);
            return ivl_serve_fail(e, 400, param, "the images need more than %d tiles (server option "
                                  "--max-total-tiles); send fewer images or a smaller max_tiles",
                                  m->max_total_tiles);
        }
        j->pixels = ivl_realloc(j->pixels, (size_t)(j->tiles + grid.ntiles) * tile_elems * sizeof(float));
        memcpy(j->pixels + (size_t)j->tiles * tile_elems, pix,
               (size_t)grid.ntiles * tile_elems * sizeof(float));
        free(pix);
        tiles[i] = grid.ntiles;
        j->tiles += grid.ntiles;
    }
    return 0;
}

int ivl_serve_prepare(const ivl_serve_model *m, const ivl_serve_request *r, ivl_serve_job *j,
                      ivl_serve_error *e) {
    const ivl_model_config *cfg = m->cfg;
    j->t_arrival = ivl_serve_now();
    j->deadline = j->t_arrival + m->timeout_s;
    j->created = (int64_t)time(NULL);
    snprintf(j->id, sizeof j->id, "chatcmpl-%lx%06lx", (unsigned long)j->created,
             (unsigned long)atomic_fetch_add(&g_next_id, 1) & 0xffffff);
    int *tiles = ivl_calloc((size_t)(r->n_images ? r->n_images : 1), sizeof *tiles);
    if (prepare_images(m, r, tiles, j, e)) {
        free(tiles);
        return -1;
    }
    // History answers as `internvl chat` keeps them: cut at the separator, stripped (spec 8.3),
    // so a client sending back the streamed text gets chat's next prompt.
    ivl_chat_turn *hist = ivl_calloc((size_t)(r->n_history ? r->n_history : 1), sizeof *hist);
    for (int i = 0; i < r->n_history; i++) {
        hist[i].user = r->history[i].user;
        hist[i].assistant = ivl_chat_response(m->tp, r->history[i].assistant);
    }
    const char *system = r->system ? r->system : cfg->system_message[0] ? cfg->system_message : NULL;
    ivl_chat_prompt p = {.system = system, .history = hist, .n_history = r->n_history,
                         .question = r->question, .tiles = tiles, .n_images = r->n_images,
                         .tokens_per_tile = cfg->proj.tokens_per_tile};
    ivl_token_list ids = {0};
    int rc = ivl_chat_encode(m->tok, m->tp, &p, &ids, NULL);
    for (int i = 0; i < r->n_history; i++) free((char *)hist[i].assistant);
    free(hist);
    free(tiles);
    if (rc != 0) {
        ivl_token_list_free(&ids);
        return ivl_serve_fail(e, 400, "messages", "%s", ivl_last_error());
    }
    // The context is max_position_embeddings even where dynamic RoPE scaling would go on
    // (`internvl chat` allows that), or what the server's KV cache holds when that is less.
    const int ctx = m->context > 0 && m->context < cfg->llm.max_position ? (int)m->context
                                                                          : cfg->llm.max_position;
    int max_new = r->max_tokens;
    if (!max_new) {
        max_new = m->default_max_tokens;
        if (ids.n + max_new > ctx) max_new = ctx - ids.n;
    }
    if (max_new < 1 || ids.n + max_new > ctx) {
        ivl_serve_fail(e, 400, "messages", "the conversation needs %d prompt tokens (%d image "
                       "tiles) + %d new tokens, more than the context of %d positions: "
                       "send fewer images, a smaller max_tiles or max_tokens", ids.n, j->tiles,
                       max_new < 1 ? 1 : max_new, ctx);
        e->code = "context_length_exceeded";
        ivl_token_list_free(&ids);
        return -1;
    }
    j->ids = ids.ids;   // the list's buffer becomes the job's
    j->n_ids = ids.n;
    j->max_new = max_new;
    j->sampling = ivl_sampling_default();
    j->sampling.do_sample = !r->greedy;
    j->sampling.temperature = r->temperature;
    j->sampling.top_p = r->top_p;
    j->sampling.top_k = 0;   // OpenAI has no top-k
    j->sampling.seed = r->has_seed ? r->seed : 0;
    for (int i = 0; i < r->n_stop; i++) j->stop[i] = ivl_strdup(r->stop[i]);
    j->n_stop = r->n_stop;
    j->stream = r->stream;
    j->include_usage = r->include_usage;
    return 0;
}
