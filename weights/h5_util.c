// h5_util.c - see h5_util.h.
#include "weights/h5_util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static hid_t g_bf16 = -1, g_f16 = -1;
static pthread_once_t g_types_once = PTHREAD_ONCE_INIT;

void ivl_h5_init(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

// A 16-bit float type: sign at bit 15, exponent [mpos+msize, 15), mantissa [0, msize).
static hid_t make_half(size_t ebits, size_t mbits, size_t ebias) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5_CHECK(t);
    H5_CHECK(H5Tset_fields(t, 15, mbits, ebits, 0, mbits));
    H5_CHECK(H5Tset_precision(t, 16));
    H5_CHECK(H5Tset_size(t, 2));
    H5_CHECK(H5Tset_ebias(t, ebias));
    return t;
}

static void make_types(void) {
    g_bf16 = make_half(8, 7, 127);   // bfloat16: the top half of an IEEE f32
    g_f16 = make_half(5, 10, 15);    // IEEE binary16
}

hid_t ivl_h5_type_bf16(void) { pthread_once(&g_types_once, make_types); return g_bf16; }
hid_t ivl_h5_type_f16(void) { pthread_once(&g_types_once, make_types); return g_f16; }
hid_t ivl_h5_type_f32(void) { return H5T_IEEE_F32LE; }

hid_t ivl_h5_type_for(ivl_dtype dt) {
    switch (dt) {
    case IVL_BF16: return ivl_h5_type_bf16();
    case IVL_F16: return ivl_h5_type_f16();
    case IVL_F32: return ivl_h5_type_f32();
    default: return -1;
    }
}

int ivl_h5_dtype_of(hid_t type) {
    if (H5Tget_class(type) != H5T_FLOAT) return -1;
    if (H5Tequal(type, ivl_h5_type_bf16()) > 0) return IVL_BF16;
    if (H5Tequal(type, ivl_h5_type_f16()) > 0) return IVL_F16;
    if (H5Tequal(type, H5T_IEEE_F32LE) > 0) return IVL_F32;
    return -1;
}

// --- error stack as text -------------------------------------------------------------------

typedef struct {
    char top[512];       // the API call's level
    char last[2][512];   // the two innermost levels: the actual cause
    int count;
} walk_ctx;

// The stack is walked from the API call downward; the API level says what failed and the
// innermost levels say why (e.g. "errno = 28, error message = 'No space left on device'").
static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    walk_ctx *w = data;
    const char *desc = e->desc ? e->desc : "";
    if (n == 0) {
        snprintf(w->top, sizeof w->top, "%s: %s", e->func_name ? e->func_name : "?", desc);
    } else {
        memcpy(w->last[0], w->last[1], sizeof w->last[0]);
        snprintf(w->last[1], sizeof w->last[1], "%s", desc);
    }
    w->count++;
    return 0;
}

const char *ivl_h5_error_message(char *buf, size_t n) {
    walk_ctx w;
    memset(&w, 0, sizeof w);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &w);
    if (w.count == 0) snprintf(buf, n, "HDF5 error (no details on the error stack)");
    else if (w.count == 1) snprintf(buf, n, "%s", w.top);
    else if (w.count == 2) snprintf(buf, n, "%s (%s)", w.top, w.last[1]);
    else snprintf(buf, n, "%s (%s; %s)", w.top, w.last[0], w.last[1]);
    H5Eclear2(H5E_DEFAULT);
    for (char *c = buf; *c; c++)   // HDF5 embeds ctime()'s newline in I/O errors
        if (*c == '\n') *c = ' ';
    return buf;
}

// --- attributes ------------------------------------------------------------------------------

int ivl_h5_write_str_attr(hid_t obj, const char *name, const char *value) {
    int rc = 0;
    hid_t t = -1, s = -1, a = -1;
    H5_CHECK(t = H5Tcopy(H5T_C_S1));
    H5_CHECK(H5Tset_size(t, strlen(value) + 1));
    H5_CHECK(H5Tset_strpad(t, H5T_STR_NULLTERM));
    H5_CHECK(s = H5Screate(H5S_SCALAR));
    H5_TRY(a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT), "attribute %s", name);
    H5_TRY(H5Awrite(a, t, value), "attribute %s", name);
fail:
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    return rc;
}

int ivl_h5_write_i64_attr(hid_t obj, const char *name, long long value) {
    int rc = 0;
    hid_t s = -1, a = -1;
    H5_CHECK(s = H5Screate(H5S_SCALAR));
    H5_TRY(a = H5Acreate2(obj, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT),
           "attribute %s", name);
    H5_TRY(H5Awrite(a, H5T_NATIVE_LLONG, &value), "attribute %s", name);
fail:
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    return rc;
}

int ivl_h5_read_str_attr(hid_t obj, const char *name, char **out) {
    int rc = 0;
    hid_t a = -1, t = -1, mt = -1;
    *out = NULL;
    if (H5Aexists(obj, name) <= 0) return ivl_errorf("attribute %s missing", name);
    H5_TRY(a = H5Aopen(obj, name, H5P_DEFAULT), "attribute %s", name);
    H5_TRY(t = H5Aget_type(a), "attribute %s", name);
    if (H5Tget_class(t) != H5T_STRING) { rc = ivl_errorf("attribute %s is not a string", name); goto fail; }
    if (H5Tis_variable_str(t) > 0) {
        char *v = NULL;
        H5_CHECK(mt = H5Tcopy(H5T_C_S1));
        H5_CHECK(H5Tset_size(mt, H5T_VARIABLE));
        H5_TRY(H5Aread(a, mt, &v), "attribute %s", name);
        *out = ivl_strdup(v ? v : "");
        H5free_memory(v);
    } else {
        size_t n = H5Tget_size(t);
        *out = ivl_calloc(n + 1, 1);
        H5_TRY(H5Aread(a, t, *out), "attribute %s", name);
    }
fail:
    if (rc) { free(*out); *out = NULL; }
    if (mt >= 0) H5Tclose(mt);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

int ivl_h5_read_i64_attr(hid_t obj, const char *name, long long *out) {
    int rc = 0;
    hid_t a = -1, t = -1;
    if (H5Aexists(obj, name) <= 0) return ivl_errorf("attribute %s missing", name);
    H5_TRY(a = H5Aopen(obj, name, H5P_DEFAULT), "attribute %s", name);
    H5_TRY(t = H5Aget_type(a), "attribute %s", name);
    if (H5Tget_class(t) != H5T_INTEGER) { rc = ivl_errorf("attribute %s is not an integer", name); goto fail; }
    H5_TRY(H5Aread(a, H5T_NATIVE_LLONG, out), "attribute %s", name);
fail:
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

int ivl_h5_write_bytes(hid_t group, const char *name, const void *data, size_t n) {
    int rc = 0;
    hid_t s = -1, d = -1;
    hsize_t dim = n;
    H5_CHECK(s = H5Screate_simple(1, &dim, NULL));
    H5_TRY(d = H5Dcreate2(group, name, H5T_STD_U8LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
           "dataset %s", name);
    if (n) H5_TRY(H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "dataset %s", name);
fail:
    if (d >= 0) H5Dclose(d);
    H5Sclose(s);
    return rc;
}
