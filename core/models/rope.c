// rope.c - RoPE tables for the two LLM families, reproducing the reference's float32
// arithmetic: inv_freq[k] = 1 / (factor_k * base^(2k/hd)) in float32, angle = float32(pos) *
// inv_freq[k] in float32, cos/sin in float32.
//
// InternLM2 dynamic NTK (spec 4.2): the table is rebuilt when the KV length L of a forward call
// exceeds the longest length seen so far; past max_position_embeddings the base becomes
// theta * ((f * L / max) - (f - 1)) ^ (hd / (hd - 2)). The state never shrinks, and keys
// already cached keep their rotation. Per sequence, positions only grow, so the longest length
// seen is the KV length of the current call, pos0 + n.
//
// Phi-3 LongRoPE "su" (spec 5): per forward call, S = largest position in the call + 1;
// S > original_max_position_embeddings selects long_factor, else short_factor; cos and sin are
// scaled by sqrt(1 + ln(max/orig) / ln(orig)) (1 when max <= orig).
#include "core/models/llm.h"
#include "core/check.h"

#include <math.h>

int64_t ivl_llm_rope_exact_len(const ivl_llm_config *c) {
    if (c->rope_scaling == IVL_ROPE_DYNAMIC) return c->max_position;
    if (c->rope_scaling == IVL_ROPE_SU) return c->original_max_position;
    return INT64_MAX;
}

void ivl_llm_rope_rows(const ivl_llm_config *c, int64_t pos0, int64_t n, float *cos_out,
                       float *sin_out) {
    const int hd = c->head_dim, half = hd / 2;
    IVL_CHECK(half <= IVL_MAX_ROPE_FACTORS, "head_dim %d too large", hd);
    double base = c->rope_theta;
    const double *factors = NULL;
    float mscale = 1.0f;
    int64_t kv_len = pos0 + n;

    if (c->rope_scaling == IVL_ROPE_DYNAMIC) {
        if (kv_len > c->max_position) {
            double f = c->rope_factor, L = (double)kv_len;
            base = c->rope_theta *
                   pow(f * L / c->max_position - (f - 1.0), (double)hd / (hd - 2));
        }
    } else if (c->rope_scaling == IVL_ROPE_SU) {
        int64_t S = pos0 + n;   // largest position in this call + 1
        factors = S > c->original_max_position ? c->long_factor : c->short_factor;
        double scale = (double)c->max_position / c->original_max_position;
        if (scale > 1.0)
            mscale = (float)sqrt(1.0 + log(scale) / log((double)c->original_max_position));
    }
    float inv_freq[IVL_MAX_ROPE_FACTORS];
    for (int k = 0; k < half; k++) {
        float e = (float)(2 * k) / (float)hd;
        float p = powf((float)base, e);
        if (factors) p = (float)factors[k] * p;
        inv_freq[k] = 1.0f / p;
    }
    for (int64_t i = 0; i < n; i++) {
        float t = (float)(pos0 + i);
        for (int k = 0; k < half; k++) {
            float a = t * inv_freq[k];
            cos_out[i * half + k] = cosf(a) * mscale;
            sin_out[i * half + k] = sinf(a) * mscale;
        }
    }
}
