// model_write.c - see model_write.h. The layout is the converter's (weights/convert.c): the
// same groups, attributes and chunking, one tensor in memory at a time.
#include "weights/model_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/check.h"
#include "core/log.h"
#include "core/models/config.h"
#include "weights/convert.h"
#include "weights/h5_util.h"
#include "weights/name_map.h"
#include "weights/quantize.h"

#define CHUNK_TARGET_BYTES (1u << 20)   // as the converter: blocks of whole rows of ~1 MiB

static int tensor(hid_t g, const ivl_plan_entry *e, const ivl_tensor *t) {
    int rc = 0;
    hid_t fs = -1, dcpl = -1, d = -1;
    hsize_t dims[IVL_MAX_DIMS], chunk[IVL_MAX_DIMS], row_elems = 1;
    for (int i = 0; i < e->ndim; i++) {
        dims[i] = chunk[i] = (hsize_t)e->shape[i];
        if (i) row_elems *= dims[i];
    }
    H5_CHECK(fs = H5Screate_simple(e->ndim, dims, NULL));
    H5_CHECK(dcpl = H5Pcreate(H5P_DATASET_CREATE));
    if (e->ndim >= 2 && dims[0] && row_elems) {
        hsize_t rows = CHUNK_TARGET_BYTES / (row_elems * 2);
        chunk[0] = rows < 1 ? 1 : rows > dims[0] ? dims[0] : rows;
        H5_CHECK(H5Pset_chunk(dcpl, e->ndim, chunk));
    }
    H5_TRY(d = H5Dcreate2(g, e->name, ivl_h5_type_bf16(), fs, H5P_DEFAULT, dcpl, H5P_DEFAULT),
           "tensor %s", e->name);
    if (ivl_h5_write_str_attr(d, "hf_name", e->hf_name) || ivl_h5_write_i64_attr(d, "hf_row0", 0)) {
        rc = ivl_errorf("tensor %s: %s", e->name, ivl_last_error());
        goto fail;
    }
    if (ivl_tensor_numel(t))
        H5_TRY(H5Dwrite(d, ivl_h5_type_bf16(), H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data),
               "writing tensor %s", e->name);
fail:
    if (d >= 0 && H5Dclose(d) < 0 && !rc) rc = ivl_errorf("closing tensor %s", e->name);
    H5Pclose(dcpl);
    H5Sclose(fs);
    return rc;
}

static const char *k_tok_files[] = {"tokenizer.model", "tokenizer_config.json",
                                    "added_tokens.json", "special_tokens_map.json"};

static int write_all(hid_t file, const ivl_model_write_opts *o, const ivl_model_config *cfg,
                     const ivl_plan *plan) {
    int rc = 0;
    hid_t g = -1;
    char path[4200];
    if (ivl_h5_write_str_attr(file, "format", IVL_MODEL_FORMAT) ||
        ivl_h5_write_i64_attr(file, "format_version", IVL_MODEL_FORMAT_VERSION) ||
        ivl_h5_write_str_attr(file, "model_name", cfg->name[0] ? cfg->name : "random") ||
        ivl_h5_write_str_attr(file, "source", o->source ? o->source : "weight reader"))
        return -1;
    H5_TRY(g = H5Gcreate2(file, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group /config");
    if ((rc = ivl_h5_write_bytes(g, "config.json", o->config_json, strlen(o->config_json)))) goto fail;
    H5Gclose(g);
    H5_TRY(g = H5Gcreate2(file, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group /tokenizer");
    for (size_t i = 0; i < sizeof k_tok_files / sizeof *k_tok_files; i++) {
        snprintf(path, sizeof path, "%s/%s", o->tok_dir, k_tok_files[i]);
        if (access(path, F_OK) != 0) {
            if (i == 0) {
                rc = ivl_errorf("%s: missing (the tokenizer folder must hold tokenizer.model)", path);
                goto fail;
            }
            continue;
        }
        char *data;
        size_t n;
        if ((rc = ivl_read_file(path, &data, &n))) goto fail;
        rc = ivl_h5_write_bytes(g, k_tok_files[i], data, n);
        free(data);
        if (rc) goto fail;
    }
    H5Gclose(g);
    H5_TRY(g = H5Gcreate2(file, "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group /tensors");
    ivl_quant_opts qo = {o->quantize_bits, o->group_size, o->quantize_vision};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double bytes = 0;
    for (int i = 0; i < plan->n; i++) {
        const ivl_plan_entry *e = &plan->e[i];
        ivl_tensor t;
        if (o->values->read(o->values->ctx, e->name, IVL_READ_ALL, 0, 0, IVL_BF16, &t) != 0) {
            rc = ivl_errorf("tensor %s: %s", e->name, ivl_last_error());
            goto fail;
        }
        int same = t.ndim == e->ndim;
        for (int k = 0; same && k < e->ndim; k++) same = t.shape[k] == e->shape[k];
        if (!same) {
            char a[96];
            rc = ivl_errorf("tensor %s: the reader gave %s, the config needs %d dims", e->name,
                            ivl_tensor_shape_str(&t, a, sizeof a), e->ndim);
        } else if (ivl_quant_selects(&qo, e->name)) {
            const int64_t N = e->shape[0], K = e->shape[1];
            float *w = ivl_malloc((size_t)(N * K) * sizeof(float));
            ivl_convert(w, IVL_F32, t.data, IVL_BF16, (size_t)(N * K));
            ivl_qweight qw;
            ivl_quant_rtn(w, N, K, qo.bits, ivl_quant_group(&qo, K), &qw);
            free(w);
            rc = ivl_quant_write(g, e->name, e->hf_name, 0, &qw, "rtn", IVL_F32);
            ivl_qweight_free_host(&qw);
        } else {
            rc = tensor(g, e, &t);
        }
        bytes += (double)ivl_tensor_nbytes(&t);
        ivl_tensor_free_host(&t);
        if (rc) goto fail;
        if (o->progress) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            fprintf(stderr, "\rwriting %d/%d tensors, %.1f GB, %.0f s", i + 1, plan->n, bytes / 1e9,
                    (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
            if (i + 1 == plan->n) fputc('\n', stderr);
        }
    }
fail:
    if (g >= 0) H5Gclose(g);
    return rc;
}

int ivl_model_file_write(const ivl_model_write_opts *o) {
    ivl_model_config cfg;
    if (ivl_model_config_parse(o->config_json, &cfg) != 0) return -1;
    if (strlen(o->out_path) > 4000) return ivl_errorf("path too long: %.80s...", o->out_path);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", o->out_path, (long)getpid());
    ivl_h5_init();
    ivl_plan plan = {0};
    ivl_plan_build(&cfg, &plan);
    int rc = 0;
    hid_t fapl = -1, file = -1;
    ivl_quant_opts qo = {o->quantize_bits, o->group_size, o->quantize_vision};
    if (ivl_quant_check_plan(&qo, &plan)) {
        ivl_plan_free(&plan);
        return -1;
    }
    H5_CHECK(fapl = H5Pcreate(H5P_FILE_ACCESS));
    H5_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST));
    H5_CHECK(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG));
    H5_TRY(file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl), "cannot create %s", tmp);
    ivl_set_cleanup_path(tmp);
    if ((rc = write_all(file, o, &cfg, &plan))) {
        rc = ivl_errorf("%s: %s", tmp, ivl_last_error());
        goto fail;
    }
    herr_t cr = H5Fclose(file);
    file = -1;
    H5_TRY(cr, "closing %s", tmp);
    if (rename(tmp, o->out_path)) {
        rc = ivl_errorf("cannot rename %s to %s: %s", tmp, o->out_path, strerror(errno));
        goto fail;
    }
    ivl_set_cleanup_path(NULL);
    LOG_INFO("wrote %s: %d tensors (%s)", o->out_path, plan.n, o->source ? o->source : "");
fail:
    if (file >= 0) H5Fclose(file);
    if (fapl >= 0) H5Pclose(fapl);
    if (rc) {
        unlink(tmp);
        ivl_set_cleanup_path(NULL);
    }
    ivl_plan_free(&plan);
    return rc;
}
