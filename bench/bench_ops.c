// bench_ops.c - microbenchmark of the CPU backend's kernels at the shapes of the models that
// run on CPU (Mini-InternVL-2B: InternLM2-1.8B D=2048, I=8192, 16/8 heads of 128, and
// InternViT-300M: 1025 tokens, C=1024, 16 heads of 64, I=4096). Not a test: it prints times.
//
// matmul is compared with a plain cblas_sgemm call using OpenBLAS's own thread pool at the
// same thread count, i.e. "OpenBLAS speed". Usage: bench_ops [seconds per measurement]
// Threads: OMP_NUM_THREADS (default: all cores).
#include "core/cpu/cpu_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double g_budget = 0.4;   // seconds spent on each measurement

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float *rnd(int64_t n, float amp) {
    float *a = malloc(sizeof(float) * (size_t)n);
    uint32_t s = 12345u + (uint32_t)n;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        a[i] = amp * ((float)(s >> 8) / 16777216.0f * 2.0f - 1.0f);
    }
    return a;
}

// Best time of one call over repeated runs (after one warm-up) within the budget.
#define TIME_BEST(out, stmt)                                                     \
    do {                                                                         \
        stmt;                                                                    \
        double best_ = 1e30, t_end_ = now() + g_budget;                          \
        int reps_ = 0;                                                           \
        do {                                                                     \
            double t0_ = now();                                                  \
            stmt;                                                                \
            double dt_ = now() - t0_;                                            \
            if (dt_ < best_) best_ = dt_;                                        \
            reps_++;                                                             \
        } while (now() < t_end_ || reps_ < 2);                                   \
        (out) = best_;                                                           \
    } while (0)

static double bench_matmul(const char *name, int64_t M, int64_t N, int64_t K, int nt) {
    float *x = rnd(M * K, 1.0f), *w = rnd(N * K, 0.05f), *b = rnd(N, 1.0f);
    float *y = malloc(sizeof(float) * (size_t)(M * N));
    double t_ours, t_blas;
    TIME_BEST(t_ours, ivl_cpu_matmul(y, x, w, b, M, N, K));
    openblas_set_num_threads(nt);   // OpenBLAS's own threading, for comparison
    TIME_BEST(t_blas, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M,
                                  (blasint)N, (blasint)K, 1.0f, x, (blasint)K, w, (blasint)K,
                                  0.0f, y, (blasint)N));
    openblas_set_num_threads(1);
    double fl = 2.0 * M * N * K;
    printf("  %-22s M=%-5lld N=%-5lld K=%-5lld %8.2f ms %7.1f GFLOP/s   openblas-threaded "
           "%7.1f GFLOP/s (%3.0f%%)\n", name, (long long)M, (long long)N, (long long)K,
           t_ours * 1e3, fl / t_ours * 1e-9, fl / t_blas * 1e-9, 100.0 * t_blas / t_ours);
    free(x); free(w); free(b); free(y);
    return t_ours;
}

static double bench_attention(const char *name, int64_t T, int64_t L, int H, int K, int hd,
                              int causal) {
    int64_t pos0 = causal ? L - T : 0;
    float *q = rnd(T * H * hd, 1.0f), *k = rnd(L * K * hd, 1.0f), *v = rnd(L * K * hd, 1.0f);
    float *o = malloc(sizeof(float) * (size_t)(T * H * hd));
    double t;
    TIME_BEST(t, ivl_cpu_attention(o, q, k, v, T, L, H, K, hd, causal, pos0, 1.0f / sqrtf(hd)));
    // QK^T and PV, 2 FLOPs per multiply-add; causal counts only the visible keys.
    double pairs = causal ? (double)T * pos0 + (double)T * (T + 1) / 2 : (double)T * L;
    double fl = 4.0 * pairs * H * hd;
    double bytes = 4.0 * (2.0 * L * K * hd + 2.0 * T * H * hd);
    printf("  %-22s T=%-5lld L=%-5lld H=%-2d K=%-2d hd=%-3d %s %8.2f ms %7.1f GFLOP/s %6.1f GB/s\n",
           name, (long long)T, (long long)L, H, K, hd, causal ? "causal" : "full  ", t * 1e3,
           fl / t * 1e-9, bytes / t * 1e-9);
    free(q); free(k); free(v); free(o);
    return t;
}

// Elementwise/norm kernels: time and effective bandwidth (bytes read + written).
static double report_mem(const char *name, int64_t R, int64_t C, double t, double bytes) {
    printf("  %-22s %5lld x %-5lld %8.3f ms %7.1f GB/s\n", name, (long long)R, (long long)C,
           t * 1e3, bytes / t * 1e-9);
    return t;
}

static double bench_rowops(const char *tag, int64_t R, int64_t C, int64_t Im, int hd, int H,
                           int vit) {
    float *x = rnd(R * C, 1.0f), *y = malloc(sizeof(float) * (size_t)(R * C));
    float *w = rnd(C, 1.0f), *b = rnd(C, 1.0f);
    float *g = rnd(R * Im, 4.0f), *u = rnd(R * Im, 1.0f), *h = malloc(sizeof(float) * (size_t)(R * Im));
    float *cs = rnd(R * hd / 2, 1.0f), *sn = rnd(R * hd / 2, 1.0f), *qk = rnd(R * H * hd, 1.0f);
    double t, total = 0, n = (double)R * C, ni = (double)R * Im;
    printf(" %s\n", tag);
    if (vit) {
        TIME_BEST(t, ivl_cpu_layernorm(y, x, w, b, R, C, 1e-6f));
        total += 2 * report_mem("layernorm", R, C, t, 8 * n);
        TIME_BEST(t, ivl_cpu_gelu(h, g, R * Im));
        total += report_mem("gelu (erf)", R, Im, t, 8 * ni);
        TIME_BEST(t, ivl_cpu_add_scaled(y, x, w, R, C));
        total += 2 * report_mem("add_scaled (LayerScale)", R, C, t, 12 * n);
    } else {
        TIME_BEST(t, ivl_cpu_rmsnorm(y, x, w, R, C, 1e-5f));
        total += 2 * report_mem("rmsnorm", R, C, t, 8 * n);
        TIME_BEST(t, ivl_cpu_silu_mul(h, g, u, R * Im));
        total += report_mem("silu_mul", R, Im, t, 12 * ni);
        TIME_BEST(t, ivl_cpu_rope(qk, R, H, hd, cs, sn));
        total += 2 * report_mem("rope (q or k)", R, (int64_t)H * hd, t, 8.0 * R * H * hd);
        TIME_BEST(t, ivl_cpu_add(y, x, R * C));
        total += 2 * report_mem("add (residual)", R, C, t, 12 * n);
    }
    free(x); free(y); free(w); free(b); free(g); free(u); free(h); free(cs); free(sn); free(qk);
    return total;
}

int main(int argc, char **argv) {
    if (argc > 1) g_budget = atof(argv[1]);
    ivl_cpu_blas_init();
    int nt = ivl_cpu_threads();
    printf("bench_ops: CPU backend kernels, %d OpenMP thread%s, %s\n", nt, nt == 1 ? "" : "s",
           openblas_get_config());

    printf("\nInternViT-300M layer (1 tile: 1025 tokens, C=1024, 16 heads x 64, I=4096)\n");
    double vit = 0;
    vit += bench_matmul("vit qkv", 1025, 3072, 1024, nt);
    vit += bench_matmul("vit proj", 1025, 1024, 1024, nt);
    vit += bench_matmul("vit fc1", 1025, 4096, 1024, nt);
    vit += bench_matmul("vit fc2", 1025, 1024, 4096, nt);
    double vit_att = bench_attention("vit attention", 1025, 1025, 16, 16, 64, 0);
    double vit_rest = bench_rowops("vit norms/elementwise", 1025, 1024, 4096, 64, 16, 1);
    printf(" => one ViT layer ~ %.1f ms (matmul %.1f, attention %.1f, rest %.1f); "
           "24 layers ~ %.2f s per tile\n", (vit + vit_att + vit_rest) * 1e3, vit * 1e3,
           vit_att * 1e3, vit_rest * 1e3, 24 * (vit + vit_att + vit_rest));

    printf("\nInternLM2-1.8B layer (D=2048, 16/8 heads x 128, I=8192)\n");
    for (int pass = 0; pass < 2; pass++) {
        int64_t M = pass == 0 ? 512 : 1;
        printf(" %s (M=%lld tokens)\n", pass == 0 ? "prefill" : "decode", (long long)M);
        double llm = 0;
        llm += bench_matmul("llm wqkv", M, 4096, 2048, nt);
        llm += bench_matmul("llm wo", M, 2048, 2048, nt);
        llm += 2 * bench_matmul("llm w1 / w3", M, 8192, 2048, nt);
        llm += bench_matmul("llm w2", M, 2048, 8192, nt);
        double att = pass == 0 ? bench_attention("llm attention", 512, 512, 16, 8, 128, 1)
                               : bench_attention("llm attention", 1, 2048, 16, 8, 128, 1);
        double rest = bench_rowops("llm norms/elementwise", M, 2048, 8192, 128, 16, 0);
        printf(" => one layer ~ %.2f ms (matmul %.2f, attention %.2f, rest %.2f)\n",
               (llm + att + rest) * 1e3, llm * 1e3, att * 1e3, rest * 1e3);
    }

    // Decoding a small batch: the weights are streamed once per step whatever the batch, so
    // batch 2..7 should cost about what batch 1 does (core/cpu/matmul.c's small-row path).
    printf("\nDecode batch sweep (InternLM2-1.8B w1: [8192, 2048])\n");
    double one = 0;
    for (int M = 1; M <= 16; M = M < 4 ? M + 1 : M * 2) {
        char tag[32];
        snprintf(tag, sizeof tag, "w1 batch %d", M);
        double t = bench_matmul(tag, M, 8192, 2048, nt);
        if (M == 1) one = t;
        printf("   batch %2d costs %.2f x batch 1\n", M, t / one);
    }

    printf("\nAttention scaling (InternLM2-1.8B heads)\n");
    bench_attention("prefill", 2048, 2048, 16, 8, 128, 1);
    bench_attention("prefill", 4096, 4096, 16, 8, 128, 1);
    bench_attention("decode", 1, 4096, 16, 8, 128, 1);
    bench_attention("decode", 1, 16384, 16, 8, 128, 1);
    return 0;
}
