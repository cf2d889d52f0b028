// fuzz_config.c - config.json text -> ivl_model_config_parse, then what callers do with a
// parsed config: parameter counts (int64 products of untrusted sizes), the chat template and
// the tile candidate list of its dynamic-patch bounds.
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/image/image.h"
#include "core/models/config.h"
#include "core/text/chat.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_common();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    ivl_model_config *cfg = calloc(1, sizeof *cfg);
    if (ivl_model_config_parse(text, cfg) == 0) {
        volatile int64_t n = ivl_vit_param_count(&cfg->vit) +
                             ivl_projector_param_count(&cfg->proj) +
                             ivl_llm_param_count(&cfg->llm);
        (void)n;
        ivl_chat_template_find(cfg->template_name);
        ivl_tile_ratio r[64];
        ivl_tile_candidates(cfg->min_dynamic_patch, cfg->max_dynamic_patch, r, 64);
        // What the parser promises: names are terminated, the model shape is positive.
        if (!memchr(cfg->name, 0, sizeof cfg->name) || !memchr(cfg->system_message, 0,
                                                               sizeof cfg->system_message))
            __builtin_trap();
        if (cfg->vit.grid <= 0 || cfg->llm.heads <= 0 || cfg->llm.head_dim <= 0) __builtin_trap();
    } else if (!ivl_last_error()[0]) {
        __builtin_trap();   // a failure must say why
    }
    free(cfg);
    free(text);
    return 0;
}
