// tensor.c - see tensor.h.
#include "core/tensor.h"
#include "core/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t ivl_dtype_size(ivl_dtype dt) {
    switch (dt) {
    case IVL_F32: return 4;
    case IVL_BF16: return 2;
    case IVL_F16: return 2;
    case IVL_I32: return 4;
    case IVL_I64: return 8;
    case IVL_U8: return 1;
    case IVL_Q8: return 1;
    case IVL_Q4: return 1;   // per element rounded up; see ivl_qweight_bytes
    }
    IVL_CHECK(0, "unknown dtype %d", (int)dt);
}

const char *ivl_dtype_name(ivl_dtype dt) {
    switch (dt) {
    case IVL_F32: return "f32";
    case IVL_BF16: return "bf16";
    case IVL_F16: return "f16";
    case IVL_I32: return "i32";
    case IVL_I64: return "i64";
    case IVL_U8: return "u8";
    case IVL_Q8: return "int8";
    case IVL_Q4: return "int4";
    }
    return "?";
}

uint16_t ivl_f32_to_f16(float f) {
    union { float f; uint32_t u; } v = {f};
    uint32_t sign = (v.u >> 16) & 0x8000u;
    uint32_t absu = v.u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);           // NaN
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          // overflow -> inf
    if (absu < 0x38800000u) {                                            // subnormal or zero
        // value = absu as float; half subnormal unit = 2^-24
        float a = fabsf(f) * 16777216.0f;                                // / 2^-24
        uint32_t m = (uint32_t)lrintf(a);                                // RNE (default mode)
        return (uint16_t)(sign | m);
    }
    uint32_t exp = ((absu >> 23) - 112u) << 10;
    uint32_t mant = absu & 0x7fffffu;
    uint32_t h = exp | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

float ivl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        float m = ldexpf((float)mant, -24);
        return sign ? -m : m;
    } else if (exp == 31) {
        v.u = sign | 0x7f800000u | (mant << 13);
    } else {
        v.u = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    return v.f;
}

void ivl_convert(void *dst, ivl_dtype dst_dt, const void *src, ivl_dtype src_dt, size_t n) {
    if (dst_dt == src_dt) {
        memcpy(dst, src, n * ivl_dtype_size(dst_dt));
        return;
    }
    IVL_CHECK((dst_dt == IVL_F32 || dst_dt == IVL_BF16 || dst_dt == IVL_F16) &&
                  (src_dt == IVL_F32 || src_dt == IVL_BF16 || src_dt == IVL_F16),
              "cannot convert %s to %s", ivl_dtype_name(src_dt), ivl_dtype_name(dst_dt));
    for (size_t i = 0; i < n; i++) {
        float f;
        switch (src_dt) {
        case IVL_F32: f = ((const float *)src)[i]; break;
        case IVL_BF16: f = ivl_bf16_to_f32(((const uint16_t *)src)[i]); break;
        default: f = ivl_f16_to_f32(((const uint16_t *)src)[i]); break;
        }
        switch (dst_dt) {
        case IVL_F32: ((float *)dst)[i] = f; break;
        case IVL_BF16: ((uint16_t *)dst)[i] = ivl_f32_to_bf16(f); break;
        default: ((uint16_t *)dst)[i] = ivl_f32_to_f16(f); break;
        }
    }
}

int64_t ivl_tensor_numel(const ivl_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}
size_t ivl_tensor_nbytes(const ivl_tensor *t) {
    return (size_t)ivl_tensor_numel(t) * ivl_dtype_size(t->dtype);
}
int64_t ivl_tensor_cols(const ivl_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }
int64_t ivl_tensor_rows(const ivl_tensor *t) {
    int64_t c = ivl_tensor_cols(t);
    return c ? ivl_tensor_numel(t) / c : 0;
}

ivl_tensor ivl_tensor_desc(ivl_dtype dt, int ndim, const int64_t *shape) {
    IVL_CHECK(ndim >= 0 && ndim <= IVL_MAX_DIMS, "tensor rank %d out of range", ndim);
    ivl_tensor t = {.dtype = dt, .ndim = ndim};
    for (int i = 0; i < ndim; i++) {
        IVL_CHECK(shape[i] >= 0, "negative dimension %lld", (long long)shape[i]);
        t.shape[i] = shape[i];
    }
    return t;
}

ivl_tensor ivl_tensor_host(ivl_dtype dt, int ndim, const int64_t *shape) {
    ivl_tensor t = ivl_tensor_desc(dt, ndim, shape);
    t.loc = IVL_HOST;
    t.data = ivl_calloc(ivl_tensor_nbytes(&t) ? ivl_tensor_nbytes(&t) : 1, 1);
    return t;
}

ivl_tensor ivl_tensor_host_2d(ivl_dtype dt, int64_t rows, int64_t cols) {
    return ivl_tensor_host(dt, 2, (int64_t[]){rows, cols});
}

void ivl_tensor_free_host(ivl_tensor *t) {
    if (!t) return;
    free(t->data);
    t->data = NULL;
}

ivl_tensor ivl_tensor_slice(const ivl_tensor *t, int64_t r0, int64_t n) {
    IVL_CHECK(t->ndim >= 1 && r0 >= 0 && n >= 0 && r0 + n <= t->shape[0],
              "slice [%lld, %lld) out of range of dimension %lld", (long long)r0,
              (long long)(r0 + n), (long long)(t->ndim ? t->shape[0] : 0));
    ivl_tensor v = *t;
    size_t row_bytes = (size_t)(ivl_tensor_numel(t) / (t->shape[0] ? t->shape[0] : 1)) *
                       ivl_dtype_size(t->dtype);
    v.shape[0] = n;
    v.data = (char *)t->data + (size_t)r0 * row_bytes;
    return v;
}

ivl_tensor ivl_tensor_reshape(const ivl_tensor *t, int ndim, const int64_t *shape) {
    ivl_tensor v = ivl_tensor_desc(t->dtype, ndim, shape);
    IVL_CHECK(ivl_tensor_numel(&v) == ivl_tensor_numel(t), "reshape changes element count");
    v.data = t->data;
    v.loc = t->loc;
    return v;
}

ivl_tensor ivl_tensor_view_2d(const ivl_tensor *t, int64_t rows, int64_t cols) {
    return ivl_tensor_reshape(t, 2, (int64_t[]){rows, cols});
}

const char *ivl_tensor_shape_str(const ivl_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "] %s", ivl_dtype_name(t->dtype));
    return buf;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int ivl_rows_distinct(const int64_t *rows, int64_t n) {
    int64_t i = 1;
    while (i < n && rows[i] > rows[i - 1]) i++;   // one sequence's rows: increasing, O(n)
    if (i >= n) return 1;
    int64_t *c = ivl_malloc(sizeof(int64_t) * (size_t)n);
    memcpy(c, rows, sizeof(int64_t) * (size_t)n);
    qsort(c, (size_t)n, sizeof(int64_t), cmp_i64);
    int ok = 1;
    for (i = 1; i < n && ok; i++) ok = c[i] != c[i - 1];
    free(c);
    return ok;
}

int64_t ivl_qweight_bytes(int bits, int64_t rows, int64_t cols, int64_t group,
                          int scale_bytes, int has_zeros) {
    int64_t ng = group > 0 ? cols / group : 0;
    return rows * (bits == 4 ? cols / 2 : cols) + rows * ng * (scale_bytes + (has_zeros ? 1 : 0));
}

void ivl_qweight_dequant(const ivl_qweight *q, float *w) {
    const int64_t ng = q->cols / q->group;
    for (int64_t r = 0; r < q->rows; r++)
        for (int64_t k = 0; k < q->cols; k++) {
            int v;
            if (q->bits == 8) {
                v = ((const int8_t *)q->q)[r * q->cols + k];
            } else {
                uint8_t b = ((const uint8_t *)q->q)[r * (q->cols / 2) + k / 2];
                v = k % 2 ? b >> 4 : b & 15;
            }
            int64_t g = r * ng + k / q->group;
            int z = q->zeros ? q->zeros[g] : 0;
            w[r * q->cols + k] = q->scales[g] * (float)(v - z);
        }
}

void ivl_qweight_free_host(ivl_qweight *q) {
    if (!q) return;
    free(q->q);
    free(q->scales);
    free(q->zeros);
    q->q = NULL;
    q->scales = NULL;
    q->zeros = NULL;
}
