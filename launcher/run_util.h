// run_util.h - pieces shared by the subcommands that run the model: special token ids,
// the batch inputs of `internvl forward` (IN.h5), memory reporting.
#ifndef IVL_LAUNCHER_RUN_UTIL_H
#define IVL_LAUNCHER_RUN_UTIL_H

#include <stdint.h>

#include "core/models/config.h"
#include "core/models/generate.h"
#include "parallel/generate.h"
#include "parallel/session.h"
#include "core/text/tokenizer.h"
#include "parallel/dist.h"

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

// Limits checked at the door (docs/limits.md).
#define IVL_MAX_NEW_TOKENS 65536

// An integer option in [lo, hi]; ends the job with a message naming the option otherwise.
int ivl_parse_int(const char *option, const char *text, long lo, long hi);
double ivl_parse_double(const char *option, const char *text, double lo, double hi);

// The layout options every model-running subcommand takes (--tp --pp --pp-layers
// --microbatches --vit-tp --gpu-share): add IVL_LAYOUT_OPTIONS to the getopt_long table, IVL_LAYOUT_USAGE
// to the usage text, and call ivl_layout_option(c, optarg, &opts) first in the switch.
#define IVL_LAYOUT_OPTIONS                                                               \
    {"tp", 1, 0, 1001}, {"pp", 1, 0, 1002}, {"pp-layers", 1, 0, 1003},                 \
        {"microbatches", 1, 0, 1004}, {"vit-tp", 1, 0, 1005}, { "gpu-share", 0, 0, 1006 }
#define IVL_LAYOUT_USAGE                                                                 \
    "  --tp T --pp P        tensor x pipeline parallel layout, world = T x P (default 1 x 1)\n" \
    "  --pp-layers A,B,..   LLM layers per pipeline stage (default: even split)\n"         \
    "  --microbatches M     pipeline micro-batches per step (default: P)\n"                \
    "  --vit-tp V           ranks per ViT (default 1: every rank holds it, tiles sharded)\n"  \
    "  --gpu-share          let several ranks use one GPU (tests, small models; without it a\n" \
    "                       node with more ranks than visible GPUs is refused)\n"
ivl_parallel_opts ivl_parallel_opts_default(void);
// 1 if c was a layout option (and stored it), 0 otherwise.
int ivl_layout_option(int c, const char *arg, ivl_parallel_opts *o);

// A size with a unit: 512M, 20G, 1.5G, 64K, or plain bytes. Ends the job with a message
// naming the option otherwise.
int64_t ivl_parse_size(const char *option, const char *text);

// The paged KV cache's options (--kv-mem --kv-block --no-prefix-cache), as the layout's.
#define IVL_KV_OPTIONS \
    {"kv-mem", 1, 0, 1021}, {"kv-block", 1, 0, 1022}, { "no-prefix-cache", 0, 0, 1023 }
#define IVL_KV_USAGE                                                                        \
    "  --kv-mem SIZE        KV cache of each rank, with a unit (512M, 20G); default: a share\n" \
    "                       of the memory left after the weights (GPU 80%% of the free memory,\n" \
    "                       CPU half of the rank's share of the available RAM)\n"             \
    "  --kv-block N         positions per KV block (default 16)\n"                          \
    "  --no-prefix-cache    never share KV blocks of identical prefixes between requests\n"
// 1 if c was a KV option (and stored it), 0 otherwise.
int ivl_kv_option(int c, const char *arg, ivl_kv_opts *o);

#endif
