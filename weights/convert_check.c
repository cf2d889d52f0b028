// convert_check.c - see convert_check.h.
#include "weights/convert_check.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/check.h"

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
    (void)cfg;   // its sizes and tile bounds are checked by ivl_model_config_parse already
    if (check_architecture(cfg_text) || check_tokenizer(hf_dir)) return -1;
    return 0;
}
