// test_cpu_attention.c - attention for one sequence against a double-precision loop:
// GQA ratios 1..8 (MHA, GQA, MQA), causal and not, q_pos0 > 0 (a KV cache), odd head sizes,
// more queries than one block, and the ViT shape (1025 tokens, bidirectional).
#include "tests/ops/ops_test.h"

static void ref_attention(double *out, const float *q, const float *k, const float *v,
                          int64_t T, int64_t L, int H, int K, int hd, int causal, int64_t pos0,
                          double scale) {
    double *p = malloc(sizeof(double) * (size_t)L);
    for (int h = 0; h < H; h++) {
        int g = h / (H / K);
        for (int64_t t = 0; t < T; t++) {
            int64_t lim = causal ? pos0 + t + 1 : L;
            double m = -INFINITY, sum = 0;
            for (int64_t j = 0; j < lim; j++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += (double)q[t * H * hd + h * hd + d] * k[j * K * hd + g * hd + d];
                p[j] = s * scale;
                if (p[j] > m) m = p[j];
            }
            for (int64_t j = 0; j < lim; j++) sum += (p[j] = exp(p[j] - m));
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (int64_t j = 0; j < lim; j++) o += p[j] * v[j * K * hd + g * hd + d];
                out[t * H * hd + h * hd + d] = o / sum;
            }
        }
    }
    free(p);
}

typedef struct {
    int64_t T, L;
    int H, K, hd, causal;
    int64_t pos0;
    float scale;   // 0: 1/sqrt(hd)
} att_case;

static void run_case(ivl_backend *be, att_case c, int nt) {
    float scale = c.scale ? c.scale : 1.0f / sqrtf((float)c.hd);
    int64_t qw = (int64_t)c.H * c.hd, kw = (int64_t)c.K * c.hd;
    // Score range of a few units, like trained q/k after scaling.
    float *q = rnd_array(c.T * qw, -2, 2), *k = rnd_array(c.L * kw, -2, 2);
    float *v = rnd_array(c.L * kw, -1, 1);
    double *ref = malloc(sizeof(double) * (size_t)(c.T * qw));
    ref_attention(ref, q, k, v, c.T, c.L, c.H, c.K, c.hd, c.causal, c.pos0, scale);
    ivl_tensor tq = dev_from(be, q, c.T, qw), tk = dev_from(be, k, c.L, kw);
    ivl_tensor tv = dev_from(be, v, c.L, kw), to = ivl_backend_alloc_2d(be, c.T, qw);
    be->attention(be, &to, &tq, &tk, &tv, c.H, c.K, c.hd, c.causal, c.pos0, scale);
    float *o = host_from(be, &to);
    char what[160];
    snprintf(what, sizeof what, "attention T=%lld L=%lld H=%d K=%d hd=%d causal=%d q_pos0=%lld "
             "scale=%g threads=%d", (long long)c.T, (long long)c.L, c.H, c.K, c.hd, c.causal,
             (long long)c.pos0, scale, nt);
    // Outputs are convex combinations of v in [-1, 1]; f32 scores and softmax give ~1e-6.
    check_close(what, o, ref, c.T * qw, 2e-5, 1e-4);
    be->free(be, &tq); be->free(be, &tk); be->free(be, &tv); be->free(be, &to);
    free(q); free(k); free(v); free(ref); free(o);
}

int main(void) {
    ivl_backend *be = ivl_backend_cpu_create();
    static const att_case cases[] = {
        {1, 1, 1, 1, 4, 1, 0, 0},          // one token
        {5, 5, 4, 2, 8, 1, 0, 0},          // causal prefill, GQA 2
        {3, 10, 6, 2, 16, 1, 7, 0},        // KV cache: queries at positions 7..9
        {1, 33, 8, 1, 64, 1, 32, 0},       // decode, MQA
        {1, 40, 8, 8, 32, 1, 20, 0},       // decode with more keys than positions (masked)
        {7, 7, 3, 3, 5, 0, 0, 0.3f},       // bidirectional, odd head size, explicit scale
        {70, 200, 4, 4, 16, 0, 0, 0},      // bidirectional, L > T
        {130, 130, 4, 2, 32, 1, 0, 0},     // several query blocks per head
        {50, 120, 8, 2, 24, 1, 70, 0},     // chunked prefill after 70 cached tokens
        {41, 41, 16, 2, 12, 1, 0, 0},      // GQA 8
        {1025, 1025, 2, 2, 64, 0, 0, 0},   // ViT-300M token count (2 of its 16 heads)
    };
    FOR_THREADS(nt) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(be, cases[i], nt);
    }
    ivl_tensor q = ivl_backend_alloc_2d(be, 4, 32), k = ivl_backend_alloc_2d(be, 4, 16);
    ivl_tensor o = ivl_backend_alloc_2d(be, 4, 32);
    expect_rejected("attention with heads not a multiple of kv heads",
                    be->attention(be, &o, &q, &k, &k, 3, 2, 8, 0, 0, 1.0f));
    expect_rejected("causal attention past the last key",
                    be->attention(be, &o, &q, &k, &k, 4, 2, 8, 1, 1, 1.0f));
    be->free(be, &q); be->free(be, &k); be->free(be, &o);
    ivl_backend_destroy(be);
    return finish("test_cpu_attention");
}
