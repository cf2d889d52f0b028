// dist.c - see dist.h.
#include "parallel/dist.h"
#include "comm/mpi_check.h"
#include "core/check.h"
#include "core/cuda/ivl_cuda.h"
#include "core/log.h"
#include "parallel/comm_staged.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ivl_pp_split(int layers, int pp, const char *spec, int *first) {
    if (pp < 1 || pp > layers)
        return ivl_errorf("--pp %d: the LLM has %d layers, so 1 <= pp <= %d", pp, layers, layers);
    first[0] = 0;
    if (!spec || !*spec) {
        for (int s = 0; s < pp; s++) first[s + 1] = first[s] + layers / pp + (s < layers % pp);
        return 0;
    }
    const char *p = spec;
    for (int s = 0; s < pp; s++) {
        char *end;
        long n = strtol(p, &end, 10);
        if (end == p || n < 1)
            return ivl_errorf("--pp-layers '%s': expected %d positive counts separated by commas", spec, pp);
        first[s + 1] = first[s] + (int)n;
        p = *end == ',' ? end + 1 : end;
        if (s < pp - 1 && *end != ',')
            return ivl_errorf("--pp-layers '%s' has fewer than --pp %d counts", spec, pp);
    }
    if (*p) return ivl_errorf("--pp-layers '%s' has more than --pp %d counts", spec, pp);
    if (first[pp] != layers)
        return ivl_errorf("--pp-layers '%s' sums to %d but the LLM has %d layers", spec, first[pp], layers);
    return 0;
}

// ---- tensor-parallel collectives for core/models (ivl_tp_ctx) ----

static void tp_allreduce(void *comm, ivl_backend *be, ivl_tensor *t) {
    ivl_dist *d = comm;
    d->ops->allreduce(&d->topo.tp, t->data, (size_t)ivl_tensor_numel(t), t->dtype, IVL_COMM_SUM);
}

static void vit_tp_allreduce(void *comm, ivl_backend *be, ivl_tensor *t) {
    ivl_dist *d = comm;
    d->ops->allreduce(&d->topo.vit_tp, t->data, (size_t)ivl_tensor_numel(t), t->dtype, IVL_COMM_SUM);
}

static void tp_allgather_cols(void *comm, ivl_backend *be, ivl_tensor *out, const ivl_tensor *local) {
    ivl_dist *d = comm;
    const int P = d->topo.tp.size;
    const int64_t R = ivl_tensor_rows(local), c = ivl_tensor_cols(local);
    ivl_tensor blocks = be->alloc(be, local->dtype, 2, (int64_t[]){P * R, c});
    d->ops->allgather(&d->topo.tp, local->data, blocks.data, (size_t)(R * c), local->dtype);
    // [P][R][c] -> [R][P*c]: logits are small, so the rearrangement goes through the host.
    ivl_tensor hb = ivl_backend_to_host_f32(be, &blocks);
    ivl_tensor ho = ivl_tensor_host_2d(IVL_F32, R, P * c);
    for (int p = 0; p < P; p++)
        for (int64_t r = 0; r < R; r++)
            memcpy((float *)ho.data + r * P * c + p * c, (float *)hb.data + (p * R + r) * c,
                   (size_t)c * sizeof(float));
    be->upload(be, out, &ho);
    ivl_tensor_free_host(&hb);
    ivl_tensor_free_host(&ho);
    be->free(be, &blocks);
}

// The collectives of a job (see dist.h, IVL_COMM). Every branch is taken by every rank alike:
// the inputs are agreed on over MPI first, and ivl_comm_group_init_device agrees on success.
static int dist_comm_init(ivl_dist *d, ivl_backend *be, const ivl_parallel_opts *o) {
    const char *want = getenv("IVL_COMM");
    if (!want || !*want) want = "auto";
    if (strcmp(want, "auto") && strcmp(want, "nccl") && strcmp(want, "mpi") && strcmp(want, "staged"))
        return ivl_errorf("IVL_COMM=%s: use auto (NCCL on GPUs when it can be used, else MPI), "
                          "nccl, mpi, or staged (MPI through host copies even on the CPU: tests)",
                          want);
    const int lead = d->topo.rank == 0;
    const ivl_cuda_ext *x = ivl_cuda_ext_of(be);
    if (d->topo.world.size == 1 && strcmp(want, "staged") != 0) {
        // One rank: every group has one member and no collective is called.
        d->ops = x ? ivl_comm_staged_ops(be) : ivl_comm_mpi_ops();
        snprintf(d->comm_name, sizeof d->comm_name, "none");
        return 0;
    }
    if (!strcmp(want, "staged")) {
        d->ops = ivl_comm_staged_ops(be);
        snprintf(d->comm_name, sizeof d->comm_name, "mpi");
        if (lead) LOG_INFO("collectives: MPI with host staging (IVL_COMM=staged)");
        return 0;
    }
    if (!x) {   // the CPU backend: host memory, MPI
        if (!strcmp(want, "nccl"))
            return ivl_errorf("IVL_COMM=nccl needs the CUDA backend (--device cuda)");
        d->ops = ivl_comm_mpi_ops();
        snprintf(d->comm_name, sizeof d->comm_name, "mpi");
        return 0;
    }
    char why[600] = "";
    if (!strcmp(want, "mpi")) {
        snprintf(why, sizeof why, "IVL_COMM=mpi");
    } else {
        // NCCL refuses two ranks on one GPU of one host, unless each rank poses as its own
        // host (NCCL_HOSTID per rank, the single-GPU test setting).
        int shared = o->gpu_shared && !getenv("NCCL_HOSTID"), any_shared = 0;
        MPI_CHECK(MPI_Allreduce(&shared, &any_shared, 1, MPI_INT, MPI_MAX, d->topo.world.comm));
        if (any_shared) {
            snprintf(why, sizeof why, "ranks share a GPU (--gpu-share) and NCCL does not allow "
                     "two ranks on one GPU of one host");
        } else if (ivl_comm_group_init_device(&d->topo.world, x->device(be)) != 0) {
            snprintf(why, sizeof why, "%s", ivl_last_error());
        } else {
            ivl_comm_group *gs[] = {&d->topo.tp, &d->topo.pp, &d->topo.vit_tp, &d->topo.vit_dp};
            for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
                IVL_CHECK(ivl_comm_group_init_device(gs[i], x->device(be)) == 0,
                          "NCCL communicator of group '%s': %s", gs[i]->name, ivl_last_error());
            // Bound to the compute stream: collectives are ordered with the kernels around
            // them, with no host synchronisation per call.
            ivl_comm_group_set_stream(&d->topo.world, x->stream(be));
            for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
                ivl_comm_group_set_stream(gs[i], x->stream(be));
            d->ops = ivl_comm_device_ops();
            snprintf(d->comm_name, sizeof d->comm_name, "nccl");
            if (lead) LOG_INFO("collectives: NCCL on %d ranks", d->topo.world.size);
            return 0;
        }
        if (!strcmp(want, "nccl")) return ivl_errorf("IVL_COMM=nccl: %s", why);
    }
    d->ops = ivl_comm_staged_ops(be);
    snprintf(d->comm_name, sizeof d->comm_name, "mpi");
    if (lead)
        LOG_WARN("collectives: MPI with host staging instead of NCCL (slower, same results): %s",
                 why);
    return 0;
}

int ivl_dist_init(ivl_dist *d, ivl_backend *be, const ivl_weight_reader *r,
                  const ivl_model_config *cfg, const ivl_parallel_opts *o) {
    memset(d, 0, sizeof *d);
    if (ivl_topology_create(&d->topo, o->tp, o->pp, o->vit_tp) != 0) return -1;
    if (dist_comm_init(d, be, o) != 0) return -1;
    int first[1025];
    IVL_CHECK(o->pp <= 1024, "--pp %d too large", o->pp);
    if (ivl_pp_split(cfg->llm.layers, o->pp, o->pp_layers, first) != 0) return -1;
    const int stage = d->topo.pos.stage;
    ivl_llm_shard shard;
    if (ivl_llm_shard_init(&cfg->llm, d->topo.pos.tp_rank, o->tp, first[stage], first[stage + 1],
                           &shard) != 0)
        return -1;
    ivl_tp_ctx tp = {d->topo.pos.tp_rank, o->tp, d, tp_allreduce, tp_allgather_cols};
    char desc[256];
    ivl_topology_describe(&d->topo, desc, sizeof desc);
    LOG_DEBUG("%s, layers [%d, %d)", desc, first[stage], first[stage + 1]);
    ivl_tp_ctx vit_tp = {d->topo.vit_tp.rank, d->topo.vit_tp.size, d, vit_tp_allreduce, NULL};
    if (ivl_model_load_ex(&d->model, be, r, cfg, &shard, &tp, o->text_only ? NULL : &vit_tp) != 0)
        return -1;
    d->microbatches = o->microbatches > 0 ? o->microbatches : o->pp;
    d->logits_root = ivl_layout_rank(&d->topo.layout, o->pp - 1, 0);
    return 0;
}

void ivl_dist_free(ivl_dist *d) {
    if (d->kv_ready) ivl_kv_cache_free(d->model.be, &d->model.shard, &d->kv);
    ivl_model_free(&d->model);
    ivl_topology_free(&d->topo);
}

void ivl_dist_kv_free(ivl_dist *d) {
    if (d->kv_ready) ivl_kv_cache_free(d->model.be, &d->model.shard, &d->kv);
    d->kv_ready = 0;
}

void ivl_dist_kv_init(ivl_dist *d, int64_t n_blocks, int block_size) {
    if (d->kv_ready) ivl_kv_cache_free(d->model.be, &d->model.shard, &d->kv);
    ivl_kv_cache_init(d->model.be, &d->model.cfg.llm, &d->model.shard, n_blocks, block_size, &d->kv);
    d->kv_ready = 1;
}

void ivl_dist_tile_share(const ivl_dist *d, int rank, int64_t tiles, int64_t *t0, int64_t *t1) {
    // Tiles are sharded over the vision data-parallel groups; the ranks of one --vit-tp group
    // encode the same tiles together.
    const int n = d->topo.vit_dp.size;
    const int g = ivl_layout_position(&d->topo.layout, rank).vit_dp_rank;
    *t0 = tiles * g / n;
    *t1 = tiles * (g + 1) / n;
}

static void encode_share(ivl_dist *d, const ivl_tensor *mine_host, int64_t tiles,
                         ivl_tensor *embeds, const ivl_dump *dump);

void ivl_dist_encode_images(ivl_dist *d, const ivl_tensor *pixels_host, ivl_tensor *embeds,
                            const ivl_dump *dump) {
    int64_t t0, t1, tiles = pixels_host->shape[0];
    ivl_dist_tile_share(d, d->topo.rank, tiles, &t0, &t1);
    ivl_tensor mine = t1 > t0 ? ivl_tensor_slice(pixels_host, t0, t1 - t0) : (ivl_tensor){0};
    encode_share(d, t1 > t0 ? &mine : NULL, tiles, embeds, dump);
}

// The image-embedding join: each vision group's lead (vit_tp rank 0) holds the rows of its
// share; the ranks of the first pipeline stage need every row (ivl_model_embed_step), the
// other stages none. So each lead sends its rows to every first-stage rank but itself, in
// one global order of (group, receiver) pairs that every rank walks the same way, so blocking
// sends and receives cannot deadlock. Bytes on the wire: (first-stage ranks) x the embedding
// rows, instead of an all-reduce of the whole zero-padded [tiles*256, D] buffer over the world.
static void join_embeddings(ivl_dist *d, int64_t tiles, ivl_tensor *embeds) {
    const int64_t per = d->model.cfg.proj.tokens_per_tile;
    const ivl_layout *l = &d->topo.layout;
    const int me = d->topo.rank, groups = d->topo.vit_dp.size, tp = l->tp;
    const int first_stage = d->topo.pos.stage == 0;
    for (int g = 0; g < groups; g++) {
        const int lead = g * l->vit_tp;   // world rank of the group's vit_tp rank 0
        int64_t t0, t1;
        ivl_dist_tile_share(d, lead, tiles, &t0, &t1);
        if (t1 <= t0) continue;
        for (int r = 0; r < tp; r++) {     // first-stage ranks are world ranks 0 .. tp-1
            if (r == lead) continue;
            if (me == lead) {
                ivl_tensor src = ivl_tensor_slice(embeds, t0 * per, (t1 - t0) * per);
                d->ops->send(&d->topo.world, src.data, (size_t)ivl_tensor_numel(&src), src.dtype, r);
            } else if (me == r && first_stage) {
                ivl_tensor dst = ivl_tensor_slice(embeds, t0 * per, (t1 - t0) * per);
                d->ops->recv(&d->topo.world, dst.data, (size_t)ivl_tensor_numel(&dst), dst.dtype, lead);
            }
        }
    }
}

void ivl_dist_encode_share(ivl_dist *d, const ivl_tensor *mine_host, int64_t tiles,
                           ivl_tensor *embeds) {
    encode_share(d, mine_host, tiles, embeds, NULL);
}

static void encode_share(ivl_dist *d, const ivl_tensor *mine_host, int64_t tiles,
                         ivl_tensor *embeds, const ivl_dump *dump) {
    ivl_backend *be = d->model.be;
    const int64_t per = d->model.cfg.proj.tokens_per_tile, D = d->model.cfg.proj.out_dim;
    int64_t t0, t1;
    ivl_dist_tile_share(d, d->topo.rank, tiles, &t0, &t1);
    const int64_t got = mine_host && mine_host->ndim == 4 ? mine_host->shape[0] : 0;
    IVL_CHECK(got == t1 - t0, "rank %d: %lld tiles passed for its share of %lld (tiles %lld..%lld "
              "of %lld)", d->topo.rank, (long long)got, (long long)(t1 - t0), (long long)t0,
              (long long)t1, (long long)tiles);
    // The whole buffer lives on the first stage; a vision lead elsewhere holds only its rows
    // (at their offsets, so one slice rule serves both).
    const int first_stage = d->topo.pos.stage == 0;
    const int lead = d->topo.vit_tp.rank == 0 && t1 > t0;
    memset(embeds, 0, sizeof *embeds);
    if (tiles > 0 && (first_stage || lead)) *embeds = ivl_backend_alloc_2d(be, tiles * per, D);
    if (t1 > t0) {
        // Only the first rank of a --vit-tp group contributes the result.
        ivl_tensor part;
        ivl_model_encode_images(&d->model, mine_host, &part, dump);
        if (lead) {
            ivl_tensor dst = ivl_tensor_slice(embeds, t0 * per, (t1 - t0) * per);
            be->copy(be, &dst, &part);
        }
        be->free(be, &part);
    }
    if (tiles > 0) join_embeddings(d, tiles, embeds);
    if (embeds->data && !first_stage) {   // a lead of a later stage: its rows have been sent
        be->free(be, embeds);
        memset(embeds, 0, sizeof *embeds);
    }
}

// One pipelined step: micro-batches of whole sequences flow stage to stage. The last stage
// writes each sequence's last-row logits (logits != NULL) or, for greedy picks on the device
// (picked != NULL, tp 1), its token id; they then go to world rank 0 (logits) or to every
// rank (ids). At world size 1 no collective is called: the same code is the one-rank step.
static void dist_forward(ivl_dist *d, const ivl_llm_seq *seqs, int nseq, const int32_t *ids,
                         const int64_t *img_row, const ivl_dump *dump, float *logits,
                         int32_t *picked) {
    ivl_model *m = &d->model;
    ivl_backend *be = m->be;
    const ivl_llm_shard *sh = &m->shard;
    const int64_t D = m->cfg.llm.hidden, V = m->cfg.llm.vocab;
    int M = d->microbatches < nseq ? d->microbatches : nseq;
    if (M < 1) M = 1;
    int64_t row0 = 0;
    for (int mb = 0, s0 = 0; mb < M; mb++) {
        int s1 = (int)((int64_t)nseq * (mb + 1) / M);   // sequences [s0, s1)
        int64_t N = 0;
        int64_t *last = ivl_step_last_rows(seqs + s0, s1 - s0, &N);
        ivl_tensor x = ivl_backend_alloc_2d(be, N, D);
        if (!sh->has_embed)
            d->ops->recv(&d->topo.pp, x.data, (size_t)(N * D), x.dtype, d->topo.prev);
        ivl_model_stage_forward(m, &d->kv, seqs + s0, s1 - s0, ids + row0,
                                img_row ? img_row + row0 : NULL, d->image_embeds, &x, dump);
        if (!sh->has_head)
            d->ops->send(&d->topo.pp, x.data, (size_t)(N * D), x.dtype, d->topo.next);
        else if (picked)
            ivl_llm_argmax(be, &m->cfg.llm, sh, &m->llm, &x, last, s1 - s0, picked + s0);
        else
            ivl_llm_logits(be, &m->cfg.llm, sh, &m->llm, &m->tp, &x, last, s1 - s0,
                           logits + (int64_t)s0 * V, dump);
        free(last);
        be->free(be, &x);
        row0 += N;
        s0 = s1;
    }
    const ivl_comm_ops *mpi = ivl_comm_mpi_ops();
    if (picked) {
        // nseq ids from the last stage to every rank (host, a few bytes).
        mpi->bcast(&d->topo.world, picked, (size_t)nseq, IVL_I32, d->logits_root);
        return;
    }
    // The logits go to world rank 0 only (it samples, writes results and drives captioning);
    // the chosen tokens then reach every rank through share_tokens: a few bytes instead of
    // [nseq, V] floats to every rank each step.
    if (d->logits_root != 0) {
        if (d->topo.world.rank == d->logits_root)
            mpi->send(&d->topo.world, logits, (size_t)nseq * V, IVL_F32, 0);
        else if (d->topo.world.rank == 0)
            mpi->recv(&d->topo.world, logits, (size_t)nseq * V, IVL_F32, d->logits_root);
    }
}

static void dist_run(void *vctx, const ivl_llm_seq *seqs, int nseq, const int32_t *ids,
                     const int64_t *img_row, float *logits, const ivl_dump *dump) {
    dist_forward(vctx, seqs, nseq, ids, img_row, dump, logits, NULL);
}

static void dist_run_argmax(void *vctx, const ivl_llm_seq *seqs, int nseq, const int32_t *ids,
                            const int64_t *img_row, int32_t *next_ids) {
    dist_forward(vctx, seqs, nseq, ids, img_row, NULL, NULL, next_ids);
}

static int dist_is_sampler(void *vctx) { return ((ivl_dist *)vctx)->topo.world.rank == 0; }

static void dist_share_tokens(void *vctx, int32_t *tokens, int n) {
    ivl_dist *d = vctx;
    ivl_comm_mpi_ops()->bcast(&d->topo.world, tokens, (size_t)n, IVL_I32, 0);
}

ivl_step ivl_dist_step(ivl_dist *d) {
    ivl_step s = {d, d->model.cfg.llm.vocab, dist_run, dist_is_sampler, dist_share_tokens,
                  NULL};
    // Greedy picks on the device when the last stage holds the whole vocabulary (tp 1: one
    // rank, or a pipeline); with tp > 1 the vocab-parallel logits are gathered instead.
    if (d->topo.layout.tp == 1) s.run_argmax = dist_run_argmax;
    return s;
}
