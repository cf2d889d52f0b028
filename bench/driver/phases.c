// phases.c - see phases.h.
#include "bench/driver/phases.h"
#include "bench/driver/comm_timer.h"
#include "bench/driver/flops.h"
#include "core/check.h"
#include "core/log.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static int world_size(void) {
    int n = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

// ---- the timing loop --------------------------------------------------------------------

typedef ivl_bench_fn bench_fn;

void ivl_bench_time_loop(ivl_backend *be, const ivl_bench_fn *f, int warmup, int repeats,
                         ivl_bench_meas *m) {
    IVL_CHECK(repeats >= 1 && repeats <= IVL_BENCH_MAX_REPEATS, "--repeats must be 1..%d", IVL_BENCH_MAX_REPEATS);
    m->n = 0;
    for (int i = 0; i < warmup + repeats; i++) {
        if (i == warmup) ivl_comm_timer_reset();
        if (f->setup) f->setup(f->arg);
        be->synchronize(be);
        MPI_Barrier(MPI_COMM_WORLD);
        ivl_comm_timer_start();
        double t0 = now();
        f->run(f->arg);
        be->synchronize(be);
        double dt = now() - t0;
        ivl_comm_timer_stop();
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (i >= warmup) m->t[m->n++] = dt;
    }
    ivl_bench_stats(m);
    // Per-rank split: every rank's comm time and bytes per repeat and its peak RSS, to rank 0.
    ivl_comm_totals tot;
    ivl_comm_timer_get(&tot);
    double mine[3] = {ivl_comm_totals_seconds(&tot) / repeats, ivl_comm_totals_bytes(&tot) / repeats,
                      peak_rss_mib()};
    int n = world_size(), me = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    IVL_CHECK(n <= IVL_BENCH_MAX_RANKS, "bench: at most %d ranks", IVL_BENCH_MAX_RANKS);
    double *all = ivl_malloc((size_t)n * 3 * sizeof *all);
    MPI_Gather(mine, 3, MPI_DOUBLE, all, 3, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    m->nranks = n;
    if (me == 0)
        for (int r = 0; r < n; r++)
            m->ranks[r] = (ivl_bench_rank){all[3 * r], all[3 * r + 1], all[3 * r + 2]};
    free(all);
}

// ---- model and KV cache ------------------------------------------------------------------

int ivl_bench_ctx_init(ivl_bench_ctx *c, ivl_backend *be, const ivl_weight_reader *r,
                       const ivl_model_config *cfg, const ivl_parallel_opts *popt) {
    c->be = be;
    // Every layout, one rank included, through parallel/dist.h: what the commands run.
    if (ivl_dist_init(&c->dist, be, r, cfg, popt) != 0) return -1;
    // Collectives through the timed table (a no-op wrapper for MPI, timed by PMPI instead).
    c->dist.ops = ivl_comm_timer_wrap_ops(c->dist.ops);
    c->m = &c->dist.model;
    return 0;
}

void ivl_bench_ctx_free(ivl_bench_ctx *c) { ivl_dist_free(&c->dist); }

#define BENCH_KV_BLOCK 16

// A pool of `slots` x max_ctx positions; *tables (malloc'ed): sequence i owns the blocks
// [i * per, (i + 1) * per), per = *per_seq (the paged cache with contiguous tables).
static ivl_kv_cache *kv_init(ivl_bench_ctx *c, int slots, int64_t max_ctx, int32_t **tables,
                             int64_t *per_seq) {
    const int64_t per = (max_ctx + BENCH_KV_BLOCK - 1) / BENCH_KV_BLOCK;
    ivl_dist_kv_init(&c->dist, slots * per, BENCH_KV_BLOCK);
    if (tables) {
        *tables = ivl_malloc((size_t)(slots * per) * sizeof **tables);
        for (int64_t b = 0; b < slots * per; b++) (*tables)[b] = (int32_t)b;
        *per_seq = per;
    }
    return &c->dist.kv;
}

// Frees the cache right after a phase so the next one has the memory.
static void kv_done(ivl_bench_ctx *c) {
    if (c->dist.kv_ready) ivl_kv_cache_free(c->be, &c->m->shard, &c->dist.kv);
    c->dist.kv_ready = 0;
}

// 1 if a cache of slots x max_ctx fits the --max-kv-gib budget; else marks m skipped.
static int kv_fits(ivl_bench_ctx *c, int slots, int64_t max_ctx, ivl_bench_meas *m) {
    double need = (double)slots * max_ctx *
                  (double)ivl_kv_bytes_per_token(&c->m->cfg.llm, &c->m->shard, c->be->dtype);
    if (need <= c->max_kv_bytes) return 1;
    m->skipped = 1;
    snprintf(m->extra, sizeof m->extra, "KV cache %.2f GiB per rank > --max-kv-gib %.2f",
             need / (1 << 30), c->max_kv_bytes / (1 << 30));
    LOG_WARN("%s %s", m->phase, m->extra);
    return 0;
}

static ivl_step make_step(ivl_bench_ctx *c, const ivl_tensor *embeds) {
    c->dist.image_embeds = embeds && embeds->data ? embeds : NULL;
    return ivl_dist_step(&c->dist);
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_float(uint64_t *s) { return (float)((rng_next(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

// Random token ids: the same on every rank (same seed), as lockstep requires.
static void random_ids(int32_t *ids, int64_t n, int64_t vocab, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(rng_next(&seed) % (uint64_t)vocab);
}

// Pixels like preprocessed tiles (normalised values in about [-2, 2]).
static ivl_tensor random_pixels(int tiles, int S, uint64_t seed) {
    ivl_tensor p = ivl_tensor_host(IVL_F32, 4, (int64_t[]){tiles, 3, S, S});
    float *d = p.data;
    for (int64_t i = 0; i < ivl_tensor_numel(&p); i++) d[i] = 2.0f * rng_float(&seed);
    return p;
}

// ---- vit ----------------------------------------------------------------------------------

typedef struct {
    ivl_bench_ctx *c;
    ivl_tensor pixels;
} vit_arg;

static void vit_run(void *a) {
    vit_arg *v = a;
    ivl_tensor embeds;
    ivl_dist_encode_images(&v->c->dist, &v->pixels, &embeds, NULL);
    if (embeds.data) v->c->be->free(v->c->be, &embeds);
}

void ivl_bench_vit(ivl_bench_ctx *c, int tiles, ivl_bench_meas *m) {
    const ivl_model_config *cfg = &c->m->cfg;
    snprintf(m->phase, sizeof m->phase, "vit");
    m->tiles = tiles;
    vit_arg a = {c, random_pixels(tiles, cfg->vit.image_size, c->seed)};
    bench_fn f = {NULL, vit_run, &a};
    ivl_bench_time_loop(c->be, &f, c->warmup, c->repeats, m);
    m->units = tiles;
    snprintf(m->unit, sizeof m->unit, "tiles/s");
    m->flops = tiles * (ivl_flops_vit_tile(&cfg->vit) + ivl_flops_projector_tile(&cfg->proj));
    snprintf(m->extra, sizeof m->extra, "ViT + pixel shuffle + mlp1");
    ivl_tensor_free_host(&a.pixels);
}

// ---- prefill and decode --------------------------------------------------------------------

typedef struct {
    ivl_bench_ctx *c;
    ivl_kv_cache *kv;
    ivl_step step;
    ivl_llm_seq *seqs;
    int nseq;
    int32_t *ids;
    float *logits;
    int32_t *tables;   // the sequences' block tables (contiguous blocks)
} llm_arg;

static void llm_run(void *a) {
    llm_arg *l = a;
    l->step.run(l->step.ctx, l->seqs, l->nseq, l->ids, NULL, l->logits, NULL);
}

void ivl_bench_prefill(ivl_bench_ctx *c, int batch, int64_t S, ivl_bench_meas *m) {
    const ivl_llm_config *lc = &c->m->cfg.llm;
    snprintf(m->phase, sizeof m->phase, "prefill");
    m->batch = batch;
    m->prompt_len = S;
    snprintf(m->unit, sizeof m->unit, "tokens/s");
    if (!kv_fits(c, batch, S, m)) return;
    int64_t per = 0;
    llm_arg a = {.c = c};
    a.kv = kv_init(c, batch, S, &a.tables, &per);
    a.step = make_step(c, NULL);
    a.nseq = batch;
    a.seqs = ivl_malloc((size_t)batch * sizeof *a.seqs);
    // Every repeat prefills positions 0 .. S-1 again (the positions are the step's input).
    for (int i = 0; i < batch; i++) a.seqs[i] = (ivl_llm_seq){0, S, a.tables + i * per, per};
    a.ids = ivl_malloc((size_t)(batch * S) * sizeof *a.ids);
    random_ids(a.ids, batch * S, lc->vocab, c->seed + 1);
    a.logits = ivl_malloc((size_t)batch * (size_t)lc->vocab * sizeof *a.logits);
    bench_fn f = {NULL, llm_run, &a};
    ivl_bench_time_loop(c->be, &f, c->warmup, c->repeats, m);
    m->units = (double)batch * S;
    m->flops = batch * ivl_flops_prefill(lc, S, 0);
    free(a.tables);
    free(a.seqs);
    free(a.ids);
    free(a.logits);
    kv_done(c);
}

// Writes small random values into positions [0, len) of every slot of every local layer,
// so decode reads real memory (a zeroed, never-written cache would map to the zero page).
static void fill_kv(ivl_bench_ctx *c, ivl_kv_cache *kv, int slots, int64_t len) {
    ivl_backend *be = c->be;
    const ivl_llm_shard *sh = &c->m->shard;
    const int64_t w = (int64_t)sh->kv_heads * c->m->cfg.llm.head_dim;
    ivl_tensor host = ivl_tensor_host_2d(IVL_F32, len, w);
    uint64_t s = c->seed + 7;
    for (int64_t i = 0; i < len * w; i++) ((float *)host.data)[i] = 0.5f * rng_float(&s);
    const int64_t per = (int64_t)kv->n_blocks / slots * kv->block_size;   // positions per slot
    for (int l = sh->layer0; l < sh->layer1; l++)
        for (int slot = 0; slot < slots; slot++) {
            ivl_tensor k = ivl_tensor_slice(&kv->k[l], (int64_t)slot * per, len);
            ivl_tensor v = ivl_tensor_slice(&kv->v[l], (int64_t)slot * per, len);
            be->upload(be, &k, &host);
            be->upload(be, &v, &host);
        }
    ivl_tensor_free_host(&host);
}

void ivl_bench_decode(ivl_bench_ctx *c, int batch, int64_t ctx, ivl_bench_meas *m) {
    const ivl_llm_config *lc = &c->m->cfg.llm;
    snprintf(m->phase, sizeof m->phase, "decode");
    m->batch = batch;
    m->context_len = ctx;
    snprintf(m->unit, sizeof m->unit, "tokens/s");
    if (!kv_fits(c, batch, ctx + 1, m)) return;
    int64_t per = 0;
    llm_arg a = {.c = c};
    a.kv = kv_init(c, batch, ctx + 1, &a.tables, &per);
    fill_kv(c, a.kv, batch, ctx);
    a.step = make_step(c, NULL);
    a.nseq = batch;
    a.seqs = ivl_malloc((size_t)batch * sizeof *a.seqs);
    // Every repeat decodes position ctx again after the ctx positions fill_kv wrote.
    for (int i = 0; i < batch; i++) a.seqs[i] = (ivl_llm_seq){ctx, 1, a.tables + i * per, per};
    a.ids = ivl_malloc((size_t)batch * sizeof *a.ids);
    random_ids(a.ids, batch, lc->vocab, c->seed + 2);
    a.logits = ivl_malloc((size_t)batch * (size_t)lc->vocab * sizeof *a.logits);
    bench_fn f = {NULL, llm_run, &a};
    ivl_bench_time_loop(c->be, &f, c->warmup, c->repeats, m);
    m->units = batch;
    m->flops = ivl_flops_decode_step(lc, batch, ctx);
    m->bytes = ivl_bytes_decode_step(lc, batch, ctx, (int)ivl_dtype_size(c->be->dtype));
    snprintf(m->extra, sizeof m->extra, "one step, every sequence at position ctx");
    free(a.tables);
    free(a.seqs);
    free(a.ids);
    free(a.logits);
    kv_done(c);
}

// ---- e2e captioning ------------------------------------------------------------------------

typedef struct {
    ivl_bench_ctx *c;
    ivl_tensor pixels;
    ivl_kv_cache *kv;
    int images;
    int64_t positions;          // KV positions for the whole batch
    ivl_gen_prompt *prompts;
    ivl_gen_params gp;
    int32_t *out;
    int *out_len;
} e2e_arg;

static void e2e_run(void *vp) {
    e2e_arg *a = vp;
    ivl_bench_ctx *c = a->c;
    ivl_tensor embeds;
    ivl_dist_encode_images(&c->dist, &a->pixels, &embeds, NULL);
    // A fresh scheduler each repeat (no prefix cache carried over between repeats).
    ivl_sched_opts so = {.n_blocks = a->kv->n_blocks, .block_size = a->kv->block_size,
                         .max_seqs = a->images, .step_tokens = a->positions,
                         .rope_exact_len = ivl_llm_rope_exact_len(&c->m->cfg.llm)};
    ivl_engine e = {.sched = ivl_sched_new(&so), .step = make_step(c, NULL), .be = c->be,
                    .step_embeds = &c->dist.image_embeds};
    for (int i = 0; i < a->images; i++) a->prompts[i].embeds = &embeds;
    ivl_generate(&e, a->prompts, a->images, &a->gp, a->out, a->out_len, NULL);
    ivl_sched_free(e.sched);
    ivl_engine_free(&e);
    if (embeds.data) c->be->free(c->be, &embeds);
}

void ivl_bench_e2e(ivl_bench_ctx *c, const int *tiles, int images, int64_t prompt_len,
                   int64_t out_len, ivl_bench_meas *m) {
    const ivl_model_config *cfg = &c->m->cfg;
    const int64_t per = cfg->proj.tokens_per_tile;
    snprintf(m->phase, sizeof m->phase, "e2e");
    m->images = images;
    m->prompt_len = prompt_len;
    m->output_len = out_len;
    snprintf(m->unit, sizeof m->unit, "images/s");
    int total_tiles = 0;
    int64_t max_len = 0;
    size_t o = 0;
    o += (size_t)snprintf(m->extra, sizeof m->extra, "tiles per image:");
    for (int i = 0; i < images; i++) {
        total_tiles += tiles[i];
        if (prompt_len + per * tiles[i] > max_len) max_len = prompt_len + per * tiles[i];
        if (o < sizeof m->extra) o += (size_t)snprintf(m->extra + o, sizeof m->extra - o, " %d", tiles[i]);
    }
    m->tiles = total_tiles;
    if (!kv_fits(c, images, max_len + out_len, m)) return;
    e2e_arg a = {.c = c, .pixels = random_pixels(total_tiles, cfg->vit.image_size, c->seed + 3)};
    a.kv = kv_init(c, images, max_len + out_len, NULL, NULL);
    a.positions = (int64_t)images * (max_len + out_len);
    a.images = images;
    // Prompt i: half the text tokens, the image tokens of its tiles, the other half (the
    // template puts <img>...</img> between system/user text and the question).
    a.prompts = ivl_calloc((size_t)images, sizeof *a.prompts);
    int32_t **idbuf = ivl_calloc((size_t)images, sizeof *idbuf);
    int64_t **rowbuf = ivl_calloc((size_t)images, sizeof *rowbuf);
    double flops = total_tiles * (ivl_flops_vit_tile(&cfg->vit) + ivl_flops_projector_tile(&cfg->proj));
    for (int i = 0, row = 0; i < images; i++) {
        const int64_t n = prompt_len + per * tiles[i], pre = prompt_len / 2;
        idbuf[i] = ivl_malloc((size_t)n * sizeof **idbuf);
        rowbuf[i] = ivl_malloc((size_t)n * sizeof **rowbuf);
        random_ids(idbuf[i], n, cfg->llm.vocab, c->seed + 10 + (uint64_t)i);
        for (int64_t t = 0; t < n; t++) {
            int64_t k = t - pre;
            rowbuf[i][t] = (k >= 0 && k < per * tiles[i]) ? row + k : -1;
        }
        row += (int)(per * tiles[i]);
        a.prompts[i] = (ivl_gen_prompt){idbuf[i], n, rowbuf[i], NULL, NULL};
        flops += ivl_flops_prefill(&cfg->llm, n, 0);
        for (int64_t t = 1; t < out_len; t++) flops += ivl_flops_decode_step(&cfg->llm, 1, n + t - 1);
    }
    a.gp = (ivl_gen_params){.max_new_tokens = (int)out_len, .stop_id = -1,
                            .sampling = ivl_sampling_default()};
    a.out = ivl_malloc((size_t)images * (size_t)(out_len > 0 ? out_len : 1) * sizeof *a.out);
    a.out_len = ivl_malloc((size_t)images * sizeof *a.out_len);
    bench_fn f = {NULL, e2e_run, &a};
    ivl_bench_time_loop(c->be, &f, c->warmup, c->repeats, m);
    m->units = images;
    m->flops = flops;
    for (int i = 0; i < images; i++) {
        free(idbuf[i]);
        free(rowbuf[i]);
    }
    free(idbuf);
    free(rowbuf);
    free(a.prompts);
    free(a.out);
    free(a.out_len);
    ivl_tensor_free_host(&a.pixels);
    kv_done(c);
}

// ---- ceilings -------------------------------------------------------------------------------

typedef struct {
    ivl_backend *be;
    ivl_tensor a, b, y;
} gemm_arg;

static void gemm_run(void *p) {
    gemm_arg *g = p;
    g->be->matmul(g->be, &g->y, &g->a, &g->b, NULL);
}

static void copy_run(void *p) {
    gemm_arg *g = p;
    g->be->copy(g->be, &g->y, &g->a);
}

static ivl_tensor filled(ivl_backend *be, int64_t rows, int64_t cols, uint64_t seed) {
    ivl_tensor h = ivl_tensor_host_2d(IVL_F32, rows, cols);
    for (int64_t i = 0; i < rows * cols; i++) ((float *)h.data)[i] = 0.1f * rng_float(&seed);
    ivl_tensor t = ivl_backend_from_host(be, &h);
    ivl_tensor_free_host(&h);
    return t;
}

void ivl_bench_peak_gemm(ivl_backend *be, int n, int warmup, int repeats, ivl_bench_meas *m) {
    snprintf(m->phase, sizeof m->phase, "peak_gemm");
    snprintf(m->extra, sizeof m->extra, "%dx%dx%d through be->matmul", n, n, n);
    gemm_arg g = {be, filled(be, n, n, 1), filled(be, n, n, 2), ivl_backend_alloc_2d(be, n, n)};
    bench_fn f = {NULL, gemm_run, &g};
    ivl_bench_time_loop(be, &f, warmup, repeats, m);
    m->flops = 2.0 * n * (double)n * n;
    m->units = m->flops / 1e12;
    snprintf(m->unit, sizeof m->unit, "TFLOP/s");
    be->free(be, &g.a);
    be->free(be, &g.b);
    be->free(be, &g.y);
}

void ivl_bench_mem_copy(ivl_backend *be, int mib, int warmup, int repeats, ivl_bench_meas *m) {
    snprintf(m->phase, sizeof m->phase, "mem_copy");
    snprintf(m->extra, sizeof m->extra, "%d MiB through be->copy; bytes = read + write", mib);
    const int64_t cols = 1024, rows = (int64_t)mib * (1 << 20) / (int64_t)ivl_dtype_size(be->dtype) / cols;
    gemm_arg g = {be, filled(be, rows, cols, 3), {0}, ivl_backend_alloc_2d(be, rows, cols)};
    bench_fn f = {NULL, copy_run, &g};
    ivl_bench_time_loop(be, &f, warmup, repeats, m);
    m->bytes = 2.0 * (double)ivl_tensor_nbytes(&g.a);
    m->units = m->bytes / 1e9;
    snprintf(m->unit, sizeof m->unit, "GB/s");
    be->free(be, &g.a);
    be->free(be, &g.y);
}
