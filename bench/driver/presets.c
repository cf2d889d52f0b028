// presets.c - see presets.h. The JSON holds the keys InternVLChatConfig, InternVisionConfig,
// InternLM2Config and Phi3Config carry for the shapes; values from spec section 1 (the real
// models) and tests/gen/families.py (test sizes, vocabularies rounded to the families').
#include "bench/driver/presets.h"
#include "core/check.h"

#include <stdio.h>
#include <string.h>

// Phi-3-mini-128k su factors (the Mini-4B config.json, tests/weights/configs). They change the
// RoPE tables only, not the cost, but keep the preset a valid config of the real model.
#define PHI3_SHORT "1.1,1.1,1.1,1.3,1.35,1.35,1.4,1.55,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2.05," \
    "2.05,2.05,2.05,2.05,2.05,2.1,2.1,2.15,2.25,2.25,2.25,2.25,2.25,2.4,2.45,2.5,2.7,2.7,2.75," \
    "2.8,2.9,3.05"
#define PHI3_LONG "1.07,1.12,1.15,1.42,1.57,1.8,2.13,2.13,3.01,5.91,6.95,9.07,9.93,10.71,11.13," \
    "14.61,15.41,19.81,37.28,38.28,38.6,40.12,46.2,50.94,53.66,54.9374,56.8974,57.2874,"     \
    "59.9874,60.8674,60.8874,61.7174,62.9174,62.9574,63.4174,63.8174,63.8374,63.8974,"       \
    "63.9374,64.0674,64.1143,64.1244,64.1544,64.1944,64.2444,64.5744,64.69,64.76"
// Tiny Phi-3 family: head_dim 16 -> 8 factors each.
#define TINY_SHORT "1,1.1,1.2,1.3,1.5,1.8,2,2.5"
#define TINY_LONG "1,1.5,2,4,8,16,24,32"

#define VIT_300M(C, L, H, I) \
    "\"vision_config\":{\"hidden_size\":" #C ",\"num_hidden_layers\":" #L                   \
    ",\"num_attention_heads\":" #H ",\"intermediate_size\":" #I ",\"image_size\":448,"       \
    "\"patch_size\":14,\"norm_type\":\"layer_norm\",\"layer_norm_eps\":1e-6,"               \
    "\"qkv_bias\":true,\"qk_normalization\":false}"
#define VIT_6B(C, L, H, I) \
    "\"vision_config\":{\"hidden_size\":" #C ",\"num_hidden_layers\":" #L                   \
    ",\"num_attention_heads\":" #H ",\"intermediate_size\":" #I ",\"image_size\":448,"       \
    "\"patch_size\":14,\"norm_type\":\"rms_norm\",\"layer_norm_eps\":1e-6,"                 \
    "\"qkv_bias\":false,\"qk_normalization\":true}"
#define INTERNLM2(D, L, H, K, I, V, MAXPOS, FACTOR) \
    "\"llm_config\":{\"architectures\":[\"InternLM2ForCausalLM\"],\"hidden_size\":" #D        \
    ",\"num_hidden_layers\":" #L ",\"num_attention_heads\":" #H ",\"num_key_value_heads\":" #K \
    ",\"intermediate_size\":" #I ",\"vocab_size\":" #V ",\"max_position_embeddings\":" #MAXPOS \
    ",\"rms_norm_eps\":1e-5,\"rope_theta\":1000000,\"rope_scaling\":{\"type\":\"dynamic\","  \
    "\"factor\":" #FACTOR "},\"bos_token_id\":1,\"eos_token_id\":2,\"pad_token_id\":2,"       \
    "\"bias\":false,\"tie_word_embeddings\":false}"
#define PHI3(D, L, H, K, I, V, MAXPOS, ORIG, SHORT, LONG) \
    "\"llm_config\":{\"architectures\":[\"Phi3ForCausalLM\"],\"hidden_size\":" #D             \
    ",\"num_hidden_layers\":" #L ",\"num_attention_heads\":" #H ",\"num_key_value_heads\":" #K \
    ",\"intermediate_size\":" #I ",\"vocab_size\":" #V ",\"max_position_embeddings\":" #MAXPOS \
    ",\"original_max_position_embeddings\":" #ORIG ",\"rms_norm_eps\":1e-5,"                \
    "\"rope_theta\":10000.0,\"rope_scaling\":{\"type\":\"su\",\"short_factor\":[" SHORT      \
    "],\"long_factor\":[" LONG "]},\"bos_token_id\":1,\"eos_token_id\":32000,"               \
    "\"pad_token_id\":32000,\"bias\":false,\"tie_word_embeddings\":false}"
#define TOP(NAME, TEMPLATE) \
    "\"_name_or_path\":\"" NAME "\",\"force_image_size\":448,\"downsample_ratio\":0.5,"      \
    "\"ps_version\":\"v2\",\"template\":\"" TEMPLATE "\",\"select_layer\":-1,"               \
    "\"min_dynamic_patch\":1,\"max_dynamic_patch\":12,\"use_thumbnail\":true,"               \
    "\"dynamic_image_size\":true"

typedef struct {
    const char *name;
    const char *json;
} preset;

static const preset k_presets[] = {
    // InternVL-Chat-V1-5 (26B): InternViT-6B-448px-V1-5 + InternLM2-chat-20B.
    {"internvl-chat-v1-5",
     "{" TOP("OpenGVLab/InternVL-Chat-V1-5", "internlm2-chat") ","
     VIT_6B(3200, 45, 25, 12800) "," INTERNLM2(6144, 48, 48, 8, 16384, 92553, 32768, 3.0) "}"},
    // Mini-InternVL-Chat-2B-V1-5: InternViT-300M-448px + InternLM2-chat-1.8B.
    {"mini-2b",
     "{" TOP("OpenGVLab/Mini-InternVL-Chat-2B-V1-5", "internlm2-chat") ","
     VIT_300M(1024, 24, 16, 4096) "," INTERNLM2(2048, 24, 16, 8, 8192, 92553, 32768, 2.0) "}"},
    // Mini-InternVL-Chat-4B-V1-5: InternViT-300M-448px + Phi-3-mini-128k-instruct.
    {"mini-4b",
     "{" TOP("OpenGVLab/Mini-InternVL-Chat-4B-V1-5", "phi3-chat") ","
     VIT_300M(1024, 24, 16, 4096) ","
     PHI3(3072, 32, 32, 32, 8192, 32020, 131072, 4096, PHI3_SHORT, PHI3_LONG) "}"},
    // Test sizes (tests/gen/families.py): real layouts, tiny widths; vocab 1024.
    {"tiny-mini2b",
     "{" TOP("bench/tiny-mini2b", "internlm2-chat") "," VIT_300M(64, 2, 4, 128) ","
     INTERNLM2(64, 4, 4, 2, 160, 1024, 32768, 2.0) "}"},
    {"tiny-mini4b",
     "{" TOP("bench/tiny-mini4b", "phi3-chat") "," VIT_300M(64, 2, 4, 128) ","
     PHI3(64, 4, 4, 4, 160, 1024, 16384, 512, TINY_SHORT, TINY_LONG) "}"},
    {"tiny-v15",
     "{" TOP("bench/tiny-v15", "internlm2-chat") "," VIT_6B(80, 2, 5, 160) ","
     INTERNLM2(96, 4, 12, 4, 192, 1024, 640, 3.0) "}"},
    // The README demo size: still seconds, big enough that GEMMs dominate.
    {"demo",
     "{" TOP("bench/demo", "internlm2-chat") "," VIT_300M(128, 4, 4, 384) ","
     INTERNLM2(256, 4, 8, 4, 640, 4096, 32768, 2.0) "}"},
};

const char *ivl_bench_preset_json(const char *name) {
    for (size_t i = 0; i < sizeof k_presets / sizeof *k_presets; i++)
        if (!strcmp(k_presets[i].name, name)) return k_presets[i].json;
    // "tiny" alone is the smallest family.
    if (!strcmp(name, "tiny")) return k_presets[3].json;
    return NULL;
}

const char *ivl_bench_preset_names(void) {
    static char buf[512];
    if (!buf[0]) {
        size_t off = 0;
        for (size_t i = 0; i < sizeof k_presets / sizeof *k_presets; i++)
            off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? ", " : "",
                                    k_presets[i].name);
    }
    return buf;
}

int ivl_bench_preset_config(const char *name, ivl_model_config *cfg) {
    const char *json = ivl_bench_preset_json(name);
    if (!json) return ivl_errorf("unknown preset '%s' (known: %s, tiny)", name, ivl_bench_preset_names());
    if (ivl_model_config_parse(json, cfg) != 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", ivl_last_error());
        return ivl_errorf("preset %s: %s", name, why);
    }
    return 0;
}
