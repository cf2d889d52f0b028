// bench_quant.c - the quantized matmul (core/cpu/matmul_q.c) against the f32 matmul at the
// decode shapes of Mini-InternVL-2B's language model (InternLM2-1.8B: D 2048, I 8192, 16 query
// / 8 kv heads of 128, vocab 92553, 24 layers), M = 1 and 4. Weights are random; every
// matrix is its own buffer so each call streams its weight from memory as in decode (the
// set of one layer is larger than the caches). Times are the best of repeated calls, wall
// clock and process CPU time (CPU time is less sensitive to other jobs on a shared machine).
// Prints a table and the weighted sum over one decode step (24 layers + LM head).
// Usage: bench_quant [seconds per measurement]   Threads: OMP_NUM_THREADS.
#include "core/cpu/cpu_ops.h"
#include "core/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double g_budget = 0.5;

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

typedef struct {
    const char *name;
    int64_t N, K;
    int per_step;   // calls per decode step
} shape;

static ivl_qweight *make_q(int bits, int64_t N, int64_t K, int64_t G) {
    ivl_qweight h = {bits, N, K, G, NULL, NULL, NULL};
    int64_t ng = K / G, qb = bits == 8 ? N * K : N * K / 2;
    uint8_t *q = malloc((size_t)qb);
    uint32_t s = 99u;
    for (int64_t i = 0; i < qb; i++) q[i] = (uint8_t)((s = s * 1664525u + 1013904223u) >> 24);
    h.q = q;
    h.scales = malloc(sizeof(float) * (size_t)(N * ng));
    for (int64_t i = 0; i < N * ng; i++) h.scales[i] = 0.01f;
    if (bits == 4) {
        h.zeros = malloc((size_t)(N * ng));
        for (int64_t i = 0; i < N * ng; i++) h.zeros[i] = 8;
    }
    ivl_qweight *w = ivl_cpu_qweight_pack(&h);
    ivl_qweight_free_host(&h);
    return w;
}

// Best wall and CPU time of fn over repeated runs; (copies) distinct weights rotate.
#define MEASURE(wall, cpu, stmt)                                                          \
    do {                                                                                  \
        stmt;                                                                             \
        double bw = 1e30, bc = 1e30, end = now(CLOCK_MONOTONIC) + g_budget;               \
        int reps = 0;                                                                     \
        do {                                                                              \
            double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);         \
            stmt;                                                                         \
            double w1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);         \
            if (w1 - w0 < bw) bw = w1 - w0;                                               \
            if (c1 - c0 < bc) bc = c1 - c0;                                               \
            reps++;                                                                       \
        } while (now(CLOCK_MONOTONIC) < end || reps < 3);                                 \
        wall = bw;                                                                        \
        cpu = bc;                                                                         \
    } while (0)

int main(int argc, char **argv) {
    if (argc > 1) g_budget = atof(argv[1]);
    static const shape shapes[] = {
        {"q", 2048, 2048, 24},     {"k,v", 1024, 2048, 48}, {"o", 2048, 2048, 24},
        {"gate,up", 8192, 2048, 48}, {"down", 2048, 8192, 24}, {"lm_head", 92553, 2048, 1},
    };
    const int ns = sizeof shapes / sizeof *shapes;
    printf("# bench_quant: %d threads, quantized kernel %s\n", ivl_cpu_threads(),
           ivl_cpu_matmul_q_isa());
    for (int M = 1; M <= 4; M += 3) {
        double step_w[3] = {0}, step_c[3] = {0};
        printf("\nM = %d          %21s %21s %21s   ratio (wall / cpu)\n", M, "f32 ms (wall/cpu)",
               "int8 ms", "int4 g128 ms");
        for (int i = 0; i < ns; i++) {
            const shape *s = &shapes[i];
            const int copies = s->N * s->K > (1 << 24) ? 1 : 4;
            float *x = calloc((size_t)(M * s->K), sizeof(float));
            float *y = calloc((size_t)(M * s->N), sizeof(float));
            for (int64_t k = 0; k < M * s->K; k++) x[k] = (float)sin((double)k);
            float *wf[4];
            ivl_qweight *w8[4], *w4[4];
            for (int c = 0; c < copies; c++) {
                wf[c] = malloc(sizeof(float) * (size_t)(s->N * s->K));
                for (int64_t k = 0; k < s->N * s->K; k++) wf[c][k] = 0.001f * (float)(k % 97);
                w8[c] = make_q(8, s->N, s->K, s->K);
                w4[c] = make_q(4, s->N, s->K, 128);
            }
            double tw[3], tc[3];
            int r = 0;
            MEASURE(tw[0], tc[0], (ivl_cpu_matmul(y, x, wf[r], NULL, M, s->N, s->K), r = (r + 1) % copies));
            MEASURE(tw[1], tc[1], (ivl_cpu_matmul_q(y, x, w8[r], NULL, M), r = (r + 1) % copies));
            MEASURE(tw[2], tc[2], (ivl_cpu_matmul_q(y, x, w4[r], NULL, M), r = (r + 1) % copies));
            printf("%-8s [%5lld,%5lld] %9.3f / %9.3f %9.3f / %9.3f %9.3f / %9.3f   int8 %.2f / %.2f  int4 %.2f / %.2f\n",
                   s->name, (long long)s->N, (long long)s->K, 1e3 * tw[0], 1e3 * tc[0],
                   1e3 * tw[1], 1e3 * tc[1], 1e3 * tw[2], 1e3 * tc[2], tw[0] / tw[1],
                   tc[0] / tc[1], tw[0] / tw[2], tc[0] / tc[2]);
            for (int k = 0; k < 3; k++) {
                step_w[k] += tw[k] * s->per_step;
                step_c[k] += tc[k] * s->per_step;
            }
            for (int c = 0; c < copies; c++) {
                free(wf[c]);
                free(w8[c]);
                free(w4[c]);
            }
            free(x);
            free(y);
        }
        printf("one decode step's matmuls (24 layers + LM head), M = %d: f32 %.1f / %.1f ms, int8 "
               "%.1f / %.1f ms (%.2fx / %.2fx), int4 %.1f / %.1f ms (%.2fx / %.2fx)\n", M,
               1e3 * step_w[0], 1e3 * step_c[0], 1e3 * step_w[1], 1e3 * step_c[1],
               step_w[0] / step_w[1], step_c[0] / step_c[1], 1e3 * step_w[2], 1e3 * step_c[2],
               step_w[0] / step_w[2], step_c[0] / step_c[2]);
    }
    return 0;
}
