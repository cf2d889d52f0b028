// internvl.c - composition of the sub-models (spec 3 and 8.2).
#include "core/models/internvl.h"
#include "core/check.h"
#include "core/log.h"

#include <string.h>

int ivl_model_load(ivl_model *m, ivl_backend *be, const ivl_weight_reader *r,
                   const ivl_model_config *cfg, const ivl_llm_shard *shard,
                   const ivl_tp_ctx *tp, int load_vision) {
    ivl_tp_ctx single = ivl_tp_single();
    return ivl_model_load_ex(m, be, r, cfg, shard, tp, load_vision ? &single : NULL);
}

int ivl_model_load_ex(ivl_model *m, ivl_backend *be, const ivl_weight_reader *r,
                      const ivl_model_config *cfg, const ivl_llm_shard *shard,
                      const ivl_tp_ctx *tp, const ivl_tp_ctx *vit_tp) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    m->tp = tp ? *tp : ivl_tp_single();
    // The vocabulary is whatever the checkpoint's embedding holds (Phi-3: 32020 or 32064).
    int nd = 0;
    int64_t shape[4] = {0};
    const char *vocab_tensor = r->has(r->ctx, "llm.embed") ? "llm.embed" : "llm.lm_head";
    if (r->shape(r->ctx, vocab_tensor, &nd, shape) != 0) return -1;
    if (nd != 2 || shape[1] != cfg->llm.hidden)
        return ivl_errorf("%s must be [vocab, %d]", vocab_tensor, cfg->llm.hidden);
    m->cfg.llm.vocab = (int)shape[0];
    if (shard) {
        m->shard = *shard;
        // the shard was computed from a config whose vocab may differ: recompute the vocab split
        ivl_llm_shard s2;
        if (ivl_llm_shard_init(&m->cfg.llm, shard->tp_rank, shard->tp_size, shard->layer0,
                               shard->layer1, &s2) != 0) return -1;
        m->shard = s2;
    } else if (ivl_llm_shard_init(&m->cfg.llm, 0, 1, 0, cfg->llm.layers, &m->shard) != 0) {
        return -1;
    }
    if (vit_tp) {
        m->vit_tp = *vit_tp;
        ivl_vit_shard vs;
        if (ivl_vit_shard_init(&m->cfg.vit, vit_tp->rank, vit_tp->size, &vs) != 0) return -1;
        if (ivl_vit_load(be, r, &m->cfg.vit, &vs, &m->vit) != 0) return -1;
        if (ivl_projector_load(be, r, &m->cfg.proj, &m->proj) != 0) return -1;
        m->has_vision = 1;
    }
    return ivl_llm_load(be, r, &m->cfg.llm, &m->shard, &m->llm);
}

void ivl_model_free(ivl_model *m) {
    if (m->has_vision) {
        ivl_vit_free(m->be, &m->cfg.vit, &m->vit);
        ivl_projector_free(m->be, &m->proj);
    }
    ivl_llm_free(m->be, &m->cfg.llm, &m->shard, &m->llm);
}

void ivl_model_encode_images(ivl_model *m, const ivl_tensor *pixels_host, ivl_tensor *embeds,
                             const ivl_dump *dump) {
    IVL_CHECK(m->has_vision, "this rank holds no vision model");
    ivl_backend *be = m->be;
    const int64_t tiles = pixels_host->shape[0];
    const int64_t P = (int64_t)m->cfg.vit.grid * m->cfg.vit.grid;
    ivl_tensor pixels = ivl_backend_from_host(be, pixels_host);
    ivl_tensor vit_out = ivl_backend_alloc_2d(be, tiles * P, m->cfg.vit.hidden);
    ivl_vit_forward(be, &m->cfg.vit, &m->vit, &m->vit_tp, &pixels, &vit_out, dump);
    *embeds = ivl_backend_alloc_2d(be, tiles * m->cfg.proj.tokens_per_tile, m->cfg.proj.out_dim);
    ivl_projector_forward(be, &m->cfg.proj, &m->proj, m->cfg.vit.grid, &vit_out, embeds, dump);
    ivl_dump_tensor(dump, "vision_embeds", be, embeds);
    be->free(be, &pixels);
    be->free(be, &vit_out);
}

void ivl_model_embed_step(ivl_model *m, const int32_t *ids, const int64_t *img_row, int64_t n,
                          const ivl_tensor *image_embeds, ivl_tensor *x) {
    ivl_backend *be = m->be;
    ivl_llm_embed(be, &m->cfg.llm, &m->shard, &m->llm, &m->tp, ids, n, x);
    if (!img_row) return;
    // Overwrite image positions; consecutive image rows are copied as one block.
    for (int64_t i = 0; i < n;) {
        if (img_row[i] < 0) {
            i++;
            continue;
        }
        int64_t j = i + 1;
        while (j < n && img_row[j] == img_row[j - 1] + 1) j++;
        IVL_CHECK(image_embeds && img_row[j - 1] < ivl_tensor_rows(image_embeds),
                  "image row %lld out of the %lld image embeddings", (long long)img_row[j - 1],
                  (long long)(image_embeds ? ivl_tensor_rows(image_embeds) : 0));
        ivl_tensor dst = ivl_tensor_slice(x, i, j - i);
        ivl_tensor src = ivl_tensor_slice(image_embeds, img_row[i], j - i);
        be->copy(be, &dst, &src);
        i = j;
    }
}
