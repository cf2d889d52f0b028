// test_cpu_embed.c - embed (token lookup), patch_embed (a strided Conv2d), pixel_shuffle
// (v1 and v2) and argmax. The pixel-shuffle reference follows the PyTorch reference's
// view/permute sequence (spec section 3), not the kernel's closed-form index.
#include "tests/ops/ops_test.h"

static void test_embed(ivl_backend *be, int nt) {
    const int64_t V = 11, D = 37, n = 9;
    float *table = rnd_array(V * D, -1, 1);
    int32_t ids[9] = {0, 10, 3, 3, 7, 0, 1, 9, 10};
    double *ref = malloc(sizeof(double) * (size_t)(n * D));
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++) ref[i * D + d] = table[ids[i] * D + d];
    ivl_tensor tt = dev_from(be, table, V, D), to = ivl_backend_alloc_2d(be, n, D);
    be->embed(be, &to, &tt, ids, n);
    float *o = host_from(be, &to);
    char what[64];
    snprintf(what, sizeof what, "embed threads=%d", nt);
    check_close(what, o, ref, n * D, 0, 0);
    int32_t bad[2] = {3, (int32_t)V};
    ivl_tensor t2 = ivl_backend_alloc_2d(be, 2, D);
    expect_rejected("embed with an id past the table", be->embed(be, &t2, &tt, bad, 2));
    bad[1] = -1;
    expect_rejected("embed with a negative id", be->embed(be, &t2, &tt, bad, 2));
    be->free(be, &tt); be->free(be, &to); be->free(be, &t2);
    free(table); free(ref); free(o);
}

static void test_patch_embed(ivl_backend *be, int64_t B, int64_t S, int p, int64_t C, int nt) {
    int64_t g = S / p, kk = 3 * (int64_t)p * p;
    float *px = rnd_array(B * 3 * S * S, -2, 2), *w = rnd_array(C * kk, -0.5, 0.5);
    float *b = rnd_array(C, -1, 1);
    double *ref = malloc(sizeof(double) * (size_t)(B * g * g * C));
    // Conv2d(3 -> C, kernel p, stride p) then flatten(2).transpose(1, 2): token r*g + c.
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t r = 0; r < g; r++)
            for (int64_t c = 0; c < g; c++)
                for (int64_t o = 0; o < C; o++) {
                    double s = b[o];
                    for (int ch = 0; ch < 3; ch++)
                        for (int y = 0; y < p; y++)
                            for (int x = 0; x < p; x++)
                                s += (double)w[((o * 3 + ch) * p + y) * p + x] *
                                     px[((bi * 3 + ch) * S + r * p + y) * S + c * p + x];
                    ref[((bi * g + r) * g + c) * C + o] = s;
                }
    ivl_tensor hp = ivl_tensor_desc(IVL_F32, 4, (int64_t[]){B, 3, S, S});
    hp.data = px;
    ivl_tensor tp = ivl_backend_from_host(be, &hp);
    ivl_tensor tw = dev_from(be, w, C, kk), tb = dev_from(be, b, 1, C);
    ivl_tensor to = ivl_backend_alloc_2d(be, B * g * g, C);
    be->patch_embed(be, &to, &tp, &tw, &tb, p);
    float *o = host_from(be, &to);
    char what[128];
    snprintf(what, sizeof what, "patch_embed B=%lld S=%lld patch=%d C=%lld threads=%d",
             (long long)B, (long long)S, p, (long long)C, nt);
    check_close(what, o, ref, B * g * g * C, 2e-5 * sqrt((double)kk), 1e-5);
    be->free(be, &tp); be->free(be, &tw); be->free(be, &tb); be->free(be, &to);
    free(px); free(w); free(b); free(ref); free(o);
}

// The PyTorch reference: x [B, g, g, C] -> view [B, g, g/2, 2C] -> transpose(1, 2) ->
// view [B, g/2, g/2, 4C] -> (v2) transpose(1, 2) -> flatten to tokens. Each view is a
// contiguous reinterpretation, each transpose a materialised permute.
static void ref_pixel_shuffle(double *out, const float *in, int64_t B, int64_t g, int64_t C,
                              int version) {
    int64_t h = g / 2, n = B * g * g * C;
    double *a = malloc(sizeof(double) * (size_t)n), *t = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) a[i] = in[i];
    // a as [B, g, h, 2C]; t = a.transpose(1, 2) as [B, h, g, 2C]
    for (int64_t b = 0; b < B; b++)
        for (int64_t i1 = 0; i1 < g; i1++)
            for (int64_t i2 = 0; i2 < h; i2++)
                for (int64_t c = 0; c < 2 * C; c++)
                    t[((b * h + i2) * g + i1) * 2 * C + c] = a[((b * g + i1) * h + i2) * 2 * C + c];
    // t as [B, h, h, 4C]; v2: out = t.transpose(1, 2); v1: out = t
    for (int64_t b = 0; b < B; b++)
        for (int64_t i1 = 0; i1 < h; i1++)
            for (int64_t i2 = 0; i2 < h; i2++)
                for (int64_t c = 0; c < 4 * C; c++) {
                    int64_t src = ((b * h + i1) * h + i2) * 4 * C + c;
                    int64_t dst = version == 2 ? ((b * h + i2) * h + i1) * 4 * C + c : src;
                    out[dst] = t[src];
                }
    free(a); free(t);
}

static void test_pixel_shuffle(ivl_backend *be, int64_t B, int g, int64_t C, int version,
                               int nt) {
    int64_t n = B * g * g * C;
    float *x = rnd_array(n, -1, 1);
    double *ref = malloc(sizeof(double) * (size_t)n);
    ref_pixel_shuffle(ref, x, B, g, C, version);
    ivl_tensor tx = dev_from(be, x, B * g * g, C), to = ivl_backend_alloc_2d(be, B * g * g / 4, 4 * C);
    be->pixel_shuffle(be, &to, &tx, g, version);
    float *o = host_from(be, &to);
    char what[128];
    snprintf(what, sizeof what, "pixel_shuffle v%d B=%lld grid=%d C=%lld threads=%d", version,
             (long long)B, g, (long long)C, nt);
    check_close(what, o, ref, n, 0, 0);   // pure data movement: exact
    be->free(be, &tx); be->free(be, &to);
    free(x); free(ref); free(o);
}

static void test_argmax(ivl_backend *be, int nt) {
    const int64_t R = 6, V = 1001;
    float *x = rnd_array(R * V, -5, 5);
    x[0 * V + 17] = 9.0f;  x[0 * V + 500] = 9.0f;          // tie: first wins -> 17
    for (int64_t j = 0; j < V; j++) x[1 * V + j] = -3.0f;  // all equal -> 0
    x[2 * V + V - 1] = 50.0f;                               // last column
    for (int64_t j = 0; j < V; j++) x[3 * V + j] = -INFINITY;
    x[3 * V + 4] = -1e30f;                                  // only finite value
    x[4 * V + 0] = 100.0f;                                  // first column
    int32_t want[6];
    for (int64_t r = 0; r < R; r++) {
        int64_t best = 0;
        for (int64_t j = 1; j < V; j++)
            if (x[r * V + j] > x[r * V + best]) best = j;
        want[r] = (int32_t)best;
    }
    ivl_tensor t = dev_from(be, x, R, V);
    int32_t got[6] = {-1, -1, -1, -1, -1, -1};
    be->argmax(be, &t, got);
    int ok = 1;
    for (int r = 0; r < R; r++)
        if (got[r] != want[r]) {
            printf("  argmax row %d: got %d want %d\n", r, got[r], want[r]);
            ok = 0;
        }
    ok = ok && want[0] == 17 && want[1] == 0 && want[2] == V - 1 && want[3] == 4 && want[4] == 0;
    char what[64];
    snprintf(what, sizeof what, "argmax (ties, -inf, edges) threads=%d", nt);
    check_true(what, ok);
    be->free(be, &t);
    free(x);
}

int main(void) {
    ivl_backend *be = ivl_backend_cpu_create();
    FOR_THREADS(nt) {
        test_embed(be, nt);
        test_patch_embed(be, 1, 12, 4, 33, nt);
        test_patch_embed(be, 2, 28, 14, 5, nt);
        test_patch_embed(be, 3, 42, 14, 64, nt);
        for (int ver = 1; ver <= 2; ver++) {
            test_pixel_shuffle(be, 1, 2, 1, ver, nt);
            test_pixel_shuffle(be, 2, 4, 3, ver, nt);
            test_pixel_shuffle(be, 3, 6, 5, ver, nt);
            test_pixel_shuffle(be, 2, 32, 24, ver, nt);   // the real 32x32 grid
        }
        test_argmax(be, nt);
    }
    ivl_tensor x = ivl_backend_alloc_2d(be, 36, 4), o = ivl_backend_alloc_2d(be, 9, 16);
    expect_rejected("pixel_shuffle with an odd grid", be->pixel_shuffle(be, &o, &x, 6 - 1, 2));
    expect_rejected("pixel_shuffle version 3", be->pixel_shuffle(be, &o, &x, 6, 3));
    be->free(be, &x); be->free(be, &o);
    ivl_backend_destroy(be);
    return finish("test_cpu_embed");
}
