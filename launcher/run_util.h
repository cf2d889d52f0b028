// run_util.h - pieces shared by the subcommands that run the model: special token ids,
// the batch inputs of `internvl forward` (IN.h5), memory reporting.
#ifndef IVL_LAUNCHER_RUN_UTIL_H
#define IVL_LAUNCHER_RUN_UTIL_H

#include <stdint.h>

#include "core/models/config.h"
#include "core/models/generate.h"
#include "core/text/tokenizer.h"

typedef struct {
    int32_t img_context;   // <IMG_CONTEXT>
    int32_t img_start;     // <img>
    int32_t img_end;       // </img>
    int32_t stop;          // the template separator: <|im_end|> (internlm2-chat), <|end|> (phi3-chat)
} ivl_special_ids;

// Looks every special token up in the tokenizer files (nothing hard-coded).
int ivl_special_ids_resolve(const ivl_model_config *cfg, const ivl_tokenizer *tok,
                            ivl_special_ids *out);

// IN.h5 of `internvl forward`, turned into per-sequence prompts without padding.
typedef struct {
    int batch;
    int64_t max_len;          // longest real prompt
    ivl_tensor ids_raw;       // I64 [B, S]
    ivl_tensor pixels;        // F32 [tiles, 3, S, S] or data == NULL
    ivl_gen_prompt *prompts;  // [B]
    int32_t *ids;             // all real tokens, concatenated
    int64_t *img_row;         // per real token: image row or -1
    int64_t n_img_tokens;
} ivl_batch_inputs;

int ivl_batch_inputs_read(const char *path, ivl_batch_inputs *in);
// Before any compute: image-token count vs tiles, ids in range, context long enough.
int ivl_batch_inputs_check(ivl_batch_inputs *in, const ivl_model_config *cfg,
                           int32_t img_context_id, int max_new);
void ivl_batch_inputs_free(ivl_batch_inputs *in);

double ivl_peak_rss_mib(void);

#endif
