// test_bench_driver.c - the benchmark's accounting and synthetic weights:
//  - every preset parses, and the real presets have spec section 10's parameter counts;
//  - FLOPs per tile / per token equal spec section 10's worked numbers;
//  - the random reader is deterministic and a row or column block is exactly that block of
//    the whole tensor (what a tensor-parallel rank must see);
//  - the reader's shapes cover every tensor the model loads (the tiny presets load).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/driver/flops.h"
#include "bench/driver/presets.h"
#include "bench/driver/random_weights.h"
#include "core/backend.h"
#include "core/check.h"
#include "core/models/internvl.h"

static int failures;

#define EXPECT(cond, ...)                                   \
    do {                                                    \
        if (!(cond)) {                                      \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);      \
            printf(__VA_ARGS__);                            \
            printf("\n");                                   \
            failures++;                                     \
        }                                                   \
    } while (0)

static void near(double got, double want, double rel, const char *what) {
    EXPECT(fabs(got - want) <= rel * fabs(want), "%s = %.6g, spec says %.6g", what, got, want);
}

static ivl_model_config preset(const char *name) {
    ivl_model_config c;
    if (ivl_bench_preset_config(name, &c) != 0) {
        printf("FAIL preset %s: %s\n", name, ivl_last_error());
        exit(1);
    }
    return c;
}

static void test_presets_and_counts(void) {
    const char *all[] = {"internvl-chat-v1-5", "mini-2b", "mini-4b", "tiny-mini2b",
                         "tiny-mini4b", "tiny-v15", "demo", "tiny"};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) (void)preset(all[i]);
    EXPECT(ivl_bench_preset_config("no-such", &(ivl_model_config){0}) != 0, "unknown preset accepted");
    EXPECT(strstr(ivl_last_error(), "mini-2b") != NULL, "error does not list presets: %s", ivl_last_error());
    ivl_model_config v15 = preset("internvl-chat-v1-5"), m2 = preset("mini-2b"), m4 = preset("mini-4b");
    // spec 10 totals
    EXPECT(ivl_vit_param_count(&v15.vit) == 5536496000LL, "6B ViT params %lld", (long long)ivl_vit_param_count(&v15.vit));
    EXPECT(ivl_llm_param_count(&v15.llm) == 19861260288LL, "20B params");
    EXPECT(ivl_projector_param_count(&v15.proj) == 116429824LL, "26B mlp1 params");
    EXPECT(ivl_vit_param_count(&m2.vit) == 304012288LL, "300M params");
    EXPECT(ivl_llm_param_count(&m2.llm) == 1889146880LL, "1.8B params");
    EXPECT(ivl_projector_param_count(&m2.proj) == 12595200LL, "2B mlp1 params");
    EXPECT(ivl_llm_param_count(&m4.llm) == 3820809216LL, "Phi-3 params (V=32020)");
    EXPECT(m4.llm.rope_scaling == IVL_ROPE_SU && m4.llm.n_rope_factors == 48, "Phi-3 su factors");
}

static void test_flops(void) {
    ivl_model_config v15 = preset("internvl-chat-v1-5"), m2 = preset("mini-2b"), m4 = preset("mini-4b");
    near(ivl_flops_vit_tile(&v15.vit), 11.945e12, 1e-3, "6B ViT FLOPs/tile");
    near(ivl_flops_vit_tile(&m2.vit), 0.7236e12, 1e-3, "300M ViT FLOPs/tile");
    near(ivl_flops_projector_tile(&v15.proj), 59.6e9, 2e-3, "26B mlp1 FLOPs/tile");
    near(ivl_flops_projector_tile(&m2.proj), 6.44e9, 2e-3, "2B mlp1 FLOPs/tile");
    near(ivl_flops_projector_tile(&m4.proj), 11.27e9, 2e-3, "4B mlp1 FLOPs/tile");
    // F(t) = const + coeff (t+1)
    near(ivl_flops_llm_linear_token(&v15.llm) + ivl_flops_llm_head_token(&v15.llm), 38.584e9, 1e-4, "20B per token");
    near(ivl_flops_llm_linear_token(&m2.llm) + ivl_flops_llm_head_token(&m2.llm), 3.399e9, 1e-3, "1.8B per token");
    near(ivl_flops_llm_linear_token(&m4.llm) + ivl_flops_llm_head_token(&m4.llm), 7.4445e9, 1e-4, "Phi-3 per token");
    near(ivl_flops_llm_attn(&v15.llm, 1), 1179648, 1e-9, "20B attention coefficient");
    near(ivl_flops_llm_attn(&m2.llm, 1), 196608, 1e-9, "1.8B attention coefficient");
    near(ivl_flops_llm_attn(&m4.llm, 1), 393216, 1e-9, "Phi-3 attention coefficient");
    // decode step = B F(ctx); prefill = sum over positions with the head once
    const ivl_llm_config *c = &m2.llm;
    near(ivl_flops_decode_step(c, 4, 99), 4 * (3.399e9 + 196608.0 * 100), 1e-3, "decode step");
    double sum = 0;
    for (int t = 0; t < 10; t++) sum += ivl_flops_llm_linear_token(c) + ivl_flops_llm_attn(c, t + 1);
    near(ivl_flops_prefill(c, 10, 0), sum + ivl_flops_llm_head_token(c), 1e-12, "prefill sum");
    // KV bytes per token (spec 10, bf16): 1.8B 98,304 B
    near(ivl_bytes_decode_step(c, 2, 9, 2) - ivl_bytes_decode_step(c, 1, 9, 2),
         10 * 98304.0 + 2 * c->hidden, 1e-9, "decode bytes per sequence");
}

static void test_reader_blocks(void) {
    ivl_model_config t = preset("tiny-v15");
    ivl_random_weights rw;
    ivl_weight_reader r;
    ivl_random_weights_init(&rw, &t, 42, &r);
    ivl_tensor all, rows, cols, again;
    const char *name = "llm.layers.2.o";
    EXPECT(r.read(r.ctx, name, IVL_READ_ALL, 0, 0, IVL_F32, &all) == 0, "read %s", name);
    EXPECT(r.read(r.ctx, name, IVL_READ_ROWS, 10, 7, IVL_F32, &rows) == 0, "rows");
    EXPECT(r.read(r.ctx, name, IVL_READ_COLS, 24, 24, IVL_F32, &cols) == 0, "cols");
    EXPECT(r.read(r.ctx, name, IVL_READ_ALL, 0, 0, IVL_F32, &again) == 0, "again");
    const int64_t C = all.shape[1];
    const float *A = all.data, *R = rows.data, *K = cols.data;
    EXPECT(memcmp(all.data, again.data, ivl_tensor_nbytes(&all)) == 0, "not deterministic");
    for (int64_t i = 0; i < 7; i++)
        for (int64_t j = 0; j < C; j++) EXPECT(R[i * C + j] == A[(10 + i) * C + j], "row block differs");
    for (int64_t i = 0; i < all.shape[0]; i++)
        for (int64_t j = 0; j < 24; j++) EXPECT(K[i * 24 + j] == A[i * C + 24 + j], "col block differs");
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < ivl_tensor_numel(&all); i++) s += A[i], s2 += A[i] * A[i];
    double n = (double)ivl_tensor_numel(&all), sd = sqrt(s2 / n - (s / n) * (s / n));
    EXPECT(fabs(sd - 0.02) < 0.002, "matrix std %.4f, want 0.02", sd);
    ivl_tensor nw;
    EXPECT(r.read(r.ctx, "llm.norm", IVL_READ_ALL, 0, 0, IVL_F32, &nw) == 0, "norm");
    EXPECT(fabs(((float *)nw.data)[0] - 1.0f) < 0.05f, "norm weight not ~1");
    EXPECT(r.read(r.ctx, "llm.layers.99.q", IVL_READ_ALL, 0, 0, IVL_F32, &again) != 0 ||
               (ivl_tensor_free_host(&again), 0), "layer 99 exists");
    EXPECT(!r.has(r.ctx, "vision.layers.0.attn.q.bias"), "6B style has no qkv bias");
    ivl_tensor *ts[] = {&all, &rows, &cols, &nw};
    for (size_t i = 0; i < 4; i++) ivl_tensor_free_host(ts[i]);
}

static void test_models_load(void) {
    const char *names[] = {"tiny-mini2b", "tiny-mini4b", "tiny-v15"};
    ivl_backend *be = ivl_backend_cpu_create();
    for (int i = 0; i < 3; i++) {
        ivl_model_config c = preset(names[i]);
        ivl_random_weights rw;
        ivl_weight_reader r;
        ivl_random_weights_init(&rw, &c, 1, &r);
        ivl_model m;
        int rc = ivl_model_load(&m, be, &r, &c, NULL, NULL, 1);
        EXPECT(rc == 0, "%s does not load from random weights: %s", names[i], ivl_last_error());
        if (rc != 0) continue;
        int64_t want = ivl_vit_param_count(&c.vit) + ivl_projector_param_count(&c.proj) + ivl_llm_param_count(&c.llm);
        EXPECT(rw.values_made == want, "%s: reader made %lld values, the model has %lld parameters",
               names[i], (long long)rw.values_made, (long long)want);
        ivl_model_free(&m);
    }
    ivl_backend_destroy(be);
}

int main(void) {
    test_presets_and_counts();
    test_flops();
    test_reader_blocks();
    test_models_load();
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("bench driver: all checks passed\n");
    return 0;
}
