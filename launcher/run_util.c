// run_util.c - see run_util.h.
#include "launcher/run_util.h"
#include "core/check.h"
#include "weights/tensor_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static int lookup(const ivl_tokenizer *tok, const char *s, int32_t *out) {
    int id = ivl_tokenizer_token_to_id(tok, s);
    if (id < 0) return ivl_errorf("the tokenizer has no token %s (is this an InternVL tokenizer?)", s);
    *out = id;
    return 0;
}

int ivl_special_ids_resolve(const ivl_model_config *cfg, const ivl_tokenizer *tok,
                            ivl_special_ids *out) {
    const char *sep = cfg->template_kind == IVL_TEMPLATE_PHI3 ? "<|end|>" : "<|im_end|>";
    if (lookup(tok, "<IMG_CONTEXT>", &out->img_context) || lookup(tok, "<img>", &out->img_start) ||
        lookup(tok, "</img>", &out->img_end) || lookup(tok, sep, &out->stop))
        return -1;
    return 0;
}

int ivl_batch_inputs_read(const char *path, ivl_batch_inputs *in) {
    memset(in, 0, sizeof *in);
    if (ivl_h5_read_array(path, "input_ids", IVL_I64, 0, &in->ids_raw) != 0) return -1;
    ivl_tensor *ids = &in->ids_raw;
    if (ids->ndim == 1) *ids = ivl_tensor_reshape(ids, 2, (int64_t[]){1, ids->shape[0]});
    if (ids->ndim != 2 || ids->shape[1] < 1)
        return ivl_errorf("%s: input_ids must be [S] or [B, S]", path);
    const int64_t B = ids->shape[0], S = ids->shape[1];
    ivl_tensor mask = {0};
    int rc = ivl_h5_read_array(path, "attention_mask", IVL_I64, 1, &mask);
    if (rc < 0) return -1;
    if (rc == 0 && (mask.ndim != 2 || mask.shape[0] != B || mask.shape[1] != S))
        return ivl_errorf("%s: attention_mask must have the shape of input_ids [%lld, %lld]",
                          path, (long long)B, (long long)S);
    rc = ivl_h5_read_array(path, "pixel_values", IVL_F32, 1, &in->pixels);
    if (rc < 0) return -1;
    in->batch = (int)B;
    in->prompts = ivl_calloc((size_t)B, sizeof *in->prompts);
    in->ids = ivl_malloc((size_t)(B * S) * sizeof *in->ids);
    in->img_row = ivl_malloc((size_t)(B * S) * sizeof *in->img_row);
    int64_t r = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t start = r;
        for (int64_t s = 0; s < S; s++) {
            if (mask.data && ((int64_t *)mask.data)[b * S + s] == 0) continue;   // pad
            int64_t id = ((int64_t *)ids->data)[b * S + s];
            if (id < 0 || id > INT32_MAX)
                return ivl_errorf("%s: input_ids[%lld][%lld] = %lld is not a token id", path,
                                  (long long)b, (long long)s, (long long)id);
            in->ids[r++] = (int32_t)id;
        }
        in->prompts[b].ids = in->ids + start;
        in->prompts[b].n = r - start;
        if (r - start == 0) return ivl_errorf("%s: sequence %lld has no tokens", path, (long long)b);
        if (r - start > in->max_len) in->max_len = r - start;
    }
    ivl_tensor_free_host(&mask);
    return 0;
}

int ivl_batch_inputs_check(ivl_batch_inputs *in, const ivl_model_config *cfg,
                           int32_t img_context_id, int max_new) {
    int64_t n_img = 0, total = 0;
    for (int b = 0; b < in->batch; b++) total += in->prompts[b].n;
    for (int64_t i = 0; i < total; i++) {
        if (in->ids[i] >= cfg->llm.vocab)
            return ivl_errorf("token id %d is outside the vocabulary (%d)", in->ids[i], cfg->llm.vocab);
        in->img_row[i] = in->ids[i] == img_context_id ? n_img++ : -1;
    }
    for (int b = 0; b < in->batch; b++)
        in->prompts[b].img_row = in->pixels.data ? in->img_row + (in->prompts[b].ids - in->ids) : NULL;
    int64_t tiles = in->pixels.data ? in->pixels.shape[0] : 0;
    if (in->pixels.data &&
        (in->pixels.ndim != 4 || in->pixels.shape[1] != 3 ||
         in->pixels.shape[2] != cfg->vit.image_size || in->pixels.shape[3] != cfg->vit.image_size))
        return ivl_errorf("pixel_values must be [tiles, 3, %d, %d]", cfg->vit.image_size,
                          cfg->vit.image_size);
    if (n_img != tiles * cfg->proj.tokens_per_tile)
        return ivl_errorf("the prompts hold %lld <IMG_CONTEXT> tokens but %lld tiles give %lld "
                          "image embeddings (%d per tile); they must match",
                          (long long)n_img, (long long)tiles,
                          (long long)(tiles * cfg->proj.tokens_per_tile), cfg->proj.tokens_per_tile);
    if (in->max_len + max_new > cfg->llm.max_position && cfg->llm.rope_scaling != IVL_ROPE_DYNAMIC)
        return ivl_errorf("a prompt of %lld tokens + %d new tokens exceeds the model's context "
                          "of %d positions", (long long)in->max_len, max_new, cfg->llm.max_position);
    in->n_img_tokens = n_img;
    return 0;
}

void ivl_batch_inputs_free(ivl_batch_inputs *in) {
    ivl_tensor_free_host(&in->ids_raw);
    ivl_tensor_free_host(&in->pixels);
    free(in->prompts);
    free(in->ids);
    free(in->img_row);
    memset(in, 0, sizeof *in);
}

double ivl_peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;   // ru_maxrss is in KiB on Linux
}

int ivl_parse_int(const char *option, const char *text, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi)
        ivl_die(2, "%s '%s': expected an integer from %ld to %ld", option, text, lo, hi);
    return (int)v;
}

double ivl_parse_double(const char *option, const char *text, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi))
        ivl_die(2, "%s '%s': expected a number from %g to %g", option, text, lo, hi);
    return v;
}

ivl_parallel_opts ivl_parallel_opts_default(void) {
    ivl_parallel_opts o = {.tp = 1, .pp = 1, .vit_tp = 1};
    return o;
}

int ivl_layout_option(int c, const char *arg, ivl_parallel_opts *o) {
    switch (c) {
    case 1001: o->tp = ivl_parse_int("--tp", arg, 1, 4096); return 1;
    case 1002: o->pp = ivl_parse_int("--pp", arg, 1, 1024); return 1;
    case 1003: o->pp_layers = arg; return 1;
    case 1004: o->microbatches = ivl_parse_int("--microbatches", arg, 1, 4096); return 1;
    case 1005: o->vit_tp = ivl_parse_int("--vit-tp", arg, 1, 4096); return 1;
    case 1006: o->gpu_share = 1; return 1;
    }
    return 0;
}

int64_t ivl_parse_size(const char *option, const char *text) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    double mul = 1;
    if (end != text && *end) {
        switch (*end) {
        case 'k': case 'K': mul = 1024.0; break;
        case 'm': case 'M': mul = 1024.0 * 1024; break;
        case 'g': case 'G': mul = 1024.0 * 1024 * 1024; break;
        case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
        default: mul = 0;
        }
        end++;
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'b' || *end == 'B') end++;
    }
    if (errno || end == text || *end || mul == 0 || !(v > 0) || v * mul > 9e18)
        ivl_die(2, "%s '%s': expected a size with a unit, such as 512M or 20G", option, text);
    return (int64_t)(v * mul);
}

int ivl_kv_option(int c, const char *arg, ivl_kv_opts *o) {
    switch (c) {
    case 1021: o->kv_mem = ivl_parse_size("--kv-mem", arg); return 1;
    case 1022: o->block_size = ivl_parse_int("--kv-block", arg, 1, 4096); return 1;
    case 1023: o->no_prefix_reuse = 1; return 1;
    }
    return 0;
}
