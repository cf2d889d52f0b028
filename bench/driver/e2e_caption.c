#define _XOPEN_SOURCE 700
// e2e_caption.c - `internvl bench --phases e2e` on a model file with its tokenizer: the real
// caption pipeline (parallel/caption_run.h) over synthetic photos (see phases.h).
#include "bench/driver/phases.h"
#include "core/check.h"
#include "core/log.h"
#include "core/text/chat.h"
#include "parallel/caption_input.h"
#include "parallel/caption_run.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// An image of rows x cols tiles of 448 (the tiler picks exactly that grid: its aspect ratio
// matches and its area passes the tie rule), noise pixels, as a 24-bit BMP.
static int write_bmp(const char *path, int w, int h, uint64_t seed) {
    const int row = (w * 3 + 3) & ~3;
    const uint32_t size = 54u + (uint32_t)row * (uint32_t)h;
    unsigned char hd[54] = {'B', 'M'};
#define PUT32(o, v) (hd[o] = (unsigned char)(v), hd[o + 1] = (unsigned char)((v) >> 8), \
                     hd[o + 2] = (unsigned char)((v) >> 16), hd[o + 3] = (unsigned char)((v) >> 24))
    PUT32(2, size);
    PUT32(10, 54u);
    PUT32(14, 40u);
    PUT32(18, (uint32_t)w);
    PUT32(22, (uint32_t)h);
    hd[26] = 1;
    hd[28] = 24;
    PUT32(34, (uint32_t)row * (uint32_t)h);
#undef PUT32
    FILE *f = fopen(path, "wb");
    if (!f) return ivl_errorf("cannot write %s", path);
    unsigned char *line = ivl_calloc((size_t)row, 1);
    int ok = fwrite(hd, 1, 54, f) == 54;
    for (int y = 0; y < h && ok; y++) {
        for (int x = 0; x < w * 3; x++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            line[x] = (unsigned char)(seed >> 56);
        }
        ok = fwrite(line, 1, (size_t)row, f) == (size_t)row;
    }
    free(line);
    if (fclose(f) != 0 || !ok) return ivl_errorf("cannot write %s", path);
    return 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void grid_of(int tiles, int *rows, int *cols) {
    *rows = 1;
    for (int r = 1; r * r <= tiles; r++)
        if (tiles % r == 0) *rows = r;
    *cols = tiles / *rows;
}

typedef struct {
    ivl_bench_ctx *c;
    ivl_caption_engine e;
    ivl_caption_opts o;
    ivl_engine eng;
    ivl_sched_opts so;
    char dir[256], in_dir[300];
    char *inputs[1];
    int repeat, images;
    int peak;
} cap_arg;

static void enc(void *ctx, const ivl_tensor *px, int64_t tiles, ivl_tensor *embeds) {
    ivl_dist_encode_share(ctx, px, tiles, embeds);
}
static void share(void *ctx, int rank, int64_t tiles, int64_t *t0, int64_t *t1) {
    ivl_dist_tile_share(ctx, rank, tiles, t0, t1);
}

static void cap_run(void *vp) {
    cap_arg *a = vp;
    const int rank = a->c->dist.topo.world.rank;
    char out[400];
    snprintf(out, sizeof out, "%s/out-%d", a->dir, a->repeat++);
    a->o.out_dir = out;
    ivl_cap_inputs in = {0};
    if (rank == 0) {
        mkdir(out, 0755);
        IVL_CHECK(ivl_cap_inputs_build(a->inputs, 1, 1 << 20, &in) == 0, "bench e2e: %s", ivl_last_error());
    }
    // A fresh scheduler each repeat: no prefix cache carried over from the last one.
    a->eng.sched = ivl_sched_new(&a->so);
    ivl_caption_summary sum;
    int rc = ivl_caption_run(&a->e, rank == 0 ? &in : NULL, &a->o, &sum);
    IVL_CHECK(rc == 0, "bench e2e: the caption run ended with %d", rc);
    if (rank == 0) {
        IVL_CHECK(sum.done == a->images, "bench e2e: %lld of %d images captioned", (long long)sum.done,
                  a->images);
        a->peak = sum.peak_in_flight;
        ivl_cap_inputs_free(&in);
    }
    ivl_sched_free(a->eng.sched);
    a->eng.sched = NULL;
}

void ivl_bench_e2e_caption(ivl_bench_ctx *c, const ivl_tokenizer *tok, const int *tiles,
                           int images, int64_t out_len, int64_t kv_bytes, int max_seqs,
                           ivl_bench_meas *m) {
    const ivl_model_config *cfg = &c->m->cfg;
    const int rank = c->dist.topo.world.rank;
    snprintf(m->phase, sizeof m->phase, "e2e");
    m->images = images;
    m->output_len = out_len;
    snprintf(m->unit, sizeof m->unit, "images/s");
    cap_arg a = {.c = c, .images = images};
    const ivl_chat_template *tmpl = ivl_chat_template_find(cfg->template_name);
    const int32_t img_context = ivl_chat_image_context_id(tok);
    IVL_CHECK(tmpl && img_context >= 0, "bench e2e: %s", ivl_last_error());
    int max_tiles = 1, total = 0;
    for (int i = 0; i < images; i++) {
        max_tiles = tiles[i] > max_tiles ? tiles[i] : max_tiles;
        total += tiles[i] + (cfg->use_thumbnail && tiles[i] > 1);
    }
    m->tiles = total;
    // Synthetic photos, on rank 0 (it decodes every image).
    snprintf(a.dir, sizeof a.dir, "/tmp/ivl-bench-e2e-%d", (int)getpid());
    snprintf(a.in_dir, sizeof a.in_dir, "%s/images", a.dir);
    size_t o = (size_t)snprintf(m->extra, sizeof m->extra, "caption pipeline; tiles per image:");
    for (int i = 0; i < images; i++) {
        int r, cl;
        grid_of(tiles[i], &r, &cl);
        if (o < sizeof m->extra) o += (size_t)snprintf(m->extra + o, sizeof m->extra - o, " %d", tiles[i]);
        if (rank != 0) continue;
        if (i == 0) {
            mkdir(a.dir, 0755);
            mkdir(a.in_dir, 0755);
        }
        char p[400];
        snprintf(p, sizeof p, "%s/img%04d.bmp", a.in_dir, i);
        IVL_CHECK(write_bmp(p, 448 * cl, 448 * r, c->seed + (uint64_t)i) == 0, "bench e2e: %s",
                  ivl_last_error());
    }
    a.inputs[0] = a.in_dir;
    a.o.prompt = "Describe the image in detail.";
    a.o.max_tiles = max_tiles;
    a.o.max_new_tokens = (int)out_len;
    a.o.sampling = ivl_sampling_default();
    a.o.max_seqs = max_seqs > 0 ? max_seqs : 64;
    a.o.batch_tokens = 8192;
    a.o.threads = 4;
    a.o.queue = 2 * a.o.max_seqs;
    a.o.flush_s = 3600;
    a.o.log_s = 3600;
    a.o.max_member_bytes = (int64_t)256 << 20;
    // The KV pool: the given bytes, or what every image at once needs.
    const int bs = 16;
    const int64_t max_ctx = ivl_caption_max_ctx(tok, tmpl, cfg, &a.o);
    IVL_CHECK(max_ctx > 0, "bench e2e: %s", ivl_last_error());
    const int64_t per_block = ivl_kv_bytes_per_token(&cfg->llm, &c->m->shard, c->be->dtype) * bs;
    int64_t nb = kv_bytes > 0 ? kv_bytes / per_block : (int64_t)images * ((max_ctx + bs - 1) / bs);
    IVL_CHECK(nb * bs >= max_ctx, "bench e2e: --e2e-kv-mem holds %lld positions, an image needs %lld",
              (long long)(nb * bs), (long long)max_ctx);
    ivl_dist_kv_init(&c->dist, nb, bs);
    a.so = (ivl_sched_opts){.n_blocks = nb, .block_size = bs, .max_seqs = a.o.max_seqs,
                            .step_tokens = a.o.batch_tokens,
                            .rope_exact_len = ivl_llm_rope_exact_len(&cfg->llm), .prefix_reuse = 1};
    a.eng = (ivl_engine){.step = ivl_dist_step(&c->dist), .be = c->be,
                         .step_embeds = &c->dist.image_embeds};
    a.e = (ivl_caption_engine){.cfg = cfg, .eng = &a.eng, .encode = enc, .tile_share = share,
                               .encode_ctx = &c->dist, .be = c->be, .tok = tok, .tmpl = tmpl,
                               .stop_id = -1,   // every image generates exactly out_len
                               .img_context = img_context, .kv_positions = nb * bs,
                               .kv_block = bs};
    ivl_bench_fn f = {NULL, cap_run, &a};
    ivl_bench_time_loop(c->be, &f, c->warmup, c->repeats, m);
    m->units = images;
    if (o < sizeof m->extra)
        snprintf(m->extra + o, sizeof m->extra - o, "; peak in flight %d; KV %lld blocks of %d",
                 a.peak, (long long)nb, bs);
    ivl_engine_free(&a.eng);
    if (c->dist.kv_ready) ivl_kv_cache_free(c->be, &c->m->shard, &c->dist.kv);
    c->dist.kv_ready = 0;
    if (rank == 0) {
        if (nftw(a.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            LOG_WARN("bench e2e: could not remove %s", a.dir);
    }
}
