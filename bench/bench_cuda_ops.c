// bench_cuda_ops.c - the CUDA backend on a real GPU: every op against the CPU backend, the
// card's measured GEMM ceiling and copy bandwidth, and the ops at the real model shapes
// (InternViT-6B layer, InternLM2-20B prefill layer, decode at batch 1 and 64).
//
//   bench_cuda_ops [--check] [--bench] [--tiles N] [--prefill S] [--ctx L] [--quick]
//   (no flag = --check --bench). Exit status: 0 ok, 1 a check failed, 3 no CUDA device.
//
// Correctness: the same inputs (random values already rounded to the GPU's dtype, so both
// sides see identical numbers) go to both backends; outputs are compared with
//   NMSE = sum (gpu - cpu)^2 / sum cpu^2
// against a per-op threshold stated in the table below. The CPU computes in f32, the GPU
// in bf16 (fp16 below sm_80) and rounds every op's output (and, following the reference,
// some intermediates) to it: one bf16 rounding of a value gives a relative error of at most
// 2^-9, an NMSE around 1e-6, so the thresholds allow one to a few roundings; fp16 has 3 more
// mantissa bits (64x smaller NMSE) and gets thresholds 16x tighter. Exact ops (embedding
// gather, pixel shuffle, argmax) must match bit for bit.
//
// Only the backend table and ivl_cuda.h are used: the same code paths as the model.
#include "core/backend.h"
#include "core/check.h"
#include "core/cuda/ivl_cuda.h"
#include "core/log.h"
#include "core/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static ivl_backend *g_cpu, *g_gpu;
static int g_fail, g_checks;
static double g_tol_mult = 1.0;   // 1 for bf16, 1/16 for fp16

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ---------------------------------------------------------------- inputs
static uint64_t g_rng = 0x1234567887654321ull;
static float frand(void) {   // uniform [-1, 1)
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

// Host f32 tensor of random values in [lo, hi), rounded to the GPU dtype.
static ivl_tensor host_rand(int ndim, const int64_t *shape, float lo, float hi) {
    ivl_tensor h = ivl_tensor_host(IVL_F32, ndim, shape);
    float *p = h.data;
    int64_t n = ivl_tensor_numel(&h);
    for (int64_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * 0.5f * (frand() + 1.0f);
    void *tmp = ivl_malloc((size_t)n * 2);
    ivl_convert(tmp, g_gpu->dtype, p, IVL_F32, (size_t)n);
    ivl_convert(p, IVL_F32, tmp, g_gpu->dtype, (size_t)n);
    free(tmp);
    return h;
}

typedef struct {
    ivl_tensor h, c, g;   // host f32, CPU backend, GPU backend
} trio;

static trio trio_from(ivl_tensor h) {
    trio t = {h, ivl_backend_from_host(g_cpu, &h), ivl_backend_from_host(g_gpu, &h)};
    return t;
}
static trio trio_rand(int ndim, const int64_t *shape, float lo, float hi) {
    return trio_from(host_rand(ndim, shape, lo, hi));
}
static trio trio_zeros(int ndim, const int64_t *shape) {
    trio t;
    t.h = ivl_tensor_host(IVL_F32, ndim, shape);
    t.c = g_cpu->alloc(g_cpu, g_cpu->dtype, ndim, shape);
    t.g = g_gpu->alloc(g_gpu, g_gpu->dtype, ndim, shape);
    return t;
}
static void trio_free(trio *t) {
    ivl_tensor_free_host(&t->h);
    g_cpu->free(g_cpu, &t->c);
    g_gpu->free(g_gpu, &t->g);
}

#define SHAPE(...) ((int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define RAND(lo, hi, ...) trio_rand(NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__), lo, hi)
#define ZEROS(...) trio_zeros(NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__))

// ---------------------------------------------------------------- comparison
// tol: max NMSE for bf16 (scaled by g_tol_mult for fp16); tol < 0: must be bit-exact.
static void compare(const char *name, const trio *t, double tol) {
    ivl_tensor a = ivl_backend_to_host_f32(g_cpu, &t->c);
    ivl_tensor b = ivl_backend_to_host_f32(g_gpu, &t->g);
    const float *x = a.data, *y = b.data;
    int64_t n = ivl_tensor_numel(&a), bad = 0, first_bad = -1;
    double num = 0, den = 0, maxd = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)y[i] - x[i];
        if (!isfinite(y[i]) && isfinite(x[i])) bad++;
        if (d != 0 && first_bad < 0) first_bad = i;
        num += d * d;
        den += (double)x[i] * x[i];
        if (fabs(d) > maxd) maxd = fabs(d);
    }
    double nmse = den > 0 ? num / den : num;
    double lim = tol < 0 ? 0 : tol * g_tol_mult;
    int ok = bad == 0 && (tol < 0 ? num == 0 : nmse <= lim);
    g_checks++;
    if (!ok) g_fail++;
    char sh[96];
    printf("  %-44s %-22s nmse %9.2e (max %8.1e) max|d| %9.3e  %s\n", name,
           ivl_tensor_shape_str(&a, sh, sizeof sh), nmse, lim, maxd, ok ? "ok" : "FAIL");
    if (!ok && first_bad >= 0)
        printf("    first difference at %lld: cpu %.6g gpu %.6g%s\n", (long long)first_bad,
               x[first_bad], y[first_bad], bad ? " (non-finite GPU values)" : "");
    ivl_tensor_free_host(&a);
    ivl_tensor_free_host(&b);
}

// Thresholds (bf16): one or two output roundings, see the header comment.
#define TOL_ELEM 2e-5   // elementwise, norms, rope
#define TOL_GEMM 2e-5   // matmul, patch_embed: f32 accumulate, one output rounding
#define TOL_ATTN 1e-4   // attention: P rounded to bf16 before P.V, plus the output rounding
#define EXACT (-1.0)

// ---------------------------------------------------------------- op checks
static void check_memory_ops(void) {
    printf("memory ops\n");
    trio t = RAND(-3, 3, 37, 129);
    compare("upload f32 -> download f32", &t, EXACT);
    // Host bf16/f16 source: converted on the device.
    ivl_tensor h16 = ivl_tensor_host(g_gpu->dtype == IVL_BF16 ? IVL_BF16 : IVL_F16, 2, SHAPE(37, 129));
    ivl_convert(h16.data, h16.dtype, t.h.data, IVL_F32, 37 * 129);
    ivl_tensor g2 = g_gpu->alloc(g_gpu, g_gpu->dtype, 2, SHAPE(37, 129));
    g_gpu->upload(g_gpu, &g2, &h16);
    trio t2 = {t.h, t.c, g2};
    compare("upload 16-bit host tensor", &t2, EXACT);
    ivl_tensor f16h = ivl_tensor_host(IVL_F16, 2, SHAPE(37, 129));
    g_gpu->download(g_gpu, &f16h, &g2);
    float *back = ivl_malloc(sizeof(float) * 37 * 129);
    ivl_convert(back, IVL_F32, f16h.data, IVL_F16, 37 * 129);
    double md = 0;
    for (int i = 0; i < 37 * 129; i++) md = fmax(md, fabs(back[i] - ((float *)t.h.data)[i]));
    g_checks++;
    int ok = md <= 3 * 0.002;   // values in [-3,3], f16 spacing at 2..4 is 2^-9
    if (!ok) g_fail++;
    printf("  %-44s max|d| %.3e  %s\n", "download to an f16 host tensor", md, ok ? "ok" : "FAIL");
    free(back);
    ivl_tensor_free_host(&f16h);
    ivl_tensor_free_host(&h16);
    // copy of a row range (views) and zero
    trio d = ZEROS(37, 129);
    ivl_tensor sc = ivl_tensor_slice(&t.c, 5, 10), sg = ivl_tensor_slice(&t.g, 5, 10);
    ivl_tensor dc = ivl_tensor_slice(&d.c, 20, 10), dg = ivl_tensor_slice(&d.g, 20, 10);
    g_cpu->copy(g_cpu, &dc, &sc);
    g_gpu->copy(g_gpu, &dg, &sg);
    compare("copy rows 5..14 -> 20..29", &d, EXACT);
    g_cpu->zero(g_cpu, &t.c);
    g_gpu->zero(g_gpu, &t.g);
    compare("zero", &t, EXACT);
    g_gpu->free(g_gpu, &g2);
    trio_free(&d);
    trio_free(&t);
}

static void check_matmul(int64_t M, int64_t N, int64_t K, int with_bias) {
    trio x = RAND(-1, 1, M, K), w = RAND(-0.05f, 0.05f, N, K), b = RAND(-1, 1, N);
    trio y = ZEROS(M, N);
    g_cpu->matmul(g_cpu, &y.c, &x.c, &w.c, with_bias ? &b.c : NULL);
    g_gpu->matmul(g_gpu, &y.g, &x.g, &w.g, with_bias ? &b.g : NULL);
    char name[96];
    const char *gv = getenv("IVL_CUDA_GEMV");
    snprintf(name, sizeof name, "matmul M=%lld N=%lld K=%lld%s%s", (long long)M, (long long)N,
             (long long)K, with_bias ? " +bias" : "", gv && !strcmp(gv, "0") ? " [cuBLASLt]" : "");
    compare(name, &y, TOL_GEMM);
    trio_free(&x), trio_free(&w), trio_free(&b), trio_free(&y);
}

// Decode matmuls, M <= 8: the weight-streaming kernel (core/cuda/gemv.cu; IVL_CUDA_GEMV=8 so
// that it takes every M <= 8, the default stops at 4) where K % 8 == 0,
// cuBLASLt where not (K = 588, 1000 + 4); N = 1, odd N (last block of 4 rows partly empty),
// K shorter than one block's stride (K = 8, 24) and not a multiple of it. Each shape also
// with IVL_CUDA_GEMV=0 ([cuBLASLt]) so a failure points at one of the two paths.
static int env_save(const char *name, char *buf, size_t n) {   // 0: unset
    const char *v = getenv(name);
    if (!v) return 0;
    snprintf(buf, n, "%s", v);
    return 1;
}
static void env_restore(const char *name, int had, const char *buf) {
    if (had) setenv(name, buf, 1);
    else unsetenv(name);
}

// matmul_n (q/k/v in one launch) and matmul_glu (gate/up + SiLU in one launch): against the
// CPU, and against the same backend's separate ops, which must give the same bits (the fused
// kernels keep every rounding); M = 5 and K % 8 != 0 take the unfused path.
static void check_fused_matmuls(void) {
    static const int64_t shapes[][3] = {{1, 2048, 1536}, {3, 1024, 520}, {4, 6144, 1027},
                                        {5, 512, 300}, {2, 588, 200}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t M = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
        trio x = RAND(-1, 1, M, K), wq = RAND(-0.05f, 0.05f, N, K);
        trio wk = RAND(-0.05f, 0.05f, N / 4 + 1, K), wv = RAND(-0.05f, 0.05f, N / 4 + 1, K);
        trio yq = ZEROS(M, N), yk = ZEROS(M, N / 4 + 1), yv = ZEROS(M, N / 4 + 1);
        trio g = ZEROS(M, N), up = ZEROS(M, N);
        ivl_tensor *yc[3] = {&yq.c, &yk.c, &yv.c}, *yg[3] = {&yq.g, &yk.g, &yv.g};
        const ivl_tensor *wc[3] = {&wq.c, &wk.c, &wv.c}, *wg[3] = {&wq.g, &wk.g, &wv.g};
        g_cpu->matmul_n(g_cpu, 3, yc, &x.c, wc);
        g_gpu->matmul_n(g_gpu, 3, yg, &x.g, wg);
        char name[96];
        const char *tag[3] = {"q", "k", "v"};
        trio *ys[3] = {&yq, &yk, &yv};
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "matmul_n M=%lld K=%lld: %s [N=%lld]", (long long)M,
                     (long long)K, tag[i], (long long)ivl_tensor_cols(&ys[i]->h));
            compare(name, ys[i], TOL_GEMM);
        }
        g_cpu->matmul_glu(g_cpu, &g.c, &up.c, &x.c, &wq.c, &wq.c);
        g_gpu->matmul_glu(g_gpu, &g.g, &up.g, &x.g, &wq.g, &wq.g);
        snprintf(name, sizeof name, "matmul_glu M=%lld K=%lld N=%lld", (long long)M, (long long)K,
                 (long long)N);
        compare(name, &g, 4 * TOL_GEMM);   // gate, up and silu each rounded once
        // Same bits as the unfused sequence on the GPU.
        ivl_tensor sep = ivl_backend_alloc_2d(g_gpu, M, N), su = ivl_backend_alloc_2d(g_gpu, M, N);
        trio ks = RAND(-0.05f, 0.05f, N, K);   // a different up weight
        g_gpu->matmul_glu(g_gpu, &g.g, &up.g, &x.g, &wq.g, &ks.g);
        g_gpu->matmul(g_gpu, &sep, &x.g, &wq.g, NULL);
        g_gpu->matmul(g_gpu, &su, &x.g, &ks.g, NULL);
        g_gpu->silu_mul(g_gpu, &sep, &sep, &su);
        ivl_tensor a = ivl_backend_to_host_f32(g_gpu, &g.g), b = ivl_backend_to_host_f32(g_gpu, &sep);
        int same = !memcmp(a.data, b.data, sizeof(float) * (size_t)(M * N));
        g_checks++;
        if (!same) g_fail++;
        printf("  %-44s %s\n", "matmul_glu fused == matmul, matmul, silu_mul (bits)",
               same ? "ok" : "FAIL");
        ivl_tensor_free_host(&a), ivl_tensor_free_host(&b);
        g_gpu->free(g_gpu, &sep), g_gpu->free(g_gpu, &su);
        trio *all[] = {&x, &wq, &wk, &wv, &yq, &yk, &yv, &g, &up, &ks};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) trio_free(all[i]);
    }
}

static void check_gemv(void) {
    static const int ms[] = {1, 2, 5, 8};
    static const struct { int64_t N, K; int bias; } sh[] = {
        {1, 1024, 0}, {1, 8, 1}, {333, 2048, 1}, {4099, 512, 0}, {7, 24, 1},
        {130, 1000, 0}, {96, 588, 1}, {61, 1004, 0},
    };
    char keep[64];
    int had = env_save("IVL_CUDA_GEMV", keep, sizeof keep);
    for (int pass = 0; pass < 2; pass++) {
        printf("matmul M <= 8, %s\n", pass == 0 ? "IVL_CUDA_GEMV=8: gemv kernel (K % 8 != 0: cuBLASLt fallback)"
                                                : "IVL_CUDA_GEMV=0 (cuBLASLt)");
        setenv("IVL_CUDA_GEMV", pass == 0 ? "8" : "0", 1);
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (size_t si = 0; si < sizeof sh / sizeof sh[0]; si++)
                check_matmul(ms[mi], sh[si].N, sh[si].K, sh[si].bias);
    }
    env_restore("IVL_CUDA_GEMV", had, keep);
}

static void check_rows(void) {
    printf("norms and elementwise\n");
    {
        trio x = RAND(-2, 2, 33, 3200), w = RAND(0.5f, 1.5f, 3200), y = ZEROS(33, 3200);
        g_cpu->rmsnorm(g_cpu, &y.c, &x.c, &w.c, 1e-6f);
        g_gpu->rmsnorm(g_gpu, &y.g, &x.g, &w.g, 1e-6f);
        compare("rmsnorm [33, 3200]", &y, TOL_ELEM);
        g_cpu->rmsnorm(g_cpu, &x.c, &x.c, &w.c, 1e-5f);   // in place
        g_gpu->rmsnorm(g_gpu, &x.g, &x.g, &w.g, 1e-5f);
        compare("rmsnorm in place", &x, TOL_ELEM);
        trio_free(&x), trio_free(&w), trio_free(&y);
    }
    {
        trio x = RAND(1, 3, 17, 12800), w = RAND(0.5f, 1.5f, 12800), b = RAND(-1, 1, 12800);
        trio y = ZEROS(17, 12800);
        g_cpu->layernorm(g_cpu, &y.c, &x.c, &w.c, &b.c, 1e-5f);
        g_gpu->layernorm(g_gpu, &y.g, &x.g, &w.g, &b.g, 1e-5f);
        compare("layernorm [17, 12800] (mean far from 0)", &y, TOL_ELEM);
        trio_free(&x), trio_free(&w), trio_free(&b), trio_free(&y);
    }
    {
        trio x = RAND(-5, 5, 19, 1000), u = RAND(-2, 2, 19, 1000), y = ZEROS(19, 1000);
        g_cpu->gelu(g_cpu, &y.c, &x.c);
        g_gpu->gelu(g_gpu, &y.g, &x.g);
        compare("gelu (erf)", &y, TOL_ELEM);
        g_cpu->silu_mul(g_cpu, &y.c, &x.c, &u.c);
        g_gpu->silu_mul(g_gpu, &y.g, &x.g, &u.g);
        compare("silu_mul", &y, TOL_ELEM);
        g_cpu->silu_mul(g_cpu, &x.c, &x.c, &u.c);   // y aliases gate
        g_gpu->silu_mul(g_gpu, &x.g, &x.g, &u.g);
        compare("silu_mul in place", &x, TOL_ELEM);
        g_cpu->add(g_cpu, &y.c, &u.c);
        g_gpu->add(g_gpu, &y.g, &u.g);
        compare("add", &y, TOL_ELEM);
        trio s = RAND(-0.5f, 0.5f, 1000);
        g_cpu->add_scaled(g_cpu, &y.c, &u.c, &s.c);
        g_gpu->add_scaled(g_gpu, &y.g, &u.g, &s.g);
        compare("add_scaled (LayerScale)", &y, TOL_ELEM);
        g_cpu->scale(g_cpu, &y.c, 0.37f);
        g_gpu->scale(g_gpu, &y.g, 0.37f);
        compare("scale", &y, TOL_ELEM);
        trio_free(&x), trio_free(&u), trio_free(&y), trio_free(&s);
    }
}

static void check_rope(int64_t T, int H, int hd, int64_t pos0) {
    trio x = RAND(-2, 2, T, (int64_t)H * hd);
    int half = hd / 2;
    float *cs = ivl_malloc(sizeof(float) * T * half), *sn = ivl_malloc(sizeof(float) * T * half);
    for (int64_t t = 0; t < T; t++)
        for (int k = 0; k < half; k++) {
            double a = (double)(pos0 + t) * pow(1e6, -2.0 * k / hd);
            cs[t * half + k] = (float)cos(a);
            sn[t * half + k] = (float)sin(a);
        }
    for (int rep = 0; rep < 2; rep++) {   // twice: the second call reuses the uploaded tables
        g_cpu->rope(g_cpu, &x.c, H, hd, cs, sn);
        g_gpu->rope(g_gpu, &x.g, H, hd, cs, sn);
    }
    char name[96];
    snprintf(name, sizeof name, "rope x2 T=%lld H=%d hd=%d pos0=%lld", (long long)T, H, hd,
             (long long)pos0);
    compare(name, &x, 2 * TOL_ELEM);
    free(cs), free(sn);
    trio_free(&x);
}

static void check_attention(const char *what, int64_t T, int64_t L, int H, int KH, int hd,
                            int causal, int64_t pos0) {
    trio q = RAND(-1.5f, 1.5f, T, (int64_t)H * hd), k = RAND(-1.5f, 1.5f, L, (int64_t)KH * hd);
    trio v = RAND(-1, 1, L, (int64_t)KH * hd), o = ZEROS(T, (int64_t)H * hd);
    float sc = 1.0f / sqrtf((float)hd);
    g_cpu->attention(g_cpu, &o.c, &q.c, &k.c, &v.c, H, KH, hd, causal, pos0, sc);
    g_gpu->attention(g_gpu, &o.g, &q.g, &k.g, &v.g, H, KH, hd, causal, pos0, sc);
    char name[128];
    snprintf(name, sizeof name, "attention %s T=%lld L=%lld H=%d/%d hd=%d%s", what, (long long)T,
             (long long)L, H, KH, hd, causal ? " causal" : "");
    compare(name, &o, TOL_ATTN);
    trio_free(&q), trio_free(&k), trio_free(&v), trio_free(&o);
}

// attention_batch (core/cuda/attention_batch.cu): sequences (n queries, len keys) whose KV
// rows sit in a shared cache in permuted, gapped slots, query rows packed in order. One pass
// with the batched kernel (n > 16 goes to the single-sequence path inside the op), one
// with IVL_CUDA_BATCH_ATTN=0 (the per-sequence fallback), and one through block tables (the
// paged KV cache; blocks of one row naming the same rows), all against the CPU.
static void check_attention_batch(const char *what, int H, int KH, int hd, const int64_t *ns,
                                  const int64_t *lens, int nseq, int causal) {
    ivl_attn_seq *sq = ivl_malloc(sizeof *sq * (size_t)nseq);
    int64_t T = 0, LK = 0;
    for (int i = 0; i < nseq; i++) T += ns[i];
    for (int j = 0; j < nseq; j++) {   // slots in the order 0, nseq-1, 1, nseq-2, ... + 5 gap rows
        int i = j % 2 ? nseq - 1 - j / 2 : j / 2;
        sq[i].kv_row0 = LK, sq[i].len = lens[i], sq[i].n = ns[i];
        LK += lens[i] + 5;
    }
    for (int i = 0, r = 0; i < nseq; r += (int)ns[i], i++) sq[i].q_row0 = r;
    trio q = RAND(-1.5f, 1.5f, T, (int64_t)H * hd), k = RAND(-1.5f, 1.5f, LK, (int64_t)KH * hd);
    trio v = RAND(-1, 1, LK, (int64_t)KH * hd), o = ZEROS(T, (int64_t)H * hd);
    float sc = 1.0f / sqrtf((float)hd);
    g_cpu->attention_batch(g_cpu, &o.c, &q.c, &k.c, &v.c, H, KH, hd, causal, sq, nseq, sc);
    char keep[64], name[128];
    int had = env_save("IVL_CUDA_BATCH_ATTN", keep, sizeof keep);
    for (int pass = 0; pass < 2; pass++) {
        if (pass) setenv("IVL_CUDA_BATCH_ATTN", "0", 1);
        else unsetenv("IVL_CUDA_BATCH_ATTN");
        g_gpu->zero(g_gpu, &o.g);
        g_gpu->attention_batch(g_gpu, &o.g, &q.g, &k.g, &v.g, H, KH, hd, causal, sq, nseq, sc);
        if (!pass)   // again: the descriptors are not uploaded a second time (same plan)
            g_gpu->attention_batch(g_gpu, &o.g, &q.g, &k.g, &v.g, H, KH, hd, causal, sq, nseq, sc);
        snprintf(name, sizeof name, "attention_batch %s x%d H=%d/%d hd=%d%s%s", what, nseq, H,
                 KH, hd, causal ? "" : " bidir", pass ? " [per-seq]" : "");
        compare(name, &o, TOL_ATTN);
    }
    env_restore("IVL_CUDA_BATCH_ATTN", had, keep);
    int32_t *tbl = ivl_malloc(sizeof(int32_t) * (size_t)LK);
    ivl_attn_seq *pq = ivl_malloc(sizeof *pq * (size_t)nseq);
    for (int i = 0; i < nseq; i++) {
        pq[i] = sq[i];
        pq[i].blocks = tbl + sq[i].kv_row0;
        pq[i].block_size = 1;
        for (int64_t j = 0; j < sq[i].len; j++) tbl[sq[i].kv_row0 + j] = (int32_t)(sq[i].kv_row0 + j);
    }
    g_gpu->zero(g_gpu, &o.g);
    g_gpu->attention_batch(g_gpu, &o.g, &q.g, &k.g, &v.g, H, KH, hd, causal, pq, nseq, sc);
    snprintf(name, sizeof name, "attention_batch %s x%d H=%d/%d hd=%d%s [paged]", what, nseq, H,
             KH, hd, causal ? "" : " bidir");
    compare(name, &o, TOL_ATTN);
    free(tbl);
    free(pq);
    trio_free(&q), trio_free(&k), trio_free(&v), trio_free(&o);
    free(sq);
}

// scatter_rows: the rows of n sequences' new tokens into a KV cache, out of slot order; C
// odd takes the element path, C * 2 bytes % 16 == 0 the 16-byte path. Bit-exact.
static void check_scatter_rows(int64_t R, int64_t C, int64_t n) {
    trio dst = RAND(-1, 1, R, C), src = RAND(-1, 1, n, C);
    int64_t *rows = ivl_malloc(sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) rows[i] = (i * 7919 + 13) % R;   // distinct: R prime to 7919
    g_cpu->scatter_rows(g_cpu, &dst.c, &src.c, rows, n);
    g_gpu->scatter_rows(g_gpu, &dst.g, &src.g, rows, n);
    char name[96];
    snprintf(name, sizeof name, "scatter_rows %lld rows into [%lld, %lld]", (long long)n,
             (long long)R, (long long)C);
    compare(name, &dst, EXACT);
    free(rows);
    trio_free(&dst), trio_free(&src);
}

// The upload cache (cuda_upload_scratch): the same rows twice, other rows of the same size,
// then the first rows again: each call must use its own rows.
static void check_scatter_rows_cache(void) {
    const int64_t R = 97, C = 64, n = 5;
    int64_t ra[5] = {3, 50, 7, 96, 0}, rb[5] = {4, 51, 8, 95, 1};
    const int64_t *seq[4] = {ra, ra, rb, ra};
    for (int i = 0; i < 4; i++) {
        trio dst = RAND(-1, 1, R, C), src = RAND(-1, 1, n, C);
        g_cpu->scatter_rows(g_cpu, &dst.c, &src.c, seq[i], n);
        g_gpu->scatter_rows(g_gpu, &dst.g, &src.g, seq[i], n);
        char name[96];
        snprintf(name, sizeof name, "scatter_rows upload cache, call %d (%s rows)", i + 1,
                 seq[i] == ra ? (i ? "same" : "first") : "other");
        compare(name, &dst, EXACT);
        trio_free(&dst), trio_free(&src);
    }
}

static void check_batched_decode(int quick) {
    printf("scatter_rows, attention_batch (continuous-batching decode)\n");
    check_scatter_rows_cache();
    check_scatter_rows(1031, 1024, 64);
    check_scatter_rows(101, 33, 17);
    check_scatter_rows(3000, 128, 1);
    static const int64_t n1[] = {1}, l1[] = {3000};
    static const int64_t n7[] = {1, 1, 3, 17, 16, 1, 5}, l7[] = {1, 3000, 777, 100, 500, 2, 1025};
    int64_t n64[64], l64[64];
    for (int i = 0; i < 64; i++) {   // lengths 1..3000 (more short ones), n mostly 1
        l64[i] = 1 + (int64_t)i * i * 2999 / (63 * 63);
        n64[i] = i % 9 == 4 ? 3 : 1;
    }
    n64[40] = 20;   // one prefill chunk (single-sequence path)
    static const struct { int H, KH, hd; } hc[] = {{48, 8, 128}, {16, 16, 64}};
    for (int c = 0; c < 2; c++) {
        check_attention_batch("b1", hc[c].H, hc[c].KH, hc[c].hd, n1, l1, 1, 1);
        check_attention_batch("b7-mixed", hc[c].H, hc[c].KH, hc[c].hd, n7, l7, 7, 1);
        if (!quick || c == 0)
            check_attention_batch("b64", hc[c].H, hc[c].KH, hc[c].hd, n64, l64, 64, 1);
    }
    // Several prefill chunks in one call (the flash kernel's multi-sequence launch), mixed with
    // decode rows; and the ViT's use: bidirectional tiles of equal length, 1025 tokens
    // (InternViT-300M heads of 64, 6B heads of 128), more tiles than one launch takes (48).
    static const int64_t np[] = {100, 1, 37, 300, 17, 2}, lp[] = {100, 900, 1000, 2100, 17, 40};
    check_attention_batch("prefill-mixed", 48, 8, 128, np, lp, 6, 1);
    check_attention_batch("prefill-mixed", 32, 32, 96, np, lp, 6, 1);
    static const int64_t nt[] = {1025, 1025, 1025}, nt2[] = {257, 3, 40, 257};
    check_attention_batch("tiles", 16, 16, 64, nt, nt, 3, 0);
    check_attention_batch("tiles", 5, 5, 128, nt, nt, 3, 0);
    check_attention_batch("ragged-bidir", 6, 2, 64, nt2, nt2, 4, 0);
    if (!quick) {
        int64_t n50[50];
        for (int i = 0; i < 50; i++) n50[i] = 65 + (i % 3);
        check_attention_batch("50-tiles", 4, 4, 64, n50, n50, 50, 0);
    }
}

static void check_data_ops(void) {
    printf("embedding, patches, pixel shuffle, argmax\n");
    {
        trio tab = RAND(-1, 1, 1000, 96), out = ZEROS(7, 96);
        int32_t ids[7] = {0, 999, 5, 5, 123, 998, 1};
        g_cpu->embed(g_cpu, &out.c, &tab.c, ids, 7);
        g_gpu->embed(g_gpu, &out.g, &tab.g, ids, 7);
        compare("embed", &out, EXACT);
        trio_free(&tab), trio_free(&out);
    }
    {
        int p = 14, g = 4, C = 64, B = 2;
        trio pix = RAND(-2, 2, B, 3, g * p, g * p), w = RAND(-0.05f, 0.05f, C, 3, p, p);
        trio b = RAND(-1, 1, C), out = ZEROS((int64_t)B * g * g, C);
        ivl_tensor wc = ivl_tensor_view_2d(&w.c, C, 3 * p * p), wg = ivl_tensor_view_2d(&w.g, C, 3 * p * p);
        g_cpu->patch_embed(g_cpu, &out.c, &pix.c, &wc, &b.c, p);
        g_gpu->patch_embed(g_gpu, &out.g, &pix.g, &wg, &b.g, p);
        compare("patch_embed B=2 S=56 p=14 C=64", &out, TOL_GEMM);
        trio_free(&pix), trio_free(&w), trio_free(&b), trio_free(&out);
    }
    for (int ver = 1; ver <= 2; ver++) {
        int g = 8, C = 24, B = 3;
        trio in = RAND(-1, 1, (int64_t)B * g * g, C), out = ZEROS((int64_t)B * g * g / 4, 4 * C);
        g_cpu->pixel_shuffle(g_cpu, &out.c, &in.c, g, ver);
        g_gpu->pixel_shuffle(g_gpu, &out.g, &in.g, g, ver);
        compare(ver == 1 ? "pixel_shuffle v1" : "pixel_shuffle v2", &out, EXACT);
        trio_free(&in), trio_free(&out);
    }
    {
        int64_t R = 3, V = 92553;
        trio lg = RAND(-10, 10, R, V);
        int32_t ic[3], ig[3];
        g_cpu->argmax(g_cpu, &lg.c, ic);
        g_gpu->argmax(g_gpu, &lg.g, ig);
        int ok = !memcmp(ic, ig, sizeof ic);
        g_checks++;
        if (!ok) g_fail++;
        printf("  %-44s cpu %d %d %d gpu %d %d %d  %s\n", "argmax [3, 92553]", ic[0], ic[1], ic[2],
               ig[0], ig[1], ig[2], ok ? "ok" : "FAIL");
        trio_free(&lg);
    }
}

static void run_checks(int quick) {
    check_memory_ops();
    printf("matmul (cuBLASLt)\n");
    check_matmul(67, 200, 320, 1);
    check_matmul(64, 256, 512, 0);
    check_matmul(1, 3200, 1024, 0);     // decode GEMV shape
    check_matmul(5, 96, 588, 1);        // K not a multiple of 8 (patch embedding)
    if (!quick) check_matmul(300, 2048, 2048, 1);
    check_gemv();
    printf("matmul_n / matmul_glu (decode projections in one launch)\n");
    check_fused_matmuls();
    check_rows();
    printf("rope\n");
    check_rope(37, 4, 128, 0);
    check_rope(3, 8, 96, 4000);
    // Every flash variant (IVL_CUDA_FLASH, see core/cuda/attention.cu) on the prefill shapes.
    // "mma"/"mma128" are the mma.sync kernel (core/cuda/flash_mma.cu, the sm_80+ default).
    static const char *variants[] = {"mma", "mma128", "regs64", "regs32", "smem"};
    for (int vi = 0; vi < 5; vi++) {
        setenv("IVL_CUDA_FLASH", variants[vi], 1);
        printf("attention, flash variant %s (T > 16)\n", variants[vi]);
        check_attention("vit", 257, 257, 4, 4, 128, 0, 0);
        check_attention("vit-300M", 1025, 1025, 2, 2, 64, 0, 0);
        check_attention("prefill", 100, 100, 12, 2, 128, 1, 0);
        check_attention("chunk", 40, 100, 12, 2, 128, 1, 60);
        check_attention("phi3", 70, 70, 4, 4, 96, 1, 0);
        check_attention("ragged", 33, 77, 6, 3, 64, 0, 0);
        if (!quick) check_attention("long-chunk", 130, 2100, 8, 2, 128, 1, 1970);
    }
    unsetenv("IVL_CUDA_FLASH");
    printf("attention, decode kernel (T <= 16)\n");
    check_attention("decode", 1, 3000, 48, 8, 128, 1, 2999);
    check_attention("decode-spec", 5, 777, 16, 8, 128, 1, 772);
    check_attention("decode-bidir", 3, 1025, 3, 3, 64, 0, 0);
    check_batched_decode(quick);
    check_data_ops();
}

// ---------------------------------------------------------------- benchmarks
typedef struct {
    const char *name;
    double peak_tflops;   // dense bf16 tensor-core peak
    double peak_gbs;      // HBM bandwidth
} card_spec;

static card_spec lookup_card(const char *name) {
    static const card_spec cards[] = {
        {"H100 80GB HBM3", 989.4, 3350}, {"H100 PCIe", 756.0, 2000}, {"H100 NVL", 835.0, 3900},
        {"H200", 989.4, 4800},          {"A100-SXM4-80GB", 312.0, 2039},
        {"A100-SXM4-40GB", 312.0, 1555}, {"A100 80GB PCIe", 312.0, 1935},
        {"L40S", 362.0, 864},           {"Tesla T4", 65.0, 320},
    };
    for (size_t i = 0; i < sizeof cards / sizeof cards[0]; i++)
        if (strstr(name, cards[i].name)) return cards[i];
    card_spec u = {"unknown", 0, 0};
    return u;
}

static ivl_tensor gpu_rand(int ndim, const int64_t *shape, float amp, uint64_t seed) {
    ivl_tensor t = g_gpu->alloc(g_gpu, g_gpu->dtype, ndim, shape);
    ivl_cuda_ext_of(g_gpu)->fill_random(g_gpu, &t, seed, amp);
    return t;
}
#define GRAND(amp, ...) gpu_rand(NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__), amp, __LINE__)

// Runs fn `iters` times after `warm` warm-up runs; returns seconds per run.
typedef void (*bench_fn)(void *);
static double time_it(bench_fn fn, void *arg, int warm, int iters) {
    for (int i = 0; i < warm; i++) fn(arg);
    g_gpu->synchronize(g_gpu);
    double t0 = now_s();
    for (int i = 0; i < iters; i++) fn(arg);
    g_gpu->synchronize(g_gpu);
    return (now_s() - t0) / iters;
}

static double g_gemm_tflops, g_copy_gbs;

typedef struct { ivl_tensor *y, *x, *w; } mm_args;
static void mm_run(void *p) {
    mm_args *a = p;
    g_gpu->matmul(g_gpu, a->y, a->x, a->w, NULL);
}
typedef struct { ivl_tensor *d, *s; } cp_args;
static void cp_run(void *p) {
    cp_args *a = p;
    g_gpu->copy(g_gpu, a->d, a->s);
}

static void bench_ceiling(void) {
    int64_t n = 8192;
    ivl_tensor x = GRAND(1, n, n), w = GRAND(1, n, n), y = GRAND(1, n, n);
    mm_args a = {&y, &x, &w};
    double t = time_it(mm_run, &a, 3, 20);
    g_gemm_tflops = 2.0 * n * n * n / t / 1e12;
    printf("  GEMM ceiling: %s %lldx%lldx%lld cuBLASLt: %.3f ms = %.1f TFLOP/s\n",
           ivl_dtype_name(g_gpu->dtype), (long long)n, (long long)n, (long long)n, t * 1e3,
           g_gemm_tflops);
    g_gpu->free(g_gpu, &x), g_gpu->free(g_gpu, &w), g_gpu->free(g_gpu, &y);
    int64_t elems = 512LL << 20;   // 1 GiB of 16-bit values
    ivl_tensor s = GRAND(1, elems), d = GRAND(1, elems);
    cp_args c = {&d, &s};
    t = time_it(cp_run, &c, 3, 20);
    g_copy_gbs = 2.0 * (double)elems * 2 / t / 1e9;
    printf("  copy bandwidth: 1 GiB device-to-device: %.3f ms = %.0f GB/s (read + write)\n",
           t * 1e3, g_copy_gbs);
    g_gpu->free(g_gpu, &s), g_gpu->free(g_gpu, &d);
}

// ---- InternViT-6B layer on `tiles` tiles (spec 2): 25 heads x 128, C 3200, I 12800.
typedef struct {
    int tiles, per_tile;   // per_tile: one attention call per tile (the model before batching)
    ivl_attn_seq *seqs;    // the tiles, for attention_batch (as core/models/vit.c)
    ivl_tensor x, h, qkv, q, k, v, att, a, f1;
    ivl_tensor n1, n2, qn, kn, wqkv, wproj, bproj, ls1, ls2, w1, b1, w2, b2;
} vit_layer;

static void vit_run(void *p) {
    vit_layer *L = p;
    ivl_backend *be = g_gpu;
    const int H = 25, hd = 128;
    be->rmsnorm(be, &L->h, &L->x, &L->n1, 1e-6f);
    be->matmul(be, &L->qkv, &L->h, &L->wqkv, NULL);
    // The model splits qkv into q, k, v; here q/k/v are separate buffers of the same size.
    be->rmsnorm(be, &L->q, &L->q, &L->qn, 1e-6f);
    be->rmsnorm(be, &L->k, &L->k, &L->kn, 1e-6f);
    if (!L->per_tile)
        be->attention_batch(be, &L->att, &L->q, &L->k, &L->v, H, H, hd, 0, L->seqs, L->tiles,
                            1.0f / sqrtf((float)hd));
    for (int t = 0; L->per_tile && t < L->tiles; t++) {
        ivl_tensor qt = ivl_tensor_slice(&L->q, t * 1025LL, 1025), kt = ivl_tensor_slice(&L->k, t * 1025LL, 1025);
        ivl_tensor vt = ivl_tensor_slice(&L->v, t * 1025LL, 1025), ot = ivl_tensor_slice(&L->att, t * 1025LL, 1025);
        be->attention(be, &ot, &qt, &kt, &vt, H, H, hd, 0, 0, 1.0f / sqrtf((float)hd));
    }
    be->matmul(be, &L->a, &L->att, &L->wproj, &L->bproj);
    be->add_scaled(be, &L->x, &L->a, &L->ls1);
    be->rmsnorm(be, &L->h, &L->x, &L->n2, 1e-6f);
    be->matmul(be, &L->f1, &L->h, &L->w1, &L->b1);
    be->gelu(be, &L->f1, &L->f1);
    be->matmul(be, &L->a, &L->f1, &L->w2, &L->b2);
    be->add_scaled(be, &L->x, &L->a, &L->ls2);
}

typedef struct { ivl_tensor *o, *q, *k, *v; int H, KH, hd, causal; int64_t pos0; int reps; } at_args;
static void at_run(void *p) {
    at_args *a = p;
    for (int r = 0; r < a->reps; r++)
        g_gpu->attention(g_gpu, a->o, a->q, a->k, a->v, a->H, a->KH, a->hd, a->causal, a->pos0,
                         1.0f / sqrtf((float)a->hd));
}

static void report(const char *what, double flops, double t, const card_spec *cs) {
    double tf = flops / t / 1e12;
    printf("  %-40s %8.3f ms  %7.1f TFLOP/s = %5.1f%% of measured GEMM", what, t * 1e3, tf,
           100 * tf / g_gemm_tflops);
    if (cs->peak_tflops > 0) printf(", MFU %5.1f%% of %.0f peak", 100 * tf / cs->peak_tflops, cs->peak_tflops);
    printf("\n");
}

typedef struct { vit_layer *L; } ab_args;
static void ab_run(void *p) {   // the ViT's attention over all tiles, as vit.c calls it
    vit_layer *L = ((ab_args *)p)->L;
    g_gpu->attention_batch(g_gpu, &L->att, &L->q, &L->k, &L->v, 25, 25, 128, 0, L->seqs,
                           L->tiles, 1.0f / sqrtf(128.0f));
}

static void bench_vit(int tiles, const card_spec *cs) {
    const int64_t C = 3200, I = 12800, M = 1025LL * tiles;
    vit_layer L = {.tiles = tiles};
    L.seqs = ivl_malloc(sizeof *L.seqs * (size_t)tiles);
    for (int t = 0; t < tiles; t++) L.seqs[t] = (ivl_attn_seq){t * 1025LL, 1025, t * 1025LL, 1025, NULL, 0};
    L.x = GRAND(1, M, C), L.h = GRAND(1, M, C), L.qkv = GRAND(1, M, 3 * C);
    L.q = GRAND(1, M, C), L.k = GRAND(1, M, C), L.v = GRAND(1, M, C), L.att = GRAND(1, M, C);
    L.a = GRAND(1, M, C), L.f1 = GRAND(1, M, I);
    L.n1 = GRAND(1, C), L.n2 = GRAND(1, C), L.qn = GRAND(1, C), L.kn = GRAND(1, C);
    L.wqkv = GRAND(0.02f, 3 * C, C), L.wproj = GRAND(0.02f, C, C), L.bproj = GRAND(0.1f, C);
    L.ls1 = GRAND(0.1f, C), L.ls2 = GRAND(0.1f, C);
    L.w1 = GRAND(0.02f, I, C), L.b1 = GRAND(0.1f, I), L.w2 = GRAND(0.02f, C, I), L.b2 = GRAND(0.1f, C);
    double t = time_it(vit_run, &L, 2, 5);
    double lin = 2.0 * M * (4.0 * C * C + 2.0 * C * I), att = 4.0 * tiles * 1025.0 * 1025.0 * C;
    char what[96];
    snprintf(what, sizeof what, "ViT-6B layer, %d tiles (M=%lld)", tiles, (long long)M);
    report(what, lin + att, t, cs);
    L.per_tile = 1;
    double tp = time_it(vit_run, &L, 1, 3);
    snprintf(what, sizeof what, "  same, one attention call per tile");
    report(what, lin + att, tp, cs);
    L.per_tile = 0;
    ab_args ab = {&L};
    double tb = time_it(ab_run, &ab, 2, 5);
    report("  of which attention (all tiles, one call)", att, tb, cs);
    at_args aa = {&L.att, &L.q, &L.k, &L.v, 25, 25, 128, 0, 0, 1};
    ivl_tensor qt = ivl_tensor_slice(&L.q, 0, 1025), kt = ivl_tensor_slice(&L.k, 0, 1025);
    ivl_tensor vt = ivl_tensor_slice(&L.v, 0, 1025), ot = ivl_tensor_slice(&L.att, 0, 1025);
    aa.o = &ot, aa.q = &qt, aa.k = &kt, aa.v = &vt, aa.reps = tiles;
    double ta = time_it(at_run, &aa, 2, 5);
    report("  attention one call per tile (flash, 1025x1025)", att, ta, cs);
    static const char *variants[] = {"mma", "mma128", "regs64", "regs32", "smem"};
    for (int vi = 0; vi < 5; vi++) {   // the kernel variants, for choosing the default
        setenv("IVL_CUDA_FLASH", variants[vi], 1);
        char lab[64];
        snprintf(lab, sizeof lab, "    attention variant %s", variants[vi]);
        report(lab, att, time_it(at_run, &aa, 1, 3), cs);
    }
    unsetenv("IVL_CUDA_FLASH");
    double tile_s = tiles / (45.0 * t);
    printf("  => ViT-6B (45 layers): %.2f tiles/s, %.1f ms per tile\n", tile_s, 1e3 / tile_s);
    ivl_tensor *all[] = {&L.x, &L.h, &L.qkv, &L.q, &L.k, &L.v, &L.att, &L.a, &L.f1, &L.n1, &L.n2,
                         &L.qn, &L.kn, &L.wqkv, &L.wproj, &L.bproj, &L.ls1, &L.ls2, &L.w1, &L.b1,
                         &L.w2, &L.b2};
    free(L.seqs);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) g_gpu->free(g_gpu, all[i]);
}

// ---- InternLM2-20B layer (spec 4): D 6144, 48/8 heads x 128, I 16384.
typedef struct {
    int64_t S, ctx;   // tokens in this step; keys visible (ctx >= S)
    int batch;        // sequences (decode: S = 1 per sequence)
    float *cs, *sn;   // RoPE tables for all S rows (every sequence at the same positions)
    ivl_tensor x, h, qkv, q, kn, vn, kc, vc, att, a, g1, u1;   // kn/vn: the step's new k/v
    ivl_tensor n1, n2, wqkv, wo, w1, w3, w2;
    int per_seq;         // 1: KV append + attention per sequence (llm.c before attention_batch)
    int64_t *kv_rows;    // [S] cache row of each new token (scatter_rows)
    ivl_attn_seq *seqs;  // [batch] (attention_batch)
} llm_layer;

// The layer's ops in order; llm_op runs one (for every sequence where per-sequence), so the
// decode breakdown can time each alone.
enum { LOP_NORM1, LOP_QKV, LOP_ROPE_Q, LOP_ROPE_K, LOP_ATTN, LOP_WO, LOP_ADD1, LOP_NORM2,
       LOP_W1, LOP_W3, LOP_SILU, LOP_W2, LOP_ADD2, LOP_COUNT };
static const char *const llm_op_name[LOP_COUNT] = {
    "rmsnorm", "qkv matmul", "rope q", "rope k", "kv+attention", "wo matmul", "add", "rmsnorm",
    "w1 matmul", "w3 matmul", "silu_mul", "w2 matmul", "add"};

static void llm_op(llm_layer *L, int op) {
    ivl_backend *be = g_gpu;
    const int H = 48, KH = 8, hd = 128;
    int64_t per = L->S / L->batch;   // tokens per sequence
    switch (op) {
    case LOP_NORM1: be->rmsnorm(be, &L->h, &L->x, &L->n1, 1e-5f); break;
    case LOP_QKV: be->matmul(be, &L->qkv, &L->h, &L->wqkv, NULL); break;
    // As core/models/llm.c: RoPE over all rows, the new k/v rows appended to each sequence's
    // cache slot, attention; batched (scatter_rows + attention_batch) or, with per_seq, the
    // old loop of copy/copy/attention per sequence.
    case LOP_ROPE_Q: be->rope(be, &L->q, H, hd, L->cs, L->sn); break;
    case LOP_ROPE_K: be->rope(be, &L->kn, KH, hd, L->cs, L->sn); break;
    case LOP_ATTN:
        if (!L->per_seq) {
            be->scatter_rows(be, &L->kc, &L->kn, L->kv_rows, L->S);
            be->scatter_rows(be, &L->vc, &L->vn, L->kv_rows, L->S);
            be->attention_batch(be, &L->att, &L->q, &L->kc, &L->vc, H, KH, hd, 1, L->seqs,
                                L->batch, 1.0f / sqrtf(128.0f));
            break;
        }
        for (int b = 0; b < L->batch; b++) {
            ivl_tensor qb = ivl_tensor_slice(&L->q, b * per, per);
            ivl_tensor kall = ivl_tensor_slice(&L->kc, b * L->ctx, L->ctx);
            ivl_tensor vall = ivl_tensor_slice(&L->vc, b * L->ctx, L->ctx);
            ivl_tensor kdst = ivl_tensor_slice(&kall, L->ctx - per, per);
            ivl_tensor vdst = ivl_tensor_slice(&vall, L->ctx - per, per);
            ivl_tensor ksrc = ivl_tensor_slice(&L->kn, b * per, per);
            ivl_tensor vsrc = ivl_tensor_slice(&L->vn, b * per, per);
            ivl_tensor ob = ivl_tensor_slice(&L->att, b * per, per);
            be->copy(be, &kdst, &ksrc);
            be->copy(be, &vdst, &vsrc);
            be->attention(be, &ob, &qb, &kall, &vall, H, KH, hd, 1, L->ctx - per,
                          1.0f / sqrtf(128.0f));
        }
        break;
    case LOP_WO: be->matmul(be, &L->a, &L->att, &L->wo, NULL); break;
    case LOP_ADD1: be->add(be, &L->x, &L->a); break;
    case LOP_NORM2: be->rmsnorm(be, &L->h, &L->x, &L->n2, 1e-5f); break;
    case LOP_W1: be->matmul(be, &L->g1, &L->h, &L->w1, NULL); break;
    case LOP_W3: be->matmul(be, &L->u1, &L->h, &L->w3, NULL); break;
    case LOP_SILU: be->silu_mul(be, &L->g1, &L->g1, &L->u1); break;
    case LOP_W2: be->matmul(be, &L->a, &L->g1, &L->w2, NULL); break;
    case LOP_ADD2: be->add(be, &L->x, &L->a); break;
    }
}

static void llm_run(void *p) {
    for (int op = 0; op < LOP_COUNT; op++) llm_op(p, op);
}

typedef struct { llm_layer *L; int op; } llm_op_args;
static void llm_op_run(void *p) {
    llm_op_args *a = p;
    llm_op(a->L, a->op);
}

// Each op of the layer timed alone (back to back, same inputs): where a decode step's time
// goes. Matmuls and attention also as bytes they must read / time vs the copy bandwidth. The
// sum differs from the whole layer by launch gaps and by cache reuse between repeats.
static void bench_llm_ops(llm_layer *L, double t_layer) {
    const double D = 6144, I = 16384, NQKV = (48 + 16) * 128;
    double bytes[LOP_COUNT] = {0};
    bytes[LOP_QKV] = 2 * NQKV * D, bytes[LOP_WO] = 2 * D * D;
    bytes[LOP_W1] = bytes[LOP_W3] = bytes[LOP_W2] = 2 * D * I;
    bytes[LOP_ATTN] = 2.0 * 2 * L->batch * (double)L->ctx * 1024;
    const char *gv = getenv("IVL_CUDA_GEMV");
    printf("  per-op breakdown (each op alone, %s):\n",
           gv && !strcmp(gv, "0") ? "matmuls on cuBLASLt" : "matmuls on the default path");
    double sum = 0;
    for (int op = 0; op < LOP_COUNT; op++) {
        llm_op_args a = {L, op};
        double t = time_it(llm_op_run, &a, 3, 50);
        sum += t;
        printf("    %2d %-12s %8.4f ms %5.1f%% of layer", op + 1, llm_op_name[op], t * 1e3,
               100 * t / t_layer);
        if (bytes[op] > 0)
            printf("   %6.1f MB  %5.0f GB/s = %5.1f%% of copy BW", bytes[op] / 1e6,
                   bytes[op] / t / 1e9, 100 * bytes[op] / t / 1e9 / g_copy_gbs);
        printf("\n");
    }
    printf("    sum of ops %.4f ms vs whole layer %.4f ms (difference: launch gaps, overlap)\n",
           sum * 1e3, t_layer * 1e3);
}

// Decode A/B in the same run: the KV append + attention of the step batched (scatter_rows +
// attention_batch: 4 launches), with IVL_CUDA_BATCH_ATTN=0 (scatter + the single-sequence
// kernel per sequence) and the old per-sequence path (copy, copy, attention per sequence),
// alone and inside the whole layer.
static void bench_llm_batch_ab(llm_layer *L, double t_layer, double kvbytes) {
    char keep[64];
    int had = env_save("IVL_CUDA_BATCH_ATTN", keep, sizeof keep);
    unsetenv("IVL_CUDA_BATCH_ATTN");
    llm_op_args a = {L, LOP_ATTN};
    L->per_seq = 0;
    double tb = time_it(llm_op_run, &a, 3, 50);
    setenv("IVL_CUDA_BATCH_ATTN", "0", 1);
    double tf = time_it(llm_op_run, &a, 3, 50);
    unsetenv("IVL_CUDA_BATCH_ATTN");
    L->per_seq = 1;
    double to = time_it(llm_op_run, &a, 3, 50);
    double tl = time_it(llm_run, L, 2, 20);
    L->per_seq = 0;
    env_restore("IVL_CUDA_BATCH_ATTN", had, keep);
    printf("  KV append + attention, batch %d (%.0f MB of KV):\n", L->batch, kvbytes / 1e6);
    printf("    batched (scatter_rows + attention_batch) %8.4f ms %5.0f GB/s = %5.1f%% of copy BW\n",
           tb * 1e3, kvbytes / tb / 1e9, 100 * kvbytes / tb / 1e9 / g_copy_gbs);
    printf("    IVL_CUDA_BATCH_ATTN=0 (per-seq kernel)   %8.4f ms %5.0f GB/s  (batched %.2fx)\n",
           tf * 1e3, kvbytes / tf / 1e9, tf / tb);
    printf("    old path (copy/copy/attention per seq)   %8.4f ms %5.0f GB/s  (batched %.2fx)\n",
           to * 1e3, kvbytes / to / 1e9, to / tb);
    printf("  whole layer: batched %.3f ms, old per-sequence path %.3f ms (%.2fx)\n",
           t_layer * 1e3, tl * 1e3, tl / t_layer);
}

static void bench_llm(const char *label, int batch, int64_t per, int64_t ctx, const card_spec *cs) {
    const int64_t D = 6144, I = 16384, NQKV = (48 + 16) * 128, S = batch * per;
    llm_layer L = {.S = S, .ctx = ctx, .batch = batch};
    L.x = GRAND(1, S, D), L.h = GRAND(1, S, D), L.qkv = GRAND(1, S, NQKV), L.q = GRAND(1, S, D);
    L.kc = GRAND(1, batch * ctx, 1024), L.vc = GRAND(1, batch * ctx, 1024);
    L.kn = GRAND(1, S, 1024), L.vn = GRAND(1, S, 1024);
    L.kv_rows = ivl_malloc(sizeof(int64_t) * S), L.seqs = ivl_malloc(sizeof(ivl_attn_seq) * batch);
    for (int b = 0; b < batch; b++) {   // sequence b: slot b of ctx rows, its last per are new
        L.seqs[b] = (ivl_attn_seq){.q_row0 = b * per, .n = per, .kv_row0 = b * ctx, .len = ctx};
        for (int64_t t = 0; t < per; t++) L.kv_rows[b * per + t] = b * ctx + ctx - per + t;
    }
    L.att = GRAND(1, S, D), L.a = GRAND(1, S, D), L.g1 = GRAND(1, S, I), L.u1 = GRAND(1, S, I);
    L.n1 = GRAND(1, D), L.n2 = GRAND(1, D);
    L.wqkv = GRAND(0.02f, NQKV, D), L.wo = GRAND(0.02f, D, D), L.w1 = GRAND(0.02f, I, D);
    L.w3 = GRAND(0.02f, I, D), L.w2 = GRAND(0.02f, D, I);
    L.cs = ivl_malloc(sizeof(float) * S * 64), L.sn = ivl_malloc(sizeof(float) * S * 64);
    for (int64_t r = 0; r < S; r++)
        for (int k = 0; k < 64; k++) {
            double ang = (double)(ctx - per + r % per) * pow(1e6, -k / 64.0);
            L.cs[r * 64 + k] = (float)cos(ang), L.sn[r * 64 + k] = (float)sin(ang);
        }
    int iters = per > 1 ? 5 : 20;
    double t = time_it(llm_run, &L, 2, iters);
    double lin = 2.0 * S * (D * (double)NQKV + D * (double)D + 3.0 * D * I);
    double att = 0;   // causal: query at position p sees p+1 keys
    for (int64_t i = 0; i < per; i++) att += 4.0 * 48 * 128 * (double)(ctx - per + i + 1);
    att *= batch;
    double wbytes = 2.0 * (D * (double)NQKV + D * (double)D + 3.0 * D * I);
    double kvbytes = 2.0 * 2 * batch * (double)ctx * 1024;
    char what[128];
    snprintf(what, sizeof what, "LLM-20B layer %s", label);
    report(what, lin + att, t, cs);
    if (per > 16) {   // the causal flash attention alone
        ivl_tensor q0 = ivl_tensor_slice(&L.q, 0, per), k0 = ivl_tensor_slice(&L.kc, 0, ctx);
        ivl_tensor v0 = ivl_tensor_slice(&L.vc, 0, ctx), o0 = ivl_tensor_slice(&L.att, 0, per);
        at_args aa = {&o0, &q0, &k0, &v0, 48, 8, 128, 1, ctx - per, 1};
        report("  of which attention (causal flash)", att / batch, time_it(at_run, &aa, 1, 5), cs);
        static const char *cv[] = {"mma", "mma128", "regs64"};
        for (int vi = 0; vi < 3; vi++) {
            setenv("IVL_CUDA_FLASH", cv[vi], 1);
            char lab[64];
            snprintf(lab, sizeof lab, "    causal attention variant %s", cv[vi]);
            report(lab, att / batch, time_it(at_run, &aa, 1, 3), cs);
        }
        unsetenv("IVL_CUDA_FLASH");
    }
    double bw = (wbytes + kvbytes) / t / 1e9;
    printf("  %-40s weights %.0f MB + KV %.0f MB in %.3f ms = %.0f GB/s = %.1f%% of measured copy BW\n",
           "", wbytes / 1e6, kvbytes / 1e6, t * 1e3, bw, 100 * bw / g_copy_gbs);
    printf("  => InternLM2-20B (48 layers): %.1f tokens/s\n", S / (48.0 * t));
    if (batch == 1 && per == 1) bench_llm_ops(&L, t);
    if (per <= 16) bench_llm_batch_ab(&L, t, kvbytes);
    free(L.cs), free(L.sn), free(L.kv_rows), free(L.seqs);
    ivl_tensor *all[] = {&L.x, &L.h, &L.qkv, &L.q, &L.kn, &L.vn, &L.kc, &L.vc, &L.att, &L.a,
                         &L.g1, &L.u1, &L.n1, &L.n2, &L.wqkv, &L.wo, &L.w1, &L.w3, &L.w2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) g_gpu->free(g_gpu, all[i]);
}

// ---- decode matmuls: y[M, N] = x[M, K] w[N, K]^T at the decode shapes, cuBLASLt vs the
// weight-streaming kernel (core/cuda/gemv.cu, M <= 8), toggled with IVL_CUDA_GEMV in this run.
// Several copies of w are cycled so that >= 256 MB are touched between reuses: the small
// matrices would otherwise be served from the 50 MB L2 and show more than HBM bandwidth.
typedef struct { ivl_tensor *y, *x, *w; int nw, i; } dm_args;
static void dm_run(void *p) {
    dm_args *a = p;
    g_gpu->matmul(g_gpu, a->y, a->x, &a->w[a->i], NULL);
    a->i = (a->i + 1) % a->nw;
}

static void bench_decode_matmuls(void) {
    static const struct { const char *name; int64_t N, K; } sh[] = {
        {"20B wqkv", 8192, 6144}, {"20B wo", 6144, 6144}, {"20B w1/w3", 16384, 6144},
        {"20B w2", 6144, 16384},  {"2B wqkv", 4096, 2048}, {"2B wo", 2048, 2048},
        {"2B w1/w3", 8192, 2048}, {"2B w2", 2048, 8192},
    };
    static const int ms[] = {1, 4, 8, 64};
    char keep[64];
    int had = env_save("IVL_CUDA_GEMV", keep, sizeof keep);
    printf("  decode matmuls (y = x w^T, GB/s = weight bytes / time, %% of measured copy BW;\n"
           "  the gemv column forces the kernel for every M <= 8 with IVL_CUDA_GEMV=8, the default\n"
           "  (IVL_CUDA_GEMV unset) uses it for M <= 4):\n");
    printf("    %-10s %-13s %3s | %-30s | %-30s | %s\n", "matrix", "[N, K]", "M",
           "cuBLASLt (IVL_CUDA_GEMV=0)", "gemv kernel (=8)", "speedup");
    for (size_t si = 0; si < sizeof sh / sizeof sh[0]; si++) {
        const int64_t N = sh[si].N, K = sh[si].K;
        const double wb = 2.0 * N * K;
        int nw = (int)((256e6 + wb - 1) / wb);
        ivl_tensor *w = ivl_malloc(sizeof *w * nw);
        for (int i = 0; i < nw; i++) w[i] = gpu_rand(2, SHAPE(N, K), 0.02f, 1000 + si * 64 + i);
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            const int64_t M = ms[mi];
            ivl_tensor x = GRAND(1, M, K), y = GRAND(1, M, N);
            dm_args a = {&y, &x, w, nw, 0};
            setenv("IVL_CUDA_GEMV", "0", 1);
            double t0 = time_it(dm_run, &a, nw, 40 > 2 * nw ? 40 : 2 * nw);
            setenv("IVL_CUDA_GEMV", "8", 1);
            double t1 = time_it(dm_run, &a, nw, 40 > 2 * nw ? 40 : 2 * nw);
            char sh_s[32], c0[48], c1[48];
            snprintf(sh_s, sizeof sh_s, "[%lld, %lld]", (long long)N, (long long)K);
            snprintf(c0, sizeof c0, "%7.4f ms %5.0f GB/s %5.1f%%", t0 * 1e3, wb / t0 / 1e9,
                     100 * wb / t0 / 1e9 / g_copy_gbs);
            if (M <= 8)
                snprintf(c1, sizeof c1, "%7.4f ms %5.0f GB/s %5.1f%%", t1 * 1e3, wb / t1 / 1e9,
                         100 * wb / t1 / 1e9 / g_copy_gbs);
            else
                snprintf(c1, sizeof c1, "n/a (M > 8: cuBLASLt)");
            printf("    %-10s %-13s %3lld | %-30s | %-30s | ", sh[si].name, sh_s, (long long)M, c0, c1);
            if (M <= 8) printf("%.2fx\n", t0 / t1);
            else printf("-\n");
            g_gpu->free(g_gpu, &x), g_gpu->free(g_gpu, &y);
        }
        for (int i = 0; i < nw; i++) g_gpu->free(g_gpu, &w[i]);
        free(w);
    }
    env_restore("IVL_CUDA_GEMV", had, keep);
}

static void run_bench(int tiles, int64_t prefill, int64_t ctx) {
    card_spec cs = lookup_card(g_gpu->device_name);
    const ivl_cuda_ext *x = ivl_cuda_ext_of(g_gpu);
    size_t fr = 0, tot = 0;
    x->mem_info(g_gpu, &fr, &tot);
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
    printf("\n### CUDA backend, %s (sm_%d, %s), %s\n\n```\n", g_gpu->device_name, x->cc(g_gpu),
           ivl_dtype_name(g_gpu->dtype), date);
    printf("  memory: %.1f GiB free of %.1f GiB\n", fr / 1073741824.0, tot / 1073741824.0);
    if (cs.peak_tflops > 0)
        printf("  spec sheet: %.0f TFLOP/s dense bf16, %.0f GB/s HBM\n", cs.peak_tflops, cs.peak_gbs);
    bench_ceiling();
    bench_decode_matmuls();
    bench_vit(tiles, &cs);
    char lab[96];
    snprintf(lab, sizeof lab, "prefill S=%lld", (long long)prefill);
    bench_llm(lab, 1, prefill, prefill, &cs);
    snprintf(lab, sizeof lab, "decode batch 1, ctx %lld", (long long)ctx);
    bench_llm(lab, 1, 1, ctx, &cs);
    {   // the same layer with every matmul on cuBLASLt: the A/B of core/cuda/gemv.cu
        char keep[64];
        int had = env_save("IVL_CUDA_GEMV", keep, sizeof keep);
        setenv("IVL_CUDA_GEMV", "0", 1);
        snprintf(lab, sizeof lab, "decode batch 1, ctx %lld, IVL_CUDA_GEMV=0", (long long)ctx);
        bench_llm(lab, 1, 1, ctx, &cs);
        env_restore("IVL_CUDA_GEMV", had, keep);
    }
    snprintf(lab, sizeof lab, "decode batch 8, ctx %lld", (long long)ctx);
    bench_llm(lab, 8, 1, ctx, &cs);
    snprintf(lab, sizeof lab, "decode batch 64, ctx %lld", (long long)ctx);
    bench_llm(lab, 64, 1, ctx, &cs);
    printf("```\n");
}

int main(int argc, char **argv) {
    int do_check = 0, do_bench = 0, quick = 0, tiles = 8;
    int64_t prefill = 2048, ctx = 1024;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--check")) do_check = 1;
        else if (!strcmp(argv[i], "--bench")) do_bench = 1;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--tiles") && i + 1 < argc) tiles = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc) prefill = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) ctx = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--check] [--bench] [--quick] [--tiles N] [--prefill S] "
                            "[--ctx L]\n", argv[0]);
            return 2;
        }
    }
    if (!do_check && !do_bench) do_check = do_bench = 1;
    IVL_CHECK(tiles >= 1 && prefill >= 1 && ctx >= 1, "bad sizes");
    g_gpu = ivl_backend_create("cuda", 0);   // ends the job with "no CUDA device" if none
    g_cpu = ivl_backend_cpu_create();
    if (g_gpu->dtype == IVL_F16) g_tol_mult = 1.0 / 16;
    printf("GPU: %s, compute %s; CPU reference: %s\n", g_gpu->device_name,
           ivl_dtype_name(g_gpu->dtype), g_cpu->device_name);
    if (do_check) {
        double t0 = now_s();
        run_checks(quick);
        printf("checks: %d of %d passed (%.1f s)\n", g_checks - g_fail, g_checks, now_s() - t0);
    }
    if (do_bench) run_bench(tiles, prefill, ctx);
    ivl_backend_destroy(g_gpu);
    ivl_backend_destroy(g_cpu);
    return g_fail ? 1 : 0;
}
