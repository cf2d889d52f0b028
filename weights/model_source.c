// model_source.c - see model_source.h.
#include "weights/model_source.h"
#include "core/check.h"
#include "weights/name_map.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

static int reader_read(void *ctx, const char *name, ivl_read_kind kind, int64_t start,
                       int64_t count, ivl_dtype dt, ivl_tensor *out) {
    ivl_model_file *mf = ctx;
    switch (kind) {
    case IVL_READ_ALL: return ivl_model_file_read(mf, name, dt, out);
    case IVL_READ_ROWS: return ivl_model_file_read_rows(mf, name, start, count, dt, out);
    case IVL_READ_COLS: return ivl_model_file_read_cols(mf, name, start, count, dt, out);
    }
    return ivl_errorf("bad read kind %d", (int)kind);
}

static int reader_quant_bits(void *ctx, const char *name) {
    ivl_quant_info qi;
    if (ivl_model_file_quant_info(ctx, name, &qi)) return -1;
    return qi.bits;
}

static int reader_read_quant(void *ctx, const char *name, ivl_read_kind kind, int64_t start,
                             int64_t count, ivl_qweight *out) {
    int axis = kind == IVL_READ_ALL ? -1 : kind == IVL_READ_ROWS ? 0 : 1;
    return ivl_model_file_read_quant(ctx, name, axis, start, count, out);
}

static int reader_has(void *ctx, const char *name) { return ivl_model_file_has(ctx, name); }

static int reader_shape(void *ctx, const char *name, int *ndim, int64_t *shape) {
    ivl_dtype st;
    return ivl_model_file_shape(ctx, name, ndim, shape, &st);
}

// Every stored tensor the config names must have the config's full shape, whatever share a
// rank later reads: a hand-edited or mismatched tensor is refused here, with its name, instead
// of running on (too many rows) or dying inside the model (too few). Tensors that are absent
// are left to the loader (a text-only copy of a model has no vision tensors).
static int check_shapes(ivl_model_source *src) {
    ivl_plan plan = {0};
    ivl_plan_build(&src->cfg, &plan);
    int rc = 0;
    for (int i = 0; i < plan.n && rc == 0; i++) {
        const ivl_plan_entry *e = &plan.e[i];
        if (!ivl_model_file_has(src->mf, e->name)) continue;
        int nd = 0;
        int64_t sh[IVL_MAX_DIMS] = {0};
        ivl_dtype st;
        if (ivl_model_file_shape(src->mf, e->name, &nd, sh, &st) != 0) {
            rc = -1;
            break;
        }
        int same = nd == e->ndim;
        for (int k = 0; same && k < nd; k++) same = sh[k] == e->shape[k];
        if (!same) {
            char want[96] = "", got[96] = "";
            for (int k = 0, o = 0; k < e->ndim; k++)
                o += snprintf(want + o, sizeof want - (size_t)o, "%s%lld", k ? ", " : "", (long long)e->shape[k]);
            for (int k = 0, o = 0; k < nd && k < IVL_MAX_DIMS; k++)
                o += snprintf(got + o, sizeof got - (size_t)o, "%s%lld", k ? ", " : "", (long long)sh[k]);
            rc = ivl_errorf("%s: tensor %s has shape [%s], but its config needs [%s]: the file "
                            "was changed after conversion or does not belong to this config; "
                            "convert the checkpoint again", ivl_model_file_path(src->mf),
                            e->name, got, want);
        }
    }
    ivl_plan_free(&plan);
    return rc;
}

int ivl_model_source_open(const char *path, ivl_model_source *src) {
    memset(src, 0, sizeof *src);
    if (ivl_model_file_open(path, &src->mf) != 0) return -1;
    if (ivl_model_file_config(src->mf, &src->cfg) != 0 || check_shapes(src) != 0) {
        ivl_model_file_close(src->mf);
        src->mf = NULL;
        return -1;
    }
    src->reader.ctx = src->mf;
    src->reader.read = reader_read;
    src->reader.has = reader_has;
    src->reader.shape = reader_shape;
    src->reader.quant_bits = reader_quant_bits;
    src->reader.read_quant = reader_read_quant;
    return 0;
}

void ivl_model_source_close(ivl_model_source *src) {
    if (src->mf) ivl_model_file_close(src->mf);
    src->mf = NULL;
}

int ivl_model_source_tokenizer(ivl_model_source *src, ivl_tokenizer **out) {
    void *blob[4] = {0};
    size_t size[4] = {0};
    static const char *files[4] = {"tokenizer.model", "tokenizer_config.json",
                                   "added_tokens.json", "special_tokens_map.json"};
    if (ivl_model_file_read_blob(src->mf, "tokenizer", files[0], &blob[0], &size[0]) != 0)
        return ivl_errorf("%s: no tokenizer.model in the model file (re-run internvl convert "
                          "on a folder that has it)", ivl_model_file_path(src->mf));
    for (int i = 1; i < 4; i++)
        if (ivl_model_file_read_blob(src->mf, "tokenizer", files[i], &blob[i], &size[i]) != 0)
            blob[i] = NULL;   // optional files
    ivl_tokenizer_blobs b = {blob[0], size[0], blob[1], blob[2], blob[3],
                             ivl_model_file_path(src->mf)};
    int rc = ivl_tokenizer_load(&b, out);
    for (int i = 0; i < 4; i++) free(blob[i]);
    // Every id the tokenizer can produce must have an embedding row, or the first prompt
    // would end the job inside the model.
    if (rc == 0 && ivl_tokenizer_vocab_size(*out) > src->cfg.llm.vocab) {
        int n = ivl_tokenizer_vocab_size(*out);
        ivl_tokenizer_free(*out);
        *out = NULL;
        return ivl_errorf("%s: the tokenizer has %d tokens but the language model's vocabulary "
                          "has %d rows: the tokenizer files do not belong to this model",
                          ivl_model_file_path(src->mf), n, src->cfg.llm.vocab);
    }
    return rc;
}
