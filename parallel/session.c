// session.c - see session.h.
#include "parallel/session.h"
#include "comm/comm.h"
#include "core/check.h"

#include <string.h>

int ivl_session_open(ivl_session *s, const char *model_path, const char *device,
                     const ivl_parallel_opts *popt) {
    memset(s, 0, sizeof *s);
    ivl_parallel_opts one = {1, 1, 1, NULL, 0};
    if (!popt) popt = &one;
    s->rank = ivl_comm_world_rank();
    s->distributed = ivl_comm_world_size() > 1 || popt->tp > 1 || popt->pp > 1 || popt->vit_tp > 1;
    if (ivl_model_source_open(model_path, &s->src) != 0) return -1;
    ivl_fault_point("load");
    if (ivl_model_source_tokenizer(&s->src, &s->tok) != 0) return -1;
    s->be = ivl_backend_create(device ? device : "cpu", ivl_comm_local_rank());
    if (s->distributed) {
        if (ivl_dist_init(&s->dist, s->be, &s->src.reader, &s->src.cfg, popt) != 0) return -1;
        s->model = &s->dist.model;
    } else {
        if (ivl_model_load(&s->local, s->be, &s->src.reader, &s->src.cfg, NULL, NULL, 1) != 0)
            return -1;   // the loader's message names the file and the tensor
        s->model = &s->local;
    }
    return 0;
}

void ivl_session_close(ivl_session *s) {
    if (s->embeds.data) s->be->free(s->be, &s->embeds);
    if (s->distributed) {
        ivl_dist_free(&s->dist);
    } else if (s->model) {
        if (s->kv_ready) ivl_kv_cache_free(s->be, &s->local.shard, &s->kv);
        ivl_model_free(&s->local);
    }
    if (s->be) ivl_backend_destroy(s->be);
    if (s->tok) ivl_tokenizer_free(s->tok);
    ivl_model_source_close(&s->src);
    memset(s, 0, sizeof *s);
}

void ivl_session_encode_images(ivl_session *s, const ivl_tensor *pixels_host, const ivl_dump *dump) {
    if (s->embeds.data) s->be->free(s->be, &s->embeds);
    memset(&s->embeds, 0, sizeof s->embeds);
    if (!pixels_host || !pixels_host->data || pixels_host->shape[0] == 0) return;
    if (s->distributed)
        ivl_dist_encode_images(&s->dist, pixels_host, &s->embeds);
    else
        ivl_model_encode_images(&s->local, pixels_host, &s->embeds, dump);
}

void ivl_session_kv_init(ivl_session *s, int slots, int64_t max_ctx) {
    if (s->distributed) {
        ivl_dist_kv_init(&s->dist, slots, max_ctx);
        return;
    }
    if (s->kv_ready) ivl_kv_cache_free(s->be, &s->local.shard, &s->kv);
    ivl_kv_cache_init(s->be, &s->local.cfg.llm, &s->local.shard, slots, max_ctx, &s->kv);
    s->kv_ready = 1;
}

ivl_step ivl_session_step(ivl_session *s) {
    const ivl_tensor *img = s->embeds.data ? &s->embeds : NULL;
    if (s->distributed) {
        s->dist.image_embeds = img;
        return ivl_dist_step(&s->dist);
    }
    s->lctx = (ivl_local_step){&s->local, &s->kv, img};
    return ivl_model_local_step(&s->lctx);
}
