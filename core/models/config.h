// config.h - one config struct per sub-model, filled from the Hugging Face config.json
// (InternVLChatConfig with vision_config and llm_config). Every value the code depends on is
// read from the file; the comments give the real models' values (spec sections 1.2, 1.3).
#ifndef IVL_MODELS_CONFIG_H
#define IVL_MODELS_CONFIG_H

#include <stdint.h>

typedef enum { IVL_NORM_RMS = 0, IVL_NORM_LAYER = 1 } ivl_norm_type;

typedef struct {
    int hidden;            // C: 3200 (6B) / 1024 (300M)
    int layers;            // 45 / 24
    int heads;             // 25 / 16
    int head_dim;          // hidden / heads: 128 / 64
    int intermediate;      // 12800 / 4096
    int image_size;        // 448
    int patch_size;        // 14 -> grid 32, 1024 patches (+CLS = 1025 tokens)
    int grid;              // image_size / patch_size
    ivl_norm_type norm;    // RMS (6B) / LayerNorm (300M)
    float norm_eps;        // 1e-6
    int qkv_bias;          // 0 (6B) / 1 (300M)
    int qk_norm;           // 1 (6B): RMSNorm of q and k over the full width, eps norm_eps
} ivl_vit_config;

typedef struct {
    int in_dim;            // 4C after pixel shuffle: 12800 / 4096
    int out_dim;           // LLM hidden D
    float downsample;      // 0.5
    int ps_version;        // 2 (1 = legacy transposed order)
    int tokens_per_tile;   // (grid * downsample)^2 = 256
    float ln_eps;          // 1e-5 (PyTorch LayerNorm default)
} ivl_projector_config;

typedef enum { IVL_LLM_INTERNLM2 = 0, IVL_LLM_PHI3 = 1 } ivl_llm_arch;
typedef enum { IVL_ROPE_NONE = 0, IVL_ROPE_DYNAMIC = 1, IVL_ROPE_SU = 2 } ivl_rope_scaling;

#define IVL_MAX_ROPE_FACTORS 256

typedef struct {
    ivl_llm_arch arch;     // from llm_config.architectures[0]
    int hidden;            // D: 6144 / 2048 / 3072
    int layers;            // 48 / 24 / 32
    int heads;             // H: 48 / 16 / 32
    int kv_heads;          // K: 8 / 8 / 32
    int head_dim;          // D / H: 128 / 128 / 96
    int intermediate;      // I: 16384 / 8192 / 8192
    int vocab;             // V: from the embedding shape in the checkpoint (92553 / 32020?)
    float rms_eps;         // 1e-5
    double rope_theta;     // 1e6 / 1e6 / 1e4
    int max_position;      // max_position_embeddings: 32768 / 32768 / 131072
    ivl_rope_scaling rope_scaling;
    double rope_factor;    // dynamic NTK factor: 3.0 / 2.0
    int original_max_position;   // Phi-3 su: 4096
    int n_rope_factors;          // head_dim / 2 for su
    double short_factor[IVL_MAX_ROPE_FACTORS];
    double long_factor[IVL_MAX_ROPE_FACTORS];
    int bos_id, eos_id, pad_id;  // from llm_config (the chat stop token comes from the template)
} ivl_llm_config;

typedef enum { IVL_TEMPLATE_INTERNLM2 = 0, IVL_TEMPLATE_PHI3 = 1 } ivl_template_kind;

typedef struct {
    char name[128];              // _name_or_path or a derived name
    ivl_vit_config vit;
    ivl_projector_config proj;
    ivl_llm_config llm;
    ivl_template_kind template_kind;   // from "template": internlm2-chat / phi3-chat
    char template_name[64];
    int select_layer;            // -1
    int min_dynamic_patch;       // 1
    int max_dynamic_patch;       // 12
    int use_thumbnail;           // 1
    int dynamic_image_size;      // 1
    char system_message[1024];   // config's system_message when present, else empty
} ivl_model_config;

// Parses config.json text. Returns 0, or -1 with ivl_last_error() naming the missing or bad
// key (e.g. "config.json: llm_config.num_key_value_heads missing") or "unsupported
// architecture X". vocab is taken from llm_config.vocab_size here; loaders override it from
// the embedding shape.
int ivl_model_config_parse(const char *json_text, ivl_model_config *cfg);

// Parameter counts per part (spec 10), for `internvl info` and FLOP accounting.
int64_t ivl_vit_param_count(const ivl_vit_config *c);
int64_t ivl_projector_param_count(const ivl_projector_config *c);
int64_t ivl_llm_param_count(const ivl_llm_config *c);

#endif
