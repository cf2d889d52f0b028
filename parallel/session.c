// session.c - see session.h.
#include "parallel/session.h"
#include "comm/comm.h"
#include "core/check.h"
#include "core/cuda/ivl_cuda.h"
#include "core/log.h"
#include "parallel/rank_device.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

// This rank's share of the free memory: the GPU's free memory (split between the ranks
// sharing it), or on the CPU backend MemAvailable (free + reclaimable page cache, not MemFree:
// reading the model file fills the page cache, which the kernel gives back) split between the
// node's ranks. 0 when it cannot be read.
static int rank_free_memory(ivl_backend *be, const ivl_rank_device *dev, size_t *free_b,
                            size_t *total_b) {
    const ivl_cuda_ext *x = ivl_cuda_ext_of(be);
    if (x) {
        x->mem_info(be, free_b, total_b);
        if (dev->gpu.shared) {
            int per_gpu = (dev->gpu.nranks + dev->gpu.visible - 1) / dev->gpu.visible;
            *free_b /= (size_t)per_gpu;
        }
        return 1;
    }
    unsigned long long kb = 0;
    char line[256];
    FILE *f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    long page = sysconf(_SC_PAGESIZE), all = sysconf(_SC_PHYS_PAGES);
    if (!kb || page <= 0) return 0;
    int local = ivl_comm_local_size() > 0 ? ivl_comm_local_size() : 1;
    *free_b = (size_t)(kb * 1024ULL / (unsigned long long)local);
    *total_b = (size_t)page * (size_t)all;
    return 1;
}

// On a GPU, checks before loading that this rank's share of the weights fits, so a layout
// that cannot work fails at once with the numbers and a layout that would, instead of an
// out-of-memory error halfway through loading.
// On the CPU backend the same check uses the node's available RAM shared by the node's ranks
// (weights are f32 there: 4 bytes a parameter).
// Ranks sharing one GPU (--gpu-share) share its free memory too.
// A model file with quantized tensors (weights/SCHEMA.md) is counted from its tensors.
static int check_device_memory(ivl_backend *be, const ivl_model_config *cfg,
                               const ivl_parallel_opts *o, const ivl_rank_device *dev,
                               ivl_model_file *mf) {
    const ivl_cuda_ext *x = ivl_cuda_ext_of(be);
    size_t free_b = 0, total_b = 0;
    if (!rank_free_memory(be, dev, &free_b, &total_b)) return 0;
    const double dt = (double)ivl_dtype_size(be->dtype), GiB = 1024.0 * 1024 * 1024;
    double vision = o->text_only ? 0.0
                                 : (ivl_vit_param_count(&cfg->vit) / (double)o->vit_tp +
                                    ivl_projector_param_count(&cfg->proj)) * dt;
    ivl_llm_config l = cfg->llm;
    double llm_all = ivl_llm_param_count(&l) * dt;
    int quant = 0;
    double qb = 0, vb = 0, pb = 0;
    if (mf && !ivl_model_file_part_bytes(mf, "llm.", (int)dt, &qb, &quant) && quant) {
        llm_all = qb;
        if (!o->text_only && !ivl_model_file_part_bytes(mf, "vision.", (int)dt, &vb, NULL) &&
            !ivl_model_file_part_bytes(mf, "mlp1.", (int)dt, &pb, NULL))
            vision = vb / o->vit_tp + pb;
    }
    double llm = llm_all / (o->tp * o->pp) * 1.05;   // stages are not perfectly even
    double work = 0.25 * GiB + 0.05 * (vision + llm);   // activations, KV cache, workspace
    double need = vision + llm + work;
    LOG_DEBUG("device memory: this rank needs about %.2f GiB (vision %.2f, LLM %.2f, working "
              "%.2f), %.2f of %.2f GiB free", need / GiB, vision / GiB, llm / GiB, work / GiB,
              free_b / GiB, total_b / GiB);
    if (need <= (double)free_b) return 0;
    // The smallest number of LLM ranks that fits, as tp (up to 8, a node) x pp.
    double room = (double)free_b - vision - work;
    int ranks = room > 0 ? (int)(llm_all * 1.05 / room) + 1 : 0;
    char hint[160];
    if (ranks > 0) {
        int tp = ranks < 8 ? ranks : 8, pp = (ranks + tp - 1) / tp;
        snprintf(hint, sizeof hint, "a layout with at least %d LLM ranks, e.g. --tp %d --pp %d%s",
                 ranks, tp, pp, o->vit_tp == 1 ? " (and --vit-tp to split the ViT)" : "");
    } else {
        snprintf(hint, sizeof hint, "--vit-tp to split the ViT over ranks, and more ranks for "
                 "the LLM");
    }
    return ivl_errorf("not enough %s memory for --tp %d --pp %d --vit-tp %d: this rank needs "
                      "about %.1f GiB (weights: vision %.1f GiB, LLM share %.1f GiB; working "
                      "memory %.1f GiB) but %s has %.1f of %.1f GiB free; use %s",
                      x ? "GPU" : "host", o->tp, o->pp, o->vit_tp, need / GiB, vision / GiB, llm / GiB, work / GiB,
                      x ? "the GPU" : "this rank's share of the node's RAM", free_b / GiB,
                      total_b / GiB, hint);
}

int ivl_session_open_source(ivl_session *s, const char *model_path) {
    memset(s, 0, sizeof *s);
    s->rank = ivl_comm_world_rank();
    if (ivl_model_source_open(model_path, &s->src) != 0) return -1;
    ivl_fault_point("load");
    if (ivl_model_source_tokenizer(&s->src, &s->tok) != 0) return -1;
    return 0;
}

int ivl_session_load(ivl_session *s, const char *device, const ivl_parallel_opts *popt) {
    ivl_parallel_opts one = {.tp = 1, .pp = 1, .vit_tp = 1};
    s->popt = popt ? *popt : one;
    popt = &s->popt;
    s->distributed = ivl_comm_world_size() > 1 || popt->tp > 1 || popt->pp > 1 || popt->vit_tp > 1;
    s->be = ivl_rank_backend_open(device ? device : "cpu", popt->gpu_share, &s->dev);
    s->popt.gpu_shared = s->dev.gpu.shared;
    if (check_device_memory(s->be, &s->src.cfg, popt, &s->dev, s->src.mf) != 0) return -1;
    // One path for every layout: one rank is the 1 x 1 layout, whose collectives do nothing.
    if (ivl_dist_init(&s->dist, s->be, &s->src.reader, &s->src.cfg, popt) != 0) return -1;
    s->model = &s->dist.model;
    if (popt->text_only)
        LOG_INFO("text only: the vision model (%.2f B parameters) is not loaded",
                 (ivl_vit_param_count(&s->src.cfg.vit) + ivl_projector_param_count(&s->src.cfg.proj)) / 1e9);
    return 0;
}

int ivl_session_open(ivl_session *s, const char *model_path, const char *device,
                     const ivl_parallel_opts *popt) {
    if (ivl_session_open_source(s, model_path) != 0) return -1;
    return ivl_session_load(s, device, popt);
}

void ivl_session_close(ivl_session *s) {
    ivl_session_kv_free(s);
    if (s->embeds.data) s->be->free(s->be, &s->embeds);
    if (s->model) ivl_dist_free(&s->dist);
    if (s->be) ivl_backend_destroy(s->be);
    if (s->tok) ivl_tokenizer_free(s->tok);
    ivl_model_source_close(&s->src);
    memset(s, 0, sizeof *s);
}

void ivl_session_encode_images(ivl_session *s, const ivl_tensor *pixels_host, const ivl_dump *dump) {
    if (s->embeds.data) s->be->free(s->be, &s->embeds);
    memset(&s->embeds, 0, sizeof s->embeds);
    if (!pixels_host || !pixels_host->data || pixels_host->shape[0] == 0) return;
    IVL_CHECK(s->model->has_vision,
              "images given to a session opened text-only (the vision model is not loaded)");
    ivl_dist_encode_images(&s->dist, pixels_host, &s->embeds, dump);
}

void ivl_session_tile_share(const ivl_session *s, int rank, int64_t tiles, int64_t *t0,
                            int64_t *t1) {
    ivl_dist_tile_share(&s->dist, rank, tiles, t0, t1);
}

void ivl_session_encode_share(ivl_session *s, const ivl_tensor *mine_host, int64_t tiles,
                              ivl_tensor *embeds) {
    ivl_dist_encode_share(&s->dist, mine_host, tiles, embeds);
}

ivl_kv_cache *ivl_session_kv(ivl_session *s) { return &s->dist.kv; }

const ivl_tensor **ivl_session_step_embeds(ivl_session *s) { return &s->dist.image_embeds; }

void ivl_session_kv_free(ivl_session *s) {
    if (s->sched) ivl_sched_free(s->sched);
    s->sched = NULL;
    ivl_engine_free(&s->engine);
    if (s->model) ivl_dist_kv_free(&s->dist);
}

// This rank's default KV budget: a share of the memory left after the weights (GPU: 80% of
// its free memory; CPU: half of its share of MemAvailable).
static int64_t default_kv_bytes(ivl_session *s) {
    size_t free_b = 0, total_b = 0;
    s->be->synchronize(s->be);
    if (!rank_free_memory(s->be, &s->dev, &free_b, &total_b)) return 0;
    return (int64_t)(ivl_cuda_ext_of(s->be) ? free_b * 0.8 : free_b / 2);
}

int ivl_session_kv_init(ivl_session *s, const ivl_kv_opts *o) {
    ivl_session_kv_free(s);
    const int bs = o->block_size > 0 ? o->block_size : 16;
    const ivl_llm_config *lc = &s->model->cfg.llm;
    const int64_t per_tok = ivl_kv_bytes_per_token(lc, &s->model->shard, s->be->dtype);
    const int64_t per_block = per_tok * bs;
    int64_t budget = o->kv_mem > 0 ? o->kv_mem : default_kv_bytes(s);
    if (o->kv_mem <= 0 && o->want_positions > 0) {
        int64_t want = (o->want_positions + bs - 1) / bs * per_block;
        if (budget > want || budget <= 0) budget = want;   // <= 0: free memory unknown
    }
    int64_t nb = per_block > 0 ? budget / per_block : 0;
    // Every rank the same number of blocks: the smallest (block tables are shared).
    int64_t mine = nb;
    ivl_comm_group world;
    ivl_comm_group_world(&world);
    nb = -nb;   // the minimum as the maximum of the negatives
    ivl_comm_mpi_ops()->allreduce(&world, &nb, 1, IVL_I64, IVL_COMM_MAX);
    nb = -nb;
    ivl_comm_group_free(&world);
    const int64_t positions = nb * bs, need = o->min_positions > 0 ? o->min_positions : 1;
    if (positions < need) {
        const int64_t need_bytes = (need + bs - 1) / bs * per_block;
        char have[32];
        if (budget >= (1 << 20)) snprintf(have, sizeof have, "%.1f MiB", (double)budget / (1 << 20));
        else snprintf(have, sizeof have, "%.1f KiB", (double)budget / 1024);
        return ivl_errorf("the KV cache is too small: %s%s a rank holds %lld positions of this "
                          "model (%lld blocks of %d, %lld bytes a position on %s rank), but one "
                          "request needs %lld positions; give --kv-mem %lldM or more%s",
                          o->kv_mem > 0 ? "--kv-mem " : "the default of ", have,
                          (long long)positions, (long long)nb, bs, (long long)per_tok,
                          mine == nb ? "this" : "the tightest", (long long)need,
                          (long long)((need_bytes + (1 << 20) - 1) >> 20),
                          o->kv_mem > 0 ? "" : " (or lower --max-tiles / --max-new-tokens)");
    }
    ivl_dist_kv_init(&s->dist, nb, bs);
    s->kv_bytes = nb * per_block;
    ivl_sched_opts so = {.n_blocks = nb, .block_size = bs,
                         .max_seqs = o->max_seqs > 0 ? o->max_seqs : 256,
                         .step_tokens = o->step_tokens > 0 ? o->step_tokens : 8192,
                         .rope_exact_len = ivl_llm_rope_exact_len(lc),
                         .prefix_reuse = !o->no_prefix_reuse};
    s->sched = ivl_sched_new(&so);
    memset(&s->engine, 0, sizeof s->engine);
    s->engine.sched = s->sched;
    s->engine.be = s->be;
    s->engine.step_embeds = &s->dist.image_embeds;
    s->engine.step = ivl_dist_step(&s->dist);
    return 0;
}

ivl_engine *ivl_session_engine(ivl_session *s) {
    IVL_CHECK(s->sched, "the session's KV cache is not initialised (ivl_session_kv_init)");
    return &s->engine;
}

void ivl_session_kv_describe(const ivl_session *s, char *buf, size_t n) {
    const ivl_kv_cache *kv = &s->dist.kv;
    const int64_t pos = kv->n_blocks * kv->block_size;
    snprintf(buf, n, "KV cache: %lld blocks of %d positions (%lld positions, %lld bytes each), "
             "%.1f MiB a rank", (long long)kv->n_blocks, kv->block_size, (long long)pos,
             (long long)(pos ? s->kv_bytes / pos : 0), (double)s->kv_bytes / (1 << 20));
}

ivl_step ivl_session_step(ivl_session *s) {
    s->dist.image_embeds = s->embeds.data ? &s->embeds : NULL;
    return ivl_dist_step(&s->dist);
}

const char *ivl_session_comm(const ivl_session *s) {
    return s->dist.topo.world.size > 1 ? s->dist.comm_name : "none";
}
