// convert_check.c - see convert_check.h.
#include "weights/convert_check.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/check.h"

// The most tiles per image chat and caption accept (--max-tiles 1..40); the 1.5 models use
// 6 (the README), 12 (config.json) and 40 (the model card's largest setting).
#define IVL_CONVERT_MAX_TILES 40

typedef struct {
    const char *key;
    int value;
    int max;
    const char *usual;   // what the InternVL 1.5 checkpoints have
} bound;

// Bounds well above every InternVL 1.5 checkpoint (and any model in its family that fits a
// cluster), low enough that the converter's per-layer plan and the loader's buffers stay
// small and no size computation overflows.
static int check_bounds(const ivl_model_config *c) {
    const bound b[] = {
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
        {"min_dynamic_patch", c->min_dynamic_patch, IVL_CONVERT_MAX_TILES, "1"},
        {"max_dynamic_patch", c->max_dynamic_patch, IVL_CONVERT_MAX_TILES, "6, 12 or 40"},
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (b[i].value > b[i].max)
            return ivl_errorf("config.json: %s = %d is beyond what the engine can use: at most %d "
                              "(InternVL 1.5 checkpoints have %s)%s; fix config.json", b[i].key,
                              b[i].value, b[i].max, b[i].usual,
                              strstr(b[i].key, "dynamic_patch")
                                  ? " (chat and caption take at most 40 tiles, --max-tiles)" : "");
    return 0;
}

// The top-level model class. Absent (hand-made test configs) is accepted: the sub-configs
// are checked on their own.
static int check_architecture(const char *cfg_text) {
    cJSON *root = cJSON_Parse(cfg_text);
    const cJSON *a = root ? cJSON_GetObjectItemCaseSensitive(root, "architectures") : NULL;
    int rc = 0;
    if (a) {
        const cJSON *first = cJSON_IsArray(a) ? cJSON_GetArrayItem(a, 0) : NULL;
        if (!cJSON_IsString(first))
            rc = ivl_errorf("config.json: architectures is not a list of class names (expected "
                            "[\"InternVLChatModel\"])");
        else if (strcmp(first->valuestring, "InternVLChatModel") != 0)
            rc = ivl_errorf("config.json: architectures[0] '%.100s' is not InternVLChatModel: this "
                            "is not an InternVL 1.5 checkpoint (the engine runs "
                            "InternVL-Chat-V1-5 and Mini-InternVL-Chat-2B/4B-V1-5)",
                            first->valuestring);
    }
    cJSON_Delete(root);
    return rc;
}

static int check_tokenizer(const char *hf_dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.model", hf_dir);
    struct stat st;
    if (stat(path, &st) != 0)
        return ivl_errorf("%s: missing (%s); the engine needs it to encode prompts and decode "
                          "answers: copy tokenizer.model from the checkpoint's Hugging Face "
                          "repository into %s", path, strerror(errno), hf_dir);
    if (!S_ISREG(st.st_mode) || st.st_size == 0)
        return ivl_errorf("%s: not a regular non-empty file; the engine needs it (the "
                          "SentencePiece model of the checkpoint)", path);
    return 0;
}

int ivl_convert_check(const char *cfg_text, const ivl_model_config *cfg, const char *hf_dir) {
    if (check_architecture(cfg_text) || check_bounds(cfg) || check_tokenizer(hf_dir)) return -1;
    return 0;
}
