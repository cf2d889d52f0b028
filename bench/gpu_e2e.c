// gpu_e2e.c - the whole model on the CUDA backend (part of bench/gpu_check.sh).
//
// 1. CUDA vs CPU, end to end, for the three test families' architectures (InternViT-300M +
//    InternLM2, InternViT-300M + Phi-3 with LongRoPE, InternViT-6B style + InternLM2 with
//    dynamic NTK), tiny widths, random weights scaled so logits are well separated: image
//    embeddings and prefill logits compared (relative max error), 16 greedy tokens compared
//    and the first divergence reported (bf16 on the GPU vs f32 on the CPU: a late divergence
//    on a near-tie is expected; a wrong kernel diverges at once and shows in the logits).
// 2. Real sizes on the GPU alone (random weights, no checkpoint): Mini-InternVL-Chat-2B-V1-5
//    and, with --big, InternVL-Chat-V1-5 (26B, ~51 GB bf16): ViT tiles/s, prefill tokens/s,
//    decode tokens/s at batch 1 and 8, each with its model FLOP rate (spec 10 formulas).
// Configs are built in C so this runs on a GPU box without the engine's Debian deps.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/driver/random_weights.h"
#include "core/backend.h"
#include "core/check.h"
#include "core/models/generate.h"
#include "parallel/generate.h"
#include "core/models/internvl.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// ---- configs (spec 1.2, 1.3) ----
static void vit_cfg(ivl_vit_config *v, int big, int hidden, int layers, int heads, int inter) {
    *v = (ivl_vit_config){.hidden = hidden, .layers = layers, .heads = heads,
                          .head_dim = hidden / heads, .intermediate = inter, .image_size = 448,
                          .patch_size = 14, .grid = 32, .norm = big ? IVL_NORM_RMS : IVL_NORM_LAYER,
                          .norm_eps = 1e-6f, .qkv_bias = !big, .qk_norm = big};
}
static void model_cfg(ivl_model_config *c, const char *name, int vit_big, int vh, int vl, int vhd,
                      int vi, ivl_llm_arch arch, int D, int L, int H, int K, int I, int V) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    vit_cfg(&c->vit, vit_big, vh, vl, vh / vhd, vi);
    c->proj = (ivl_projector_config){.in_dim = 4 * vh, .out_dim = D, .downsample = 0.5f,
                                     .ps_version = 2, .tokens_per_tile = 256, .ln_eps = 1e-5f};
    ivl_llm_config *l = &c->llm;
    *l = (ivl_llm_config){.arch = arch, .hidden = D, .layers = L, .heads = H, .kv_heads = K,
                          .head_dim = D / H, .intermediate = I, .vocab = V, .rms_eps = 1e-5f,
                          .bos_id = 1, .eos_id = 2, .pad_id = 2};
    if (arch == IVL_LLM_INTERNLM2) {
        l->rope_theta = 1e6;
        l->max_position = 32768;
        l->rope_scaling = IVL_ROPE_DYNAMIC;
        l->rope_factor = 2.0;
    } else {
        l->rope_theta = 1e4;
        l->max_position = 131072;
        l->original_max_position = 4096;
        l->rope_scaling = IVL_ROPE_SU;
        l->n_rope_factors = l->head_dim / 2;
        for (int k = 0; k < l->n_rope_factors; k++) {
            l->short_factor[k] = 1.0 + k * 0.05;
            l->long_factor[k] = 1.0 + k * 1.3;
        }
    }
    c->template_kind = arch == IVL_LLM_PHI3 ? IVL_TEMPLATE_PHI3 : IVL_TEMPLATE_INTERNLM2;
    c->select_layer = -1;
    c->min_dynamic_patch = 1;
    c->max_dynamic_patch = 12;
    c->use_thumbnail = 1;
}

// ---- weights: the bench reader's shapes, with scales that keep tiny models decisive ----
typedef struct {
    ivl_model_config cfg;
    uint64_t seed;
} scaled_rw;

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int srw_shape(void *ctx, const char *name, int *nd, int64_t *shape) {
    scaled_rw *w = ctx;
    return ivl_random_weights_shape(&w->cfg, name, nd, shape);
}
static int srw_has(void *ctx, const char *name) {
    int nd;
    int64_t sh[4];
    return srw_shape(ctx, name, &nd, sh) == 0;
}

static int srw_read(void *ctx, const char *name, ivl_read_kind kind, int64_t start, int64_t count,
                    ivl_dtype dt, ivl_tensor *out) {
    scaled_rw *w = ctx;
    int nd;
    int64_t sh[4];
    if (srw_shape(ctx, name, &nd, sh) != 0) return ivl_errorf("no tensor %s", name);
    int64_t cols = sh[nd - 1], rows = 1;
    for (int i = 0; i < nd - 1; i++) rows *= sh[i];
    if (nd == 1) rows = sh[0], cols = 1;   // the loaders read slices of vectors as rows
    int64_t r0 = 0, nr = rows, c0 = 0, nc = cols;
    if (kind == IVL_READ_ROWS) { r0 = start; nr = count; }
    if (kind == IVL_READ_COLS) { c0 = start; nc = count; }
    uint64_t key = w->seed;
    for (const char *p = name; *p; p++) key = mix64(key ^ (uint8_t)*p);
    const int is_vec = nd == 1 || (nd == 2 && sh[0] == 1 && strstr(name, "class_embedding") == NULL);
    const int norm = strstr(name, "norm") || strstr(name, "mlp1.0.weight");
    const int ls = strstr(name, ".ls") != NULL;
    float scale, center = 0;
    if (norm && !strstr(name, ".bias")) { center = 1.0f; scale = 0.2f; }
    else if (ls) { center = 0.5f; scale = 0.2f; }
    else if (is_vec) { scale = 0.1f; }
    else if (strstr(name, "embed") || strstr(name, "position")) { scale = 1.0f; }
    else { scale = 1.0f / sqrtf((float)cols); }   // unit-variance outputs
    *out = ivl_tensor_host(IVL_F32, 2, (int64_t[]){nr, nc});
    float *o = out->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < nr; r++)
        for (int64_t c = 0; c < nc; c++) {
            uint64_t z = mix64(key + (uint64_t)((r0 + r) * cols + c0 + c) * 0x9e3779b97f4a7c15ull);
            float u = (float)((double)(z >> 11) * (1.0 / 9007199254740992.0)) * 3.4641016f - 1.7320508f;
            o[r * nc + c] = center + scale * u;
        }
    if (dt != IVL_F32) {
        ivl_tensor t = ivl_tensor_host(dt, 2, (int64_t[]){nr, nc});
        ivl_convert(t.data, dt, out->data, IVL_F32, (size_t)(nr * nc));
        ivl_tensor_free_host(out);
        *out = t;
    }
    return 0;
}

static ivl_weight_reader make_reader(scaled_rw *w) {
    ivl_weight_reader r = {.ctx = w, .read = srw_read, .has = srw_has, .shape = srw_shape};
    return r;
}

// ---- one run on one backend ----
typedef struct {
    float *logits;          // [V]
    float *embeds;          // [tiles*256, D] host
    float *step_logits;     // [ntok, V] logits of every greedy step (keep_host runs only)
    int32_t tokens[64];
    int ntok;
    double t_vit, t_prefill, t_decode;
} run_out;

// A step that records the logits of each call (one sequence): greedy token k is the argmax
// of call k's logits, so where CPU and GPU tokens diverge the logits of that step are kept.
typedef struct {
    ivl_step inner;
    float *out;   // [cap, V]
    int cap, n;
} rec_step;

static void rec_run(void *ctx, const ivl_llm_seq *seqs, int nseq, const int32_t *ids,
                    const int64_t *img_row, float *logits, const ivl_dump *dump) {
    rec_step *r = ctx;
    r->inner.run(r->inner.ctx, seqs, nseq, ids, img_row, logits, dump);
    if (nseq == 1 && r->n < r->cap)
        memcpy(r->out + (size_t)r->n++ * (size_t)r->inner.vocab, logits,
               (size_t)r->inner.vocab * sizeof *logits);
}

static void make_inputs(const ivl_model_config *c, int tiles, int text, int32_t **ids_out,
                        int64_t **img_out, int64_t *n_out, ivl_tensor *pix) {
    int64_t n = 1 + text + (int64_t)tiles * 256 + text;
    int32_t *ids = ivl_malloc((size_t)n * sizeof *ids);
    int64_t *img = ivl_malloc((size_t)n * sizeof *img);
    int32_t ctx = c->llm.vocab - 1;
    int64_t k = 0, r = 0;
    ids[k] = 1, img[k++] = -1;
    for (int i = 0; i < text; i++) ids[k] = 3 + (i * 7919) % (c->llm.vocab - 10), img[k++] = -1;
    for (int64_t i = 0; i < (int64_t)tiles * 256; i++) ids[k] = ctx, img[k++] = r++;
    for (int i = 0; i < text; i++) ids[k] = 3 + (i * 104729) % (c->llm.vocab - 10), img[k++] = -1;
    *ids_out = ids;
    *img_out = img;
    *n_out = n;
    *pix = ivl_tensor_host(IVL_F32, 4, (int64_t[]){tiles, 3, 448, 448});
    float *p = pix->data;
    for (int64_t i = 0; i < ivl_tensor_numel(pix); i++)
        p[i] = (float)((mix64((uint64_t)i + 77) >> 40) % 4000) / 1000.0f - 1.8f;
}

static void load_model(ivl_backend *be, const ivl_model_config *cfg, int vision, ivl_model *m) {
    scaled_rw w = {*cfg, 1234};
    ivl_weight_reader r = make_reader(&w);
    IVL_CHECK(ivl_model_load(m, be, &r, cfg, NULL, NULL, vision) == 0, "%s", ivl_last_error());
}

static void run_loaded(ivl_model *m, int tiles, int text, int new_tokens, run_out *o, int keep_host) {
    ivl_backend *be = m->be;
    const ivl_model_config *cfg = &m->cfg;
    int32_t *ids;
    int64_t *img, n;
    ivl_tensor pix;
    make_inputs(cfg, tiles, text, &ids, &img, &n, &pix);
    ivl_tensor emb = {0};
    double t0 = now();
    if (tiles) ivl_model_encode_images(m, &pix, &emb, NULL);
    be->synchronize(be);
    o->t_vit = now() - t0;
    // The paged cache with one sequence's worth of blocks, stepped by the scheduler.
    const int BS = 16;
    const int64_t ctx = n + new_tokens + 1;
    ivl_kv_cache kv;
    ivl_kv_cache_init(be, &m->cfg.llm, &m->shard, (ctx + BS - 1) / BS, BS, &kv);
    ivl_local_step lc = {m, &kv, NULL};
    ivl_step st = ivl_model_local_step(&lc);
    ivl_sched_opts so = {.n_blocks = kv.n_blocks, .block_size = BS, .max_seqs = 1,
                         .step_tokens = ctx, .rope_exact_len = ivl_llm_rope_exact_len(&m->cfg.llm)};
    ivl_engine eng = {.sched = ivl_sched_new(&so), .step = st, .be = be,
                      .step_embeds = &lc.image_embeds};
    const int64_t V = m->cfg.llm.vocab;
    if (!o->logits) o->logits = ivl_malloc((size_t)V * sizeof(float));
    ivl_gen_prompt gp = {ids, n, tiles ? img : NULL, NULL, tiles ? &emb : NULL};
    ivl_gen_params par = {.max_new_tokens = 1, .stop_id = -1, .sampling = ivl_sampling_default(),
                          .prefill_logits = o->logits};
    int len;
    t0 = now();
    ivl_generate(&eng, &gp, 1, &par, o->tokens, &len, NULL);   // prefill + first token
    be->synchronize(be);
    o->t_prefill = now() - t0;
    // Again with decoding (a fresh scheduler: no prefix kept): total - prefill = decode steps.
    ivl_sched_free(eng.sched);
    eng.sched = ivl_sched_new(&so);
    par.max_new_tokens = new_tokens;
    par.prefill_logits = NULL;
    rec_step rec = {st, NULL, new_tokens, 0};
    ivl_step rst = st;
    if (keep_host) {   // comparison runs: keep every step's logits (timing runs do not)
        free(o->step_logits);
        rec.out = o->step_logits = ivl_malloc((size_t)new_tokens * (size_t)V * sizeof(float));
        rst.ctx = &rec;
        rst.run = rec_run;
        rst.run_argmax = NULL;   // every step through rec_run, which keeps the logits
    }
    t0 = now();
    eng.step = rst;
    ivl_generate(&eng, &gp, 1, &par, o->tokens, &o->ntok, NULL);
    ivl_sched_free(eng.sched);
    ivl_engine_free(&eng);
    be->synchronize(be);
    o->t_decode = now() - t0 - o->t_prefill;
    if (keep_host && tiles) {
        ivl_tensor h = ivl_backend_to_host_f32(be, &emb);
        o->embeds = h.data;
    }
    if (emb.data) be->free(be, &emb);
    ivl_kv_cache_free(be, &m->shard, &kv);
    free(ids);
    free(img);
    ivl_tensor_free_host(&pix);
}

static void run_model(ivl_backend *be, const ivl_model_config *cfg, int tiles, int text, int new_tokens,
                      run_out *o, int keep_host) {
    ivl_model m;
    load_model(be, cfg, tiles > 0, &m);
    run_loaded(&m, tiles, text, new_tokens, o, keep_host);
    ivl_model_free(&m);
}

static double rel_err(const float *a, const float *ref, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - ref[i]));
        s = fmax(s, fabs(ref[i]));
    }
    return s > 0 ? d / s : d;
}

static double max_abs(const float *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

// At the first step where the greedy tokens differ (same prefix up to there on both sides),
// how close was the CPU's choice? cpu/gpu: that step's logits [V]; prefill_err: max |gpu -
// cpu| of the prefill logits. A gap below the logits error of that step is a near-tie that
// bf16 rounding can flip; a gap well above it means the GPU computed something else.
static void report_divergence(const float *cpu, const float *gpu, int64_t V, int32_t tc,
                              int32_t tg, double prefill_err) {
    int32_t second = -1;   // CPU's runner-up
    for (int64_t i = 0; i < V; i++)
        if (i != tc && (second < 0 || cpu[i] > cpu[second])) second = (int32_t)i;
    double step_err = 0;
    for (int64_t i = 0; i < V; i++) step_err = fmax(step_err, fabs((double)gpu[i] - cpu[i]));
    const double mx = max_abs(cpu, V), gap = (double)cpu[tc] - cpu[tg];
    printf("     at that step: cpu logit of cpu's token %d %.5f, of gpu's token %d %.5f: gap %.5f "
           "= %.2e of max|logit| %.3f\n", tc, cpu[tc], tg, cpu[tg], gap, mx > 0 ? gap / mx : gap, mx);
    printf("     gpu logits there: token %d %.5f, token %d %.5f; cpu's runner-up is token %d "
           "(%.5f)\n", tc, gpu[tc], tg, gpu[tg], second, second >= 0 ? cpu[second] : 0.0);
    // A decode step much less accurate than the prefill points at the decode path (gemv,
    // decode attention) even when the gap is small.
    const char *verdict = step_err > 4 * prefill_err
                              ? "SUSPECT: this decode step's logits error is > 4x the prefill's"
                          : gap <= 2 * fmax(step_err, prefill_err)
                              ? "near-tie (within the measured bf16 error)"
                              : "NOT a near-tie: the gap exceeds the measured error";
    printf("     logits error max|gpu - cpu|: this step %.5f, prefill %.5f -> gap / error = %.2f "
           "(this step), %.2f (prefill): %s\n", step_err, prefill_err,
           step_err > 0 ? gap / step_err : INFINITY, prefill_err > 0 ? gap / prefill_err : INFINITY,
           verdict);
}

static int compare_family(ivl_backend *cpu, ivl_backend *gpu, const ivl_model_config *c) {
    const int tiles = 2, text = 24, N = 16;
    run_out a = {0}, b = {0};
    run_model(cpu, c, tiles, text, N, &a, 1);
    run_model(gpu, c, tiles, text, N, &b, 1);
    const int64_t V = c->llm.vocab, E = (int64_t)tiles * 256 * c->llm.hidden;
    double ee = rel_err(b.embeds, a.embeds, E), le = rel_err(b.logits, a.logits, V);
    int same = 0;
    while (same < a.ntok && same < b.ntok && a.tokens[same] == b.tokens[same]) same++;
    // bf16: 8 mantissa bits, errors accumulate over layers; 5e-2 relative is a loose bound
    // that still catches a wrong kernel (those give O(1)).
    int ok = ee < 5e-2 && le < 5e-2 && same >= 1;
    // The timing runs pick greedy tokens on the device (run_argmax: only ids come back); on
    // each backend that must give exactly the tokens of the host argmax over the same logits.
    run_out ad = {0}, bd = {0};
    run_model(cpu, c, tiles, text, N, &ad, 0);
    run_model(gpu, c, tiles, text, N, &bd, 0);
    int dev_same = ad.ntok == a.ntok && bd.ntok == b.ntok &&
                   !memcmp(ad.tokens, a.tokens, sizeof(int32_t) * (size_t)a.ntok) &&
                   !memcmp(bd.tokens, b.tokens, sizeof(int32_t) * (size_t)b.ntok);
    ok = ok && dev_same;
    printf("%-4s %-28s vision_embeds rel %.2e  prefill_logits rel %.2e  greedy tokens equal %d/%d%s; "
           "device argmax = host argmax on both: %s\n",
           ok ? "ok" : "FAIL", c->name, ee, le, same, N,
           same < N ? " (first divergence shown below)" : "", dev_same ? "yes" : "NO");
    printf("     cpu tokens:");
    for (int i = 0; i < a.ntok; i++) printf(" %d", a.tokens[i]);
    printf("\n");
    if (same < N && same < a.ntok && same < b.ntok) {
        printf("     first divergence at token %d: cpu %d gpu %d\n", same, a.tokens[same], b.tokens[same]);
        report_divergence(a.step_logits + (size_t)same * V, b.step_logits + (size_t)same * V, V,
                          a.tokens[same], b.tokens[same], le * max_abs(a.logits, V));
    }
    free(a.logits); free(b.logits); free(a.embeds); free(b.embeds);
    free(a.step_logits); free(b.step_logits);
    free(ad.logits); free(bd.logits); free(ad.embeds); free(bd.embeds);
    free(ad.step_logits); free(bd.step_logits);
    return ok;
}

// Spec 10 FLOPs.
static double vit_flops_per_tile(const ivl_model_config *c) {
    double N = 1025, C = c->vit.hidden, I = c->vit.intermediate;
    return c->vit.layers * (2 * N * (4 * C * C + 2 * C * I) + 4 * N * N * C) + 2 * 1024 * 588 * C +
           2 * 256.0 * (c->proj.in_dim * (double)c->proj.out_dim + (double)c->proj.out_dim * c->proj.out_dim);
}
static double llm_linear_flops(const ivl_model_config *c) {   // per token, without attention
    const ivl_llm_config *l = &c->llm;
    double D = l->hidden, hd = l->head_dim;
    return 2.0 * l->layers * (D * (l->heads + 2 * l->kv_heads) * hd + l->heads * hd * D + 3 * D * l->intermediate);
}

static void throughput(ivl_backend *gpu, const ivl_model_config *c, int tiles, int text, int decode) {
    double t0 = now();
    ivl_model m;
    load_model(gpu, c, 1, &m);
    double t_load = now() - t0;
    run_out o = {0}, p = {0};
    run_loaded(&m, tiles, text, 4, &o, 0);          // warm-up
    run_loaded(&m, tiles, text, decode, &p, 0);     // measured
    ivl_model_free(&m);
    int64_t S = 1 + 2 * text + (int64_t)tiles * 256;
    double vit_f = vit_flops_per_tile(c) * tiles;
    double pre_f = S * llm_linear_flops(c) + 2.0 * c->llm.hidden * c->llm.vocab +
                   4.0 * c->llm.layers * c->llm.heads * c->llm.head_dim * S * (S + 1) / 2;
    double dec_tok = p.ntok > 1 ? p.ntok - 1 : 1;
    double dec_f = dec_tok * (llm_linear_flops(c) + 2.0 * c->llm.hidden * c->llm.vocab);
    printf("%-28s vit %d tiles %.3f s = %.1f tiles/s (%.0f TFLOP/s) | prefill %lld tokens %.3f s = %.0f tok/s (%.0f TFLOP/s) | "
           "decode b1 %.0f tokens %.3f s = %.1f tok/s (%.2f TFLOP/s) | random init + upload %.1f s\n",
           c->name, tiles, p.t_vit, tiles / p.t_vit, vit_f / p.t_vit / 1e12, (long long)S, p.t_prefill,
           S / p.t_prefill, pre_f / p.t_prefill / 1e12, dec_tok, p.t_decode, dec_tok / p.t_decode,
           dec_f / p.t_decode / 1e12, t_load);
    free(o.logits); free(p.logits);
}

int main(int argc, char **argv) {
    int big = argc > 1 && !strcmp(argv[1], "--big");
    ivl_backend *cpu = ivl_backend_cpu_create();
    // IVL_E2E_DEVICE=cpu runs the comparison CPU vs CPU: a check of this program on a machine
    // without a GPU (the throughput part is then skipped).
    const char *dev = getenv("IVL_E2E_DEVICE") ? getenv("IVL_E2E_DEVICE") : "cuda";
    ivl_backend *gpu = ivl_backend_create(dev, 0);
    printf("gpu_e2e: %s vs %s\n", gpu->device_name, cpu->device_name);
    ivl_model_config fam[3];
    // head dims as the real models (ViT 64 / 128, InternLM2 128, Phi-3 96), small widths
    model_cfg(&fam[0], "mini2b-like (300M+InternLM2)", 0, 128, 2, 64, 256, IVL_LLM_INTERNLM2, 512, 4, 4, 2, 640, 1509);
    model_cfg(&fam[1], "mini4b-like (300M+Phi-3 su)", 0, 128, 2, 64, 256, IVL_LLM_PHI3, 384, 4, 4, 4, 640, 1220);
    fam[1].llm.original_max_position = 512;   // the 2-tile prompt crosses it: long factors
    fam[1].llm.max_position = 16384;
    model_cfg(&fam[2], "v15-like (6B+InternLM2 NTK)", 1, 640, 2, 128, 1280, IVL_LLM_INTERNLM2, 768, 4, 6, 2, 1536, 1509);
    fam[2].llm.max_position = 400;            // dynamic NTK active
    fam[2].llm.rope_factor = 3.0;
    int ok = 1;
    for (int i = 0; i < 3; i++) ok &= compare_family(cpu, gpu, &fam[i]);
    fflush(stdout);

    if (strcmp(dev, "cuda")) {
        printf("gpu_e2e: %s\n", ok ? "all families agree" : "SOME FAMILIES DISAGREE");
        return ok ? 0 : 1;
    }
    ivl_model_config m2b, m26b;
    model_cfg(&m2b, "Mini-InternVL-Chat-2B-V1-5", 0, 1024, 24, 64, 4096, IVL_LLM_INTERNLM2, 2048, 24, 16, 8, 8192, 92553);
    throughput(gpu, &m2b, 13, 32, 64);
    fflush(stdout);
    if (big) {
        model_cfg(&m26b, "InternVL-Chat-V1-5 (26B)", 1, 3200, 45, 128, 12800, IVL_LLM_INTERNLM2, 6144, 48, 48, 8, 16384, 92553);
        m26b.llm.rope_factor = 3.0;
        throughput(gpu, &m26b, 13, 32, 32);
    }
    ivl_backend_destroy(gpu);
    ivl_backend_destroy(cpu);
    printf("gpu_e2e: %s\n", ok ? "all families agree within bf16 tolerance" : "SOME FAMILIES DISAGREE");
    return ok ? 0 : 1;
}
