// load_util.c - see load_util.h.
#include "core/models/load_util.h"
#include "core/check.h"

#include <stdio.h>
#include <stdlib.h>

int ivl_load_tensor(ivl_backend *be, const ivl_weight_reader *r, const char *name,
                    ivl_read_kind kind, int64_t start, int64_t count, int64_t rows,
                    int64_t cols, ivl_tensor *out) {
    ivl_tensor host = {0};
    // Read in f32 for the CPU backend and bf16/f16 for a device backend: the conversion to
    // be->dtype then happens once, in upload.
    ivl_dtype read_dt = be->dtype == IVL_F32 ? IVL_F32 : be->dtype;
    if (r->read(r->ctx, name, kind, start, count, read_dt, &host) != 0) return -1;
    if (ivl_tensor_numel(&host) != rows * cols) {
        char buf[96];
        int rc = ivl_errorf("tensor %s has shape %s, expected %lld x %lld elements", name,
                            ivl_tensor_shape_str(&host, buf, sizeof buf), (long long)rows,
                            (long long)cols);
        ivl_tensor_free_host(&host);
        return rc;
    }
    ivl_tensor host2d = ivl_tensor_view_2d(&host, rows, cols);
    *out = ivl_backend_from_host(be, &host2d);
    ivl_tensor_free_host(&host);
    return 0;
}

void ivl_free_tensor(ivl_backend *be, ivl_tensor *t) {
    if (t && t->data) be->free(be, t);
    if (t) t->data = NULL;
}

int ivl_load_weight(ivl_backend *be, const ivl_weight_reader *r, const char *name,
                    ivl_read_kind kind, int64_t start, int64_t count, int64_t rows,
                    int64_t cols, ivl_tensor *out) {
    int bits = r->quant_bits ? r->quant_bits(r->ctx, name) : 0;
    if (bits < 0) return -1;
    if (bits == 0) return ivl_load_tensor(be, r, name, kind, start, count, rows, cols, out);
    if (!be->upload_quant)
        return ivl_errorf("tensor %s is quantized (int%d) and the %s backend has no quantized "
                          "matmul", name, bits, be->name);
    ivl_qweight q;
    if (r->read_quant(r->ctx, name, kind, start, count, &q) != 0) return -1;
    int rc = 0;
    if (q.rows != rows || q.cols != cols)
        rc = ivl_errorf("quantized tensor %s: read [%lld, %lld], expected [%lld, %lld]", name,
                        (long long)q.rows, (long long)q.cols, (long long)rows, (long long)cols);
    else if (be->upload_quant(be, out, &q) != 0)
        rc = ivl_errorf("tensor %s: %s", name, ivl_last_error());
    ivl_qweight_free_host(&q);
    return rc;
}
