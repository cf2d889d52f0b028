// config.c - parses the Hugging Face config.json of InternVLChatModel (vision_config +
// llm_config) into ivl_model_config, and counts parameters per part (spec 1, 5, 10).
//
// Keys that fix a tensor shape are required: a missing one is an error naming it
// ("config.json: llm_config.num_key_value_heads missing"). Keys with a default in the Hugging
// Face config classes (InternVisionConfig, InternLM2Config, Phi3Config, InternVLChatConfig)
// take that default when absent, so the engine reads a config exactly as transformers does.
#include "core/models/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/check.h"
#include "core/log.h"

// --- small typed getters: each returns 0 or -1 with an error naming "section.key" ---------

static int get_num(const cJSON *obj, const char *sec, const char *key, int required,
                   double def, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return ivl_errorf("config.json: %s%s%s missing", sec, *sec ? "." : "", key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return ivl_errorf("config.json: %s%s%s is not a number", sec, *sec ? "." : "", key);
    *out = v->valuedouble;
    return 0;
}

// Integer that must be > 0 (sizes, counts) unless min says otherwise.
static int get_int(const cJSON *obj, const char *sec, const char *key, int required, int def,
                   int min, int *out) {
    double d = 0;
    if (get_num(obj, sec, key, required, def, &d)) return -1;
    if (d != floor(d) || d < min || d > 2147483647.0)
        return ivl_errorf("config.json: %s%s%s = %g is not an integer >= %d", sec,
                          *sec ? "." : "", key, d, min);
    *out = (int)d;
    return 0;
}

static int get_bool(const cJSON *obj, const char *sec, const char *key, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
    else if (cJSON_IsNumber(v)) *out = v->valuedouble != 0;   // use_backbone_lora-style 0/1
    else return ivl_errorf("config.json: %s.%s is not a boolean", sec, key);
    return 0;
}

// String into buf; def may be NULL for a required key.
static int get_str(const cJSON *obj, const char *sec, const char *key, const char *def,
                   char *buf, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    const char *s = def;
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v))
            return ivl_errorf("config.json: %s%s%s is not a string", sec, *sec ? "." : "", key);
        s = v->valuestring;
    }
    if (!s) return ivl_errorf("config.json: %s%s%s missing", sec, *sec ? "." : "", key);
    if (strlen(s) >= n)
        return ivl_errorf("config.json: %s%s%s is too long (%zu bytes, at most %zu)", sec,
                          *sec ? "." : "", key, strlen(s), n - 1);
    snprintf(buf, n, "%s", s);
    return 0;
}

// --- vision_config ----------------------------------------------------------------------

static int parse_vit(const cJSON *v, int force_image_size, ivl_vit_config *c) {
    const char *S = "vision_config";
    char norm[32];
    double eps = 0;
    if (get_int(v, S, "hidden_size", 1, 0, 1, &c->hidden) ||
        get_int(v, S, "num_hidden_layers", 1, 0, 1, &c->layers) ||
        get_int(v, S, "num_attention_heads", 1, 0, 1, &c->heads) ||
        get_int(v, S, "intermediate_size", 1, 0, 1, &c->intermediate) ||
        get_int(v, S, "image_size", force_image_size <= 0, 0, 1, &c->image_size) ||
        get_int(v, S, "patch_size", 1, 0, 1, &c->patch_size) ||
        get_str(v, S, "norm_type", "rms_norm", norm, sizeof norm) ||
        get_num(v, S, "layer_norm_eps", 0, 1e-6, &eps) ||
        get_bool(v, S, "qkv_bias", 0, &c->qkv_bias) ||
        get_bool(v, S, "qk_normalization", 1, &c->qk_norm))
        return -1;
    // InternVLChatModel uses force_image_size when set, else vision_config.image_size.
    if (force_image_size > 0) c->image_size = force_image_size;
    if (!strcmp(norm, "rms_norm")) c->norm = IVL_NORM_RMS;
    else if (!strcmp(norm, "layer_norm")) c->norm = IVL_NORM_LAYER;
    else return ivl_errorf("config.json: vision_config.norm_type '%s' is not rms_norm or layer_norm", norm);
    if (c->hidden % c->heads)
        return ivl_errorf("config.json: vision_config.hidden_size %d is not a multiple of "
                          "num_attention_heads %d", c->hidden, c->heads);
    if (c->image_size % c->patch_size)
        return ivl_errorf("config.json: image size %d is not a multiple of patch_size %d",
                          c->image_size, c->patch_size);
    c->head_dim = c->hidden / c->heads;
    c->grid = c->image_size / c->patch_size;
    c->norm_eps = (float)eps;
    return 0;
}

// --- llm_config ---------------------------------------------------------------------------

static int parse_factor_list(const cJSON *rs, const char *key, int n, double *out) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(rs, key);
    if (!a) return ivl_errorf("config.json: llm_config.rope_scaling.%s missing", key);
    if (!cJSON_IsArray(a))
        return ivl_errorf("config.json: llm_config.rope_scaling.%s is not a list", key);
    if (cJSON_GetArraySize(a) != n)
        return ivl_errorf("config.json: llm_config.rope_scaling.%s has %d values, expected "
                          "head_dim/2 = %d", key, cJSON_GetArraySize(a), n);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e))
            return ivl_errorf("config.json: llm_config.rope_scaling.%s[%d] is not a number", key, i);
        out[i++] = e->valuedouble;
    }
    return 0;
}

static int parse_rope_scaling(const cJSON *l, ivl_llm_config *c) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(l, "rope_scaling");
    c->rope_scaling = IVL_ROPE_NONE;
    c->rope_factor = 1.0;
    c->original_max_position = c->max_position;
    c->n_rope_factors = 0;
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs)) return ivl_errorf("config.json: llm_config.rope_scaling is not an object");
    char type[32];
    if (get_str(rs, "llm_config.rope_scaling", "type", NULL, type, sizeof type)) return -1;
    if (c->arch == IVL_LLM_INTERNLM2 && !strcmp(type, "dynamic")) {
        c->rope_scaling = IVL_ROPE_DYNAMIC;
        if (get_num(rs, "llm_config.rope_scaling", "factor", 1, 0, &c->rope_factor)) return -1;
        if (!(c->rope_factor >= 1.0))
            return ivl_errorf("config.json: llm_config.rope_scaling.factor %g must be >= 1",
                              c->rope_factor);
        return 0;
    }
    // transformers treats "su" (Apr 2024 Phi-3) and its later name "longrope" the same way.
    if (c->arch == IVL_LLM_PHI3 && (!strcmp(type, "su") || !strcmp(type, "longrope"))) {
        c->rope_scaling = IVL_ROPE_SU;
        c->n_rope_factors = c->head_dim / 2;
        if (c->n_rope_factors > IVL_MAX_ROPE_FACTORS)
            return ivl_errorf("config.json: head_dim %d too large for su rope (at most %d)",
                              c->head_dim, 2 * IVL_MAX_ROPE_FACTORS);
        if (parse_factor_list(rs, "short_factor", c->n_rope_factors, c->short_factor) ||
            parse_factor_list(rs, "long_factor", c->n_rope_factors, c->long_factor))
            return -1;
        // Phi3Config keeps original_max_position_embeddings next to rope_scaling.
        if (get_int(l, "llm_config", "original_max_position_embeddings", 1, 0, 1,
                    &c->original_max_position))
            return -1;
        return 0;
    }
    return ivl_errorf("config.json: llm_config.rope_scaling.type '%s' is not supported for %s "
                      "(supported: dynamic for InternLM2, su/longrope for Phi-3)", type,
                      c->arch == IVL_LLM_INTERNLM2 ? "InternLM2" : "Phi-3");
}

static int parse_llm(const cJSON *l, ivl_llm_config *c) {
    const char *S = "llm_config";
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(l, "architectures");
    if (!archs) return ivl_errorf("config.json: llm_config.architectures missing");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0))
        return ivl_errorf("config.json: llm_config.architectures is not a list of names");
    // Defaults of the two HF config classes where they differ.
    int def_bos = 1, def_eos = 2, def_pad = 0;
    if (!strcmp(a0->valuestring, "InternLM2ForCausalLM")) {
        c->arch = IVL_LLM_INTERNLM2;
    } else if (!strcmp(a0->valuestring, "Phi3ForCausalLM")) {
        c->arch = IVL_LLM_PHI3;
        def_eos = 32000;
        def_pad = 32000;
    } else {
        return ivl_errorf("config.json: unsupported architecture %s (llm_config.architectures[0]; "
                          "supported: InternLM2ForCausalLM, Phi3ForCausalLM)", a0->valuestring);
    }
    double eps = 0;
    if (get_int(l, S, "hidden_size", 1, 0, 1, &c->hidden) ||
        get_int(l, S, "num_hidden_layers", 1, 0, 1, &c->layers) ||
        get_int(l, S, "num_attention_heads", 1, 0, 1, &c->heads) ||
        get_int(l, S, "num_key_value_heads", 1, 0, 1, &c->kv_heads) ||
        get_int(l, S, "intermediate_size", 1, 0, 1, &c->intermediate) ||
        get_int(l, S, "vocab_size", 1, 0, 1, &c->vocab) ||
        get_int(l, S, "max_position_embeddings", 1, 0, 1, &c->max_position) ||
        get_num(l, S, "rms_norm_eps", 1, 0, &eps) ||
        get_num(l, S, "rope_theta", 0, 10000.0, &c->rope_theta) ||
        get_int(l, S, "bos_token_id", 0, def_bos, -1, &c->bos_id) ||
        get_int(l, S, "eos_token_id", 0, def_eos, -1, &c->eos_id) ||
        get_int(l, S, "pad_token_id", 0, def_pad, -1, &c->pad_id))
        return -1;
    if (c->hidden % c->heads)
        return ivl_errorf("config.json: llm_config.hidden_size %d is not a multiple of "
                          "num_attention_heads %d", c->hidden, c->heads);
    if (c->heads % c->kv_heads)
        return ivl_errorf("config.json: llm_config.num_attention_heads %d is not a multiple of "
                          "num_key_value_heads %d", c->heads, c->kv_heads);
    c->head_dim = c->hidden / c->heads;
    if (c->head_dim % 2)
        return ivl_errorf("config.json: llm head_dim %d is odd (rotary needs pairs)", c->head_dim);
    c->rms_eps = (float)eps;
    if (!(c->rope_theta > 0)) return ivl_errorf("config.json: llm_config.rope_theta must be > 0");
    // Both models' linear layers have no bias; a config asking for one does not fit the
    // tensors this engine loads.
    int bias = 0;
    if (get_bool(l, S, "bias", 0, &bias)) return -1;
    if (bias) return ivl_errorf("config.json: llm_config.bias is true; linear biases are not supported");
    int tie = 0;
    if (get_bool(l, S, "tie_word_embeddings", 0, &tie)) return -1;
    if (tie)
        return ivl_errorf("config.json: llm_config.tie_word_embeddings is true; the engine "
                          "expects a separate LM head");
    return parse_rope_scaling(l, c);
}

// --- bounds (issue 18) -----------------------------------------------------------------------

// Every size the engine computes with is bounded well above the InternVL 1.5 checkpoints, so
// that no product of two of them overflows an int and no per-layer table is absurd (a config
// with 1e9 layers ran the converter out of memory without a message). The message names the
// key. Tiles: chat and caption take at most 40 (--max-tiles).
#define IVL_CONFIG_MAX_TILES 40

typedef struct {
    const char *key;
    int value;
    int max;
    const char *usual;   // what the InternVL 1.5 checkpoints have
} config_bound;

static int check_bounds(const config_bound *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (b[i].value > b[i].max)
            return ivl_errorf("config.json: %s = %d is beyond what the engine can use: at most %d "
                              "(InternVL 1.5 checkpoints have %s)%s; fix config.json", b[i].key,
                              b[i].value, b[i].max, b[i].usual,
                              strstr(b[i].key, "dynamic_patch")
                                  ? " (chat and caption take at most 40 tiles, --max-tiles)" : "");
    return 0;
}

static int check_sizes(const ivl_model_config *c) {
    const config_bound b[] = {
        {"vision_config.hidden_size", c->vit.hidden, 65536, "1024 or 3200"},
        {"vision_config.num_hidden_layers", c->vit.layers, 1024, "24 or 45"},
        {"vision_config.num_attention_heads", c->vit.heads, 1024, "16 or 25"},
        {"vision_config.intermediate_size", c->vit.intermediate, 262144, "4096 or 12800"},
        {"vision_config.image_size", c->vit.image_size, 4480, "448"},
        {"vision_config.patch_size", c->vit.patch_size, 448, "14"},
        {"llm_config.hidden_size", c->llm.hidden, 65536, "2048 to 6144"},
        {"llm_config.num_hidden_layers", c->llm.layers, 1024, "24 to 48"},
        {"llm_config.num_attention_heads", c->llm.heads, 1024, "16 to 48"},
        {"llm_config.num_key_value_heads", c->llm.kv_heads, 1024, "8 to 32"},
        {"llm_config.intermediate_size", c->llm.intermediate, 262144, "8192 to 16384"},
        {"llm_config.vocab_size", c->llm.vocab, 4194304, "32020 to 92553"},
        {"llm_config.max_position_embeddings", c->llm.max_position, 16777216, "32768 or 131072"},
    };
    return check_bounds(b, sizeof b / sizeof b[0]);
}

static int check_tiles(const ivl_model_config *c) {
    const config_bound b[] = {
        {"min_dynamic_patch", c->min_dynamic_patch, IVL_CONFIG_MAX_TILES, "1"},
        {"max_dynamic_patch", c->max_dynamic_patch, IVL_CONFIG_MAX_TILES, "6, 12 or 40"},
    };
    return check_bounds(b, sizeof b / sizeof b[0]);
}

// --- top level ----------------------------------------------------------------------------

int ivl_model_config_parse(const char *json_text, ivl_model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_Parse(json_text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        return ivl_errorf("config.json: not valid JSON (near: %.40s)", at ? at : "?");
    }
    int rc = -1;
    const cJSON *vis = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    const cJSON *llm = cJSON_GetObjectItemCaseSensitive(root, "llm_config");
    char ps[8];
    double ds = 0;
    int force = 0;
    if (!cJSON_IsObject(root)) { ivl_errorf("config.json: top level is not an object"); goto done; }
    if (!cJSON_IsObject(vis)) { ivl_errorf("config.json: vision_config missing"); goto done; }
    if (!cJSON_IsObject(llm)) { ivl_errorf("config.json: llm_config missing"); goto done; }

    if (get_int(root, "", "force_image_size", 0, 0, 0, &force) ||
        parse_vit(vis, force, &cfg->vit) || parse_llm(llm, &cfg->llm) || check_sizes(cfg))
        goto done;
    if (get_num(root, "", "downsample_ratio", 0, 0.5, &ds) ||
        get_str(root, "", "ps_version", "v2", ps, sizeof ps) ||
        get_str(root, "", "template", NULL, cfg->template_name, sizeof cfg->template_name) ||
        get_int(root, "", "select_layer", 0, -1, -1000, &cfg->select_layer) ||
        get_int(root, "", "min_dynamic_patch", 0, 1, 1, &cfg->min_dynamic_patch) ||
        get_int(root, "", "max_dynamic_patch", 0, 6, 1, &cfg->max_dynamic_patch) ||
        get_bool(root, "", "use_thumbnail", 0, &cfg->use_thumbnail) ||
        get_bool(root, "", "dynamic_image_size", 0, &cfg->dynamic_image_size) ||
        get_str(root, "", "system_message", "", cfg->system_message, sizeof cfg->system_message) ||
        check_tiles(cfg))
        goto done;
    // name: the last component of _name_or_path (often a long training-cluster path).
    const cJSON *np = cJSON_GetObjectItemCaseSensitive(root, "_name_or_path");
    if (cJSON_IsString(np)) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", np->valuestring);
        for (size_t n = strlen(tmp); n > 1 && tmp[n - 1] == '/'; n--) tmp[n - 1] = 0;
        const char *base = strrchr(tmp, '/') ? strrchr(tmp, '/') + 1 : tmp;
        snprintf(cfg->name, sizeof cfg->name, "%s", base);
    }
    if (!cJSON_GetObjectItemCaseSensitive(root, "ps_version"))
        LOG_DEBUG("config.json: ps_version absent, using v2 (the InternVL 1.5 checkpoints' order)");

    if (!strcmp(ps, "v2")) cfg->proj.ps_version = 2;
    else if (!strcmp(ps, "v1")) cfg->proj.ps_version = 1;
    else { ivl_errorf("config.json: ps_version '%s' is not v1 or v2", ps); goto done; }
    if (!strcmp(cfg->template_name, "internlm2-chat")) cfg->template_kind = IVL_TEMPLATE_INTERNLM2;
    else if (!strcmp(cfg->template_name, "phi3-chat")) cfg->template_kind = IVL_TEMPLATE_PHI3;
    else {
        ivl_errorf("config.json: template '%s' is not supported (internlm2-chat, phi3-chat)",
                   cfg->template_name);
        goto done;
    }
    if (cfg->select_layer != -1) {
        ivl_errorf("config.json: select_layer %d is not supported (only -1, the last layer)",
                   cfg->select_layer);
        goto done;
    }
    if (cfg->min_dynamic_patch > cfg->max_dynamic_patch) {
        ivl_errorf("config.json: min_dynamic_patch %d > max_dynamic_patch %d",
                   cfg->min_dynamic_patch, cfg->max_dynamic_patch);
        goto done;
    }
    // Pixel shuffle groups (1/ds)^2 neighbouring tokens; only ratios 1/k with k | grid work.
    int k = (int)lround(1.0 / ds);
    if (!(ds > 0) || fabs(1.0 / ds - k) > 1e-9 || cfg->vit.grid % k) {
        ivl_errorf("config.json: downsample_ratio %g does not divide the %d-patch grid",
                   ds, cfg->vit.grid);
        goto done;
    }
    if ((int64_t)cfg->vit.hidden * k * k > (1 << 22)) {
        ivl_errorf("config.json: downsample_ratio %g with vision_config.hidden_size %d gives a "
                   "projector input of %lld values per token, beyond what the engine can use "
                   "(at most %d; InternVL 1.5: 4096 or 12800)", ds, cfg->vit.hidden,
                   (long long)cfg->vit.hidden * k * k, 1 << 22);
        goto done;
    }
    cfg->proj.downsample = (float)ds;
    cfg->proj.in_dim = cfg->vit.hidden * k * k;
    cfg->proj.out_dim = cfg->llm.hidden;
    cfg->proj.tokens_per_tile = (cfg->vit.grid / k) * (cfg->vit.grid / k);
    cfg->proj.ln_eps = 1e-5f;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

// --- parameter counts (spec 10) ---------------------------------------------------------

int64_t ivl_vit_param_count(const ivl_vit_config *c) {
    int64_t C = c->hidden, I = c->intermediate;
    int64_t norms = (c->norm == IVL_NORM_LAYER ? 4 : 2) * C;          // norm1, norm2
    int64_t attn = 3 * C * C + (c->qkv_bias ? 3 * C : 0) + (c->qk_norm ? 2 * C : 0) + C * C + C;
    int64_t mlp = I * C + I + C * I + C;
    int64_t layer = norms + attn + mlp + 2 * C;                        // + ls1, ls2
    int64_t p = c->patch_size;
    int64_t embed = C + (C * 3 * p * p + C) + ((int64_t)c->grid * c->grid + 1) * C;
    return layer * c->layers + embed;
}

int64_t ivl_projector_param_count(const ivl_projector_config *c) {
    int64_t in = c->in_dim, D = c->out_dim;
    return 2 * in + (D * in + D) + (D * D + D);
}

int64_t ivl_llm_param_count(const ivl_llm_config *c) {
    int64_t D = c->hidden, H = c->heads, K = c->kv_heads, hd = c->head_dim;
    int64_t I = c->intermediate, V = c->vocab;
    int64_t layer = D * (H + 2 * K) * hd + H * hd * D + 3 * D * I + 2 * D;
    return layer * c->layers + 2 * V * D + D;
}
