// quantize.c - see quantize.h.
#include "weights/quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "weights/h5_util.h"

#define CHUNK_TARGET_BYTES (1u << 20)   // as the converter: blocks of whole rows of ~1 MiB

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int ivl_quant_selects(const ivl_quant_opts *q, const char *n) {
    if (!q || !q->bits) return 0;
    if (!strncmp(n, "llm.layers.", 11)) {
        static const char *lin[] = {".q", ".k", ".v", ".o", ".gate", ".up", ".down"};
        for (size_t i = 0; i < sizeof lin / sizeof *lin; i++)
            if (ends_with(n, lin[i])) return 1;
        return 0;
    }
    if (!strcmp(n, "llm.lm_head")) return 1;
    if (!q->vision) return 0;
    if (!strcmp(n, "mlp1.1.weight") || !strcmp(n, "mlp1.3.weight")) return 1;
    if (!strncmp(n, "vision.layers.", 14)) {
        static const char *lin[] = {".attn.q.weight", ".attn.k.weight", ".attn.v.weight",
                                    ".attn.proj.weight", ".mlp.fc1.weight", ".mlp.fc2.weight"};
        for (size_t i = 0; i < sizeof lin / sizeof *lin; i++)
            if (ends_with(n, lin[i])) return 1;
    }
    return 0;
}

int64_t ivl_quant_group(const ivl_quant_opts *q, int64_t K) {
    if (q->group > 0) return q->group;
    return q->bits == 8 ? K : 128;
}

int ivl_quant_check_plan(const ivl_quant_opts *q, const ivl_plan *plan) {
    if (!q->bits) return 0;
    if (q->bits != 8 && q->bits != 4)
        return ivl_errorf("--quantize: %d-bit weights are not supported (int8 or int4)", q->bits);
    if (q->group < 0) return ivl_errorf("--group-size %lld: must be positive", (long long)q->group);
    for (int i = 0; i < plan->n; i++) {
        const ivl_plan_entry *e = &plan->e[i];
        if (!ivl_quant_selects(q, e->name)) continue;
        int64_t K = e->shape[1], G = ivl_quant_group(q, K);
        if (e->ndim != 2 || K % G)
            return ivl_errorf("--quantize int%d: group size %lld does not divide the input width "
                              "%lld of %s [%lld, %lld]; give a --group-size that divides it",
                              q->bits, (long long)G, (long long)K, e->name,
                              (long long)e->shape[0], (long long)K);
        if (q->bits == 4 && G % 2)
            return ivl_errorf("--quantize int4: group size %lld is odd (two inputs share a byte; "
                              "%s)", (long long)G, e->name);
    }
    return 0;
}

void ivl_quant_rtn(const float *w, int64_t N, int64_t K, int bits, int64_t G, ivl_qweight *o) {
    const int64_t ng = K / G;
    memset(o, 0, sizeof *o);
    o->bits = bits;
    o->rows = N;
    o->cols = K;
    o->group = G;
    o->q = ivl_calloc((size_t)(bits == 8 ? N * K : N * K / 2), 1);
    o->scales = ivl_malloc((size_t)(N * ng) * sizeof(float));
    if (bits == 4) o->zeros = ivl_malloc((size_t)(N * ng));
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; r++)
        for (int64_t g = 0; g < ng; g++) {
            const float *x = w + r * K + g * G;
            if (bits == 8) {
                float amax = 0.0f;
                for (int64_t k = 0; k < G; k++) amax = fmaxf(amax, fabsf(x[k]));
                float s = amax > 0.0f ? amax / 127.0f : 1.0f;
                o->scales[r * ng + g] = s;
                int8_t *q = (int8_t *)o->q + r * K + g * G;
                for (int64_t k = 0; k < G; k++) {
                    float v = nearbyintf(x[k] / s);
                    q[k] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v);
                }
            } else {
                float mx = x[0], mn = x[0];
                for (int64_t k = 1; k < G; k++) {
                    mx = fmaxf(mx, x[k]);
                    mn = fminf(mn, x[k]);
                }
                float s = fmaxf(mx - mn, 1e-5f) / 15.0f;
                float zf = -nearbyintf(mn / s);
                int z = zf < 0.0f ? 0 : zf > 15.0f ? 15 : (int)zf;
                o->scales[r * ng + g] = s;
                o->zeros[r * ng + g] = (uint8_t)z;
                uint8_t *q = (uint8_t *)o->q + r * (K / 2);
                for (int64_t k = g * G; k < (g + 1) * G; k++) {
                    float v = nearbyintf(w[r * K + k] / s) + (float)z;
                    int qi = v < 0.0f ? 0 : v > 15.0f ? 15 : (int)v;
                    q[k / 2] |= (uint8_t)(k % 2 ? qi << 4 : qi);
                }
            }
        }
}

// One 2-D dataset of whole-row chunks of about 1 MiB.
static int write_2d(hid_t g, const char *name, hid_t ftype, hid_t mtype, size_t esize,
                    int64_t rows, int64_t cols, const void *data, hid_t *out) {
    int rc = 0;
    hid_t fs = -1, dcpl = -1, d = -1;
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols}, chunk[2] = {dims[0], dims[1]};
    H5_CHECK(fs = H5Screate_simple(2, dims, NULL));
    H5_CHECK(dcpl = H5Pcreate(H5P_DATASET_CREATE));
    if (rows && cols) {
        hsize_t r = CHUNK_TARGET_BYTES / (dims[1] * esize);
        chunk[0] = r < 1 ? 1 : r > dims[0] ? dims[0] : r;
        H5_CHECK(H5Pset_chunk(dcpl, 2, chunk));
    }
    H5_TRY(d = H5Dcreate2(g, name, ftype, fs, H5P_DEFAULT, dcpl, H5P_DEFAULT), "tensor %s", name);
    if (rows && cols)
        H5_TRY(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "writing tensor %s", name);
fail:
    H5Pclose(dcpl);
    H5Sclose(fs);
    if (rc && d >= 0) {
        H5Dclose(d);
        d = -1;
    }
    *out = d;
    return rc;
}

int ivl_quant_write(hid_t g, const char *name, const char *hf_name, int64_t hf_row0,
                    const ivl_qweight *q, const char *method, ivl_dtype scale_dt) {
    int rc = 0;
    hid_t d = -1;
    char sub[300];
    const int64_t ng = q->cols / q->group;
    void *sbuf = NULL;
    if ((rc = write_2d(g, name, q->bits == 8 ? H5T_STD_I8LE : H5T_STD_U8LE,
                       q->bits == 8 ? H5T_NATIVE_INT8 : H5T_NATIVE_UINT8, 1, q->rows,
                       q->bits == 8 ? q->cols : q->cols / 2, q->q, &d)))
        return rc;
    if (ivl_h5_write_str_attr(d, "hf_name", hf_name) ||
        ivl_h5_write_i64_attr(d, "hf_row0", hf_row0) ||
        ivl_h5_write_str_attr(d, "quant", q->bits == 8 ? "int8" : "int4") ||
        ivl_h5_write_i64_attr(d, "group_size", q->group) ||
        ivl_h5_write_i64_attr(d, "in_features", q->cols) ||
        ivl_h5_write_str_attr(d, "quant_method", method)) {
        rc = ivl_errorf("tensor %s: %s", name, ivl_last_error());
        goto fail;
    }
    H5Dclose(d);
    d = -1;
    snprintf(sub, sizeof sub, "%s.scales", name);
    const void *sdata = q->scales;
    if (scale_dt != IVL_F32) {
        sbuf = ivl_malloc((size_t)(q->rows * ng) * ivl_dtype_size(scale_dt));
        ivl_convert(sbuf, scale_dt, q->scales, IVL_F32, (size_t)(q->rows * ng));
        sdata = sbuf;
    }
    if ((rc = write_2d(g, sub, ivl_h5_type_for(scale_dt), ivl_h5_type_for(scale_dt),
                       ivl_dtype_size(scale_dt), q->rows, ng, sdata, &d)))
        goto fail;
    H5Dclose(d);
    d = -1;
    if (q->zeros) {
        snprintf(sub, sizeof sub, "%s.zeros", name);
        if ((rc = write_2d(g, sub, H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, q->rows, ng, q->zeros, &d)))
            goto fail;
    }
fail:
    free(sbuf);
    if (d >= 0 && H5Dclose(d) < 0 && !rc) rc = ivl_errorf("closing tensor %s", name);
    return rc;
}
