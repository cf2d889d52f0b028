// test_cpu_matmul_q.c - matmul with a quantized weight (int8 / int4, weights/SCHEMA.md
// "Quantized tensors") against a double-precision loop over the weight dequantized from the
// host (file) layout by the formula in the schema, written here (not ivl_qweight_dequant):
// every kernel variant (scalar, AVX2, AVX-512 where the CPU has them), the few-rows path
// (M <= 8) and the panel + sgemm path (M > 8), group sizes 32 .. K, ragged N, with and
// without bias, 1/3/4 threads. Tolerance: f32 accumulation over K terms, as test_cpu_matmul.
#include "core/cpu/cpu_ops.h"
#include "tests/ops/ops_test.h"

// Random host-layout weight: int8 in [-127, 127] (zero points NULL), int4 in [0, 15] with
// zero points in [0, 15]; scales in [0.001, 0.02).
static ivl_qweight rnd_qweight(int bits, int64_t N, int64_t K, int64_t G) {
    ivl_qweight q = {bits, N, K, G, NULL, NULL, NULL};
    int64_t ng = K / G;
    if (bits == 8) {
        int8_t *v = malloc((size_t)(N * K));
        for (int64_t i = 0; i < N * K; i++) v[i] = (int8_t)(int)floor(rnd_uniform(-127, 128));
        q.q = v;
    } else {
        uint8_t *v = malloc((size_t)(N * K / 2));
        for (int64_t i = 0; i < N * K / 2; i++) v[i] = (uint8_t)(int)floor(rnd_uniform(0, 256));
        q.q = v;
        q.zeros = malloc((size_t)(N * ng));
        for (int64_t i = 0; i < N * ng; i++) q.zeros[i] = (uint8_t)(int)floor(rnd_uniform(0, 16));
    }
    q.scales = malloc(sizeof(float) * (size_t)(N * ng));
    for (int64_t i = 0; i < N * ng; i++) q.scales[i] = (float)rnd_uniform(0.001, 0.02);
    return q;
}

// Weight (n, k) from the host layout: int4 element k sits in byte k/2, low nibble if k even.
static double w_at(const ivl_qweight *q, int64_t n, int64_t k) {
    int v;
    if (q->bits == 8) v = ((const int8_t *)q->q)[n * q->cols + k];
    else {
        uint8_t b = ((const uint8_t *)q->q)[n * (q->cols / 2) + k / 2];
        v = (k & 1) ? (b >> 4) : (b & 0x0f);
    }
    int64_t g = n * (q->cols / q->group) + k / q->group;
    return (double)q->scales[g] * (v - (q->zeros ? q->zeros[g] : 0));
}

static void run_case(ivl_backend *be, int bits, int64_t M, int64_t N, int64_t K, int64_t G,
                     int with_bias, int nt) {
    ivl_qweight q = rnd_qweight(bits, N, K, G);
    float *x = rnd_array(M * K, -1, 1), *b = rnd_array(N, -1, 1);
    double *ref = malloc(sizeof(double) * (size_t)(M * N));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = with_bias ? b[j] : 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)x[i * K + k] * w_at(&q, j, k);
            ref[i * N + j] = s;
        }
    ivl_tensor tx = dev_from(be, x, M, K), tb = dev_from(be, b, 1, N), tw;
    check_true("upload_quant", be->upload_quant(be, &tw, &q) == 0);
    ivl_tensor ty = ivl_backend_alloc_2d(be, M, N);
    be->matmul(be, &ty, &tx, &tw, with_bias ? &tb : NULL);
    float *y = host_from(be, &ty);
    char what[160];
    snprintf(what, sizeof what, "int%d %s M=%lld N=%lld K=%lld group=%lld bias=%d threads=%d",
             bits, ivl_cpu_matmul_q_isa(), (long long)M, (long long)N, (long long)K,
             (long long)G, with_bias, nt);
    // |w| <= 0.02 * 142: terms are a few units at most; f32 rounding grows like sqrt(K).
    check_close(what, y, ref, M * N, 2e-5 * sqrt((double)K), 1e-5);
    be->free(be, &tx); be->free(be, &tw); be->free(be, &tb); be->free(be, &ty);
    free(x); free(b); free(ref); free(y);
    ivl_qweight_free_host(&q);
}

int main(void) {
    ivl_backend *be = ivl_backend_cpu_create();
    static const int64_t shapes[][4] = {   // M, N, K, group (int4 takes group when % 32 == 0)
        {1, 1, 32, 32}, {1, 37, 64, 32}, {1, 300, 256, 128}, {2, 17, 128, 64}, {3, 5, 96, 32},
        {4, 64, 512, 128}, {5, 129, 256, 256}, {8, 33, 128, 32}, {9, 70, 128, 64},
        {40, 130, 256, 128}, {1, 2048, 128, 128},
    };
    const char *isas[] = {"scalar", "avx2", "avx512"};
    for (int v = 0; v < 3; v++) {
        if (ivl_cpu_matmul_q_set_isa(isas[v]) != 0) {
            printf("skip %s: %s\n", isas[v], ivl_last_error());
            continue;
        }
        FOR_THREADS(nt) {
            for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
                for (int bits = 4; bits <= 8; bits += 4) {
                    const int64_t *s = shapes[i];
                    run_case(be, bits, s[0], s[1], s[2], s[3], (int)(i & 1), nt);
                }
            // int8 per output channel (group = K), K not a multiple of 32: the scalar loop.
            run_case(be, 8, 2, 19, 40, 40, 1, nt);
            run_case(be, 8, 1, 64, 2048, 2048, 0, nt);
            // int4 groups that are not a multiple of 32 (file layout, scalar loops).
            run_case(be, 4, 3, 21, 80, 16, 1, nt);
            run_case(be, 4, 12, 21, 80, 16, 0, nt);
        }
    }
    ivl_cpu_matmul_q_set_isa(NULL);
    // Bad descriptions are refused with a message.
    ivl_qweight bad = rnd_qweight(4, 4, 96, 32);
    bad.group = 3;   // odd
    ivl_tensor t;
    check_true("int4 group 3 refused", be->upload_quant(be, &t, &bad) != 0);
    printf("  (%s)\n", ivl_last_error());
    bad.group = 64;   // does not divide 96
    check_true("group 64 of 96 refused", be->upload_quant(be, &t, &bad) != 0);
    printf("  (%s)\n", ivl_last_error());
    bad.group = 32;
    ivl_qweight_free_host(&bad);
    ivl_backend_destroy(be);
    return finish("test_cpu_matmul_q");
}
