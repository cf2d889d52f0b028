// projector.c - pixel shuffle (v1 or v2 token order) then mlp1:
// LayerNorm(4C) -> Linear(4C->D) -> GELU(erf) -> Linear(D->D).
#include "core/models/projector.h"
#include "core/check.h"
#include "core/models/load_util.h"

int ivl_projector_load(ivl_backend *be, const ivl_weight_reader *r,
                       const ivl_projector_config *c, ivl_projector_weights *w) {
    const int64_t in = c->in_dim, D = c->out_dim;
    if (ivl_load_1d(be, r, "mlp1.0.weight", in, &w->ln_w)) return -1;
    if (ivl_load_1d(be, r, "mlp1.0.bias", in, &w->ln_b)) return -1;
    if (ivl_load_weight(be, r, "mlp1.1.weight", IVL_READ_ALL, 0, 0, D, in, &w->fc1_w)) return -1;
    if (ivl_load_1d(be, r, "mlp1.1.bias", D, &w->fc1_b)) return -1;
    if (ivl_load_weight(be, r, "mlp1.3.weight", IVL_READ_ALL, 0, 0, D, D, &w->fc2_w)) return -1;
    if (ivl_load_1d(be, r, "mlp1.3.bias", D, &w->fc2_b)) return -1;
    return 0;
}

void ivl_projector_free(ivl_backend *be, ivl_projector_weights *w) {
    ivl_tensor *t[] = {&w->ln_w, &w->ln_b, &w->fc1_w, &w->fc1_b, &w->fc2_w, &w->fc2_b};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) ivl_free_tensor(be, t[i]);
}

void ivl_projector_forward(ivl_backend *be, const ivl_projector_config *c,
                           const ivl_projector_weights *w, int grid, const ivl_tensor *vit_out,
                           ivl_tensor *out, const ivl_dump *dump) {
    const int64_t tokens = ivl_tensor_rows(vit_out) / 4;   // 2x2 patches merge into one
    IVL_CHECK(ivl_tensor_rows(out) == tokens && ivl_tensor_cols(out) == c->out_dim,
              "projector output must be [%lld, %d]", (long long)tokens, c->out_dim);
    ivl_tensor shuffled = ivl_backend_alloc_2d(be, tokens, c->in_dim);
    ivl_tensor hidden = ivl_backend_alloc_2d(be, tokens, c->out_dim);
    be->pixel_shuffle(be, &shuffled, vit_out, grid, c->ps_version);
    ivl_dump_tensor(dump, "pixel_shuffle", be, &shuffled);
    be->layernorm(be, &shuffled, &shuffled, &w->ln_w, &w->ln_b, c->ln_eps);
    be->matmul(be, &hidden, &shuffled, &w->fc1_w, &w->fc1_b);
    be->gelu(be, &hidden, &hidden);
    be->matmul(be, out, &hidden, &w->fc2_w, &w->fc2_b);
    be->free(be, &shuffled);
    be->free(be, &hidden);
}
