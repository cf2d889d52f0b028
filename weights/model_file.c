// model_file.c - see model_file.h. Every read selects a hyperslab of the stored dataset, reads
// it in the stored dtype (no HDF5 type conversion: bytes are copied as they are on disk) and
// converts to the requested dtype with ivl_convert.
#include "weights/model_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/models/config.h"
#include "weights/convert.h"
#include "weights/h5_util.h"

struct ivl_model_file {
    char *path;
    hid_t file;
    hid_t tensors;
    char *name;
    char *config_json;
    uint64_t bytes_read;
};

int ivl_model_file_open(const char *path, ivl_model_file **out) {
    int rc = 0;
    ivl_h5_init();
    ivl_model_file *mf = ivl_calloc(1, sizeof *mf);
    mf->path = ivl_strdup(path);
    mf->file = mf->tensors = -1;
    char *fmt = NULL;
    long long ver = 0;
    void *cfg = NULL;
    size_t n;
    H5_TRY(mf->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT),
           "%s: cannot open as an HDF5 model file", path);
    if (ivl_h5_read_str_attr(mf->file, "format", &fmt) || strcmp(fmt, IVL_MODEL_FORMAT)) {
        rc = ivl_errorf("%s: not an internvl model file (root attribute format is %s%s%s); "
                        "create one with `internvl convert`", path, fmt ? "'" : "missing",
                        fmt ? fmt : "", fmt ? "'" : "");
        goto fail;
    }
    if (ivl_h5_read_i64_attr(mf->file, "format_version", &ver)) {
        rc = ivl_errorf("%s: format_version attribute missing", path);
        goto fail;
    }
    if (ver != IVL_MODEL_FORMAT_VERSION) {
        rc = ivl_errorf("model file %s has format version %lld, this engine reads %d; re-run "
                        "internvl convert", path, ver, IVL_MODEL_FORMAT_VERSION);
        goto fail;
    }
    if (ivl_h5_read_str_attr(mf->file, "model_name", &mf->name)) mf->name = ivl_strdup("");
    if (ivl_model_file_read_blob(mf, "config", "config.json", &cfg, &n)) {
        rc = ivl_errorf("%s: /config/config.json missing", path);
        goto fail;
    }
    mf->config_json = cfg;
    H5_TRY(mf->tensors = H5Gopen2(mf->file, "tensors", H5P_DEFAULT), "%s: group /tensors", path);
fail:
    free(fmt);
    if (rc) {
        ivl_model_file_close(mf);
        return rc;
    }
    *out = mf;
    return 0;
}

void ivl_model_file_close(ivl_model_file *mf) {
    if (!mf) return;
    if (mf->tensors >= 0) H5Gclose(mf->tensors);
    if (mf->file >= 0) H5Fclose(mf->file);
    free(mf->path);
    free(mf->name);
    free(mf->config_json);
    free(mf);
}

const char *ivl_model_file_path(const ivl_model_file *mf) { return mf->path; }
const char *ivl_model_file_name(const ivl_model_file *mf) { return mf->name; }
const char *ivl_model_file_config_json(const ivl_model_file *mf) { return mf->config_json; }
uint64_t ivl_model_file_bytes_read(const ivl_model_file *mf) { return mf->bytes_read; }

int ivl_model_file_read_blob(ivl_model_file *mf, const char *group, const char *name,
                             void **data, size_t *size) {
    int rc = 0;
    hid_t g = -1, d = -1, s = -1;
    char *buf = NULL;
    *data = NULL;
    if (H5Lexists(mf->file, group, H5P_DEFAULT) <= 0) return ivl_errorf("%s: no group /%s", mf->path, group);
    H5_TRY(g = H5Gopen2(mf->file, group, H5P_DEFAULT), "%s: group /%s", mf->path, group);
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0) {
        rc = ivl_errorf("%s: /%s/%s missing", mf->path, group, name);
        goto fail;
    }
    H5_TRY(d = H5Dopen2(g, name, H5P_DEFAULT), "%s: /%s/%s", mf->path, group, name);
    H5_TRY(s = H5Dget_space(d), "%s: /%s/%s", mf->path, group, name);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    if (n < 0 || H5Sget_simple_extent_ndims(s) != 1) {
        rc = ivl_errorf("%s: /%s/%s is not a 1-D byte array", mf->path, group, name);
        goto fail;
    }
    buf = ivl_malloc((size_t)n + 1);
    if (n) H5_TRY(H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf),
                  "%s: reading /%s/%s", mf->path, group, name);
    buf[n] = 0;
    *data = buf;
    buf = NULL;
    if (size) *size = (size_t)n;
fail:
    free(buf);
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    if (g >= 0) H5Gclose(g);
    return rc;
}

int ivl_model_file_has(ivl_model_file *mf, const char *tensor) {
    return H5Lexists(mf->tensors, tensor, H5P_DEFAULT) > 0;
}

typedef struct {
    char **names;
    int n, cap;
} name_list;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    name_list *l = data;
    if (l->n == l->cap) l->names = ivl_realloc(l->names, (size_t)(l->cap = l->cap ? 2 * l->cap : 256) * sizeof *l->names);
    l->names[l->n++] = ivl_strdup(name);
    return 0;
}

int ivl_model_file_list(ivl_model_file *mf, char ***names, int *count) {
    int rc = 0;
    name_list l = {0};
    H5_TRY(H5Literate(mf->tensors, H5_INDEX_NAME, H5_ITER_INC, NULL, list_cb, &l),
           "%s: listing /tensors", mf->path);
    *names = l.names;
    *count = l.n;
    return 0;
fail:
    for (int i = 0; i < l.n; i++) free(l.names[i]);
    free(l.names);
    return rc;
}

// Opens /tensors/<name> and reports its shape and stored dtype.
static int open_tensor(ivl_model_file *mf, const char *tensor, hid_t *d, int *ndim,
                       hsize_t *dims, ivl_dtype *stored) {
    int rc = 0;
    hid_t s = -1, t = -1;
    *d = -1;
    if (!ivl_model_file_has(mf, tensor))
        return ivl_errorf("%s: tensor %s missing from the model file", mf->path, tensor);
    H5_TRY(*d = H5Dopen2(mf->tensors, tensor, H5P_DEFAULT), "%s: tensor %s", mf->path, tensor);
    H5_TRY(s = H5Dget_space(*d), "%s: tensor %s", mf->path, tensor);
    *ndim = H5Sget_simple_extent_ndims(s);
    if (*ndim < 1 || *ndim > IVL_MAX_DIMS) {
        rc = ivl_errorf("%s: tensor %s has %d dimensions (1..%d supported)", mf->path, tensor,
                        *ndim, IVL_MAX_DIMS);
        goto fail;
    }
    H5Sget_simple_extent_dims(s, dims, NULL);
    H5_TRY(t = H5Dget_type(*d), "%s: tensor %s", mf->path, tensor);
    int dt = ivl_h5_dtype_of(t);
    if (dt < 0 && H5Tget_class(t) == H5T_INTEGER && H5Aexists(*d, "quant") > 0) {
        // A quantized weight: its logical shape and dtype (checked in full by quant_info).
        ivl_quant_info qi;
        H5Tclose(t);
        t = -1;
        if (ivl_model_file_quant_info(mf, tensor, &qi)) {
            rc = -1;
            goto fail;
        }
        *ndim = 2;
        dims[0] = (hsize_t)qi.rows;
        dims[1] = (hsize_t)qi.cols;
        dt = qi.bits == 8 ? IVL_Q8 : IVL_Q4;
    }
    if (dt < 0) {
        rc = ivl_errorf("%s: tensor %s is not stored as bf16, f16 or f32 (nor as a quantized "
                        "weight: no quant attribute)", mf->path, tensor);
        goto fail;
    }
    *stored = (ivl_dtype)dt;
fail:
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (rc && *d >= 0) {
        H5Dclose(*d);
        *d = -1;
    }
    return rc;
}

int ivl_model_file_shape(ivl_model_file *mf, const char *tensor, int *ndim, int64_t *shape,
                         ivl_dtype *stored) {
    hid_t d;
    hsize_t dims[IVL_MAX_DIMS];
    if (open_tensor(mf, tensor, &d, ndim, dims, stored)) return -1;
    for (int i = 0; i < *ndim; i++) shape[i] = (int64_t)dims[i];
    H5Dclose(d);
    return 0;
}

// bf16 -> f32 is the common load (CPU backend); a plain shift loop the compiler vectorizes
// is several times faster than the general per-element conversion.
static void convert(void *dst, ivl_dtype dt, const void *src, ivl_dtype st, size_t n) {
    if (dt == IVL_F32 && st == IVL_BF16) {
        const uint16_t *s = src;
        uint32_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = (uint32_t)s[i] << 16;
        return;
    }
    ivl_convert(dst, dt, src, st, n);
}

// Reads the block starting at start with extent count (ndim dims) into a new host tensor.
// A corrupt chunk index can give a chunk a stored size smaller than the chunk, and libhdf5
// 1.10 then copies the full chunk from a short buffer (heap over-read: garbage weights or a
// crash; tests/fuzz/open). The converter writes unfiltered chunks of exactly chunk-size
// bytes, so every stored chunk must have that size and lie inside the file.
static int check_chunks(ivl_model_file *mf, const char *tensor, hid_t d, ivl_dtype stored,
                        const hsize_t *start, const hsize_t *count) {
    int rc = 0;
    hid_t dcpl = H5Dget_create_plist(d), sp = H5Dget_space(d);
    if (dcpl < 0 || sp < 0) {
        rc = ivl_errorf("%s: tensor %s: unreadable layout", mf->path, tensor);
        goto done;
    }
    if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) == 0) {
        hsize_t cdims[IVL_MAX_DIMS], dims[IVL_MAX_DIMS], fsize = 0;
        int cnd = H5Pget_chunk(dcpl, IVL_MAX_DIMS, cdims);
        int nd = H5Sget_simple_extent_dims(sp, dims, NULL);
        if (cnd < 1 || cnd != nd) {
            rc = ivl_errorf("%s: tensor %s: bad chunk layout (re-run internvl convert)", mf->path, tensor);
            goto done;
        }
        // Only the chunks the selection [start, start + count) touches: a tensor-parallel rank
        // reading a row block does not walk the whole tensor's index.
        hsize_t want = ivl_dtype_size(stored), nchunks = 1, grid[IVL_MAX_DIMS], c0[IVL_MAX_DIMS];
        for (int i = 0; i < nd; i++) {
            want *= cdims[i];
            if (!cdims[i] || !count[i]) goto done;
            c0[i] = start[i] / cdims[i];
            grid[i] = (start[i] + count[i] - 1) / cdims[i] - c0[i] + 1;
            nchunks *= grid[i];
        }
        (void)dims;
        hid_t file = H5Iget_file_id(d);
        H5Fget_filesize(file, &fsize);
        H5Fclose(file);
        // Walk the chunk grid (chunk offsets are multiples of the chunk dims).
        for (hsize_t c = 0; !rc && c < nchunks; c++) {
            hsize_t off[IVL_MAX_DIMS], rest = c, size = 0;
            for (int i = nd - 1; i >= 0; i--) {
                off[i] = (c0[i] + rest % grid[i]) * cdims[i];
                rest /= grid[i];
            }
            haddr_t addr = 0;
            unsigned mask = 0;
            if (H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size) < 0 || size != want ||
                addr == HADDR_UNDEF || addr + size > fsize)
                rc = ivl_errorf("%s: tensor %s: chunk %llu is %llu bytes at offset %llu, expected "
                                "%llu bytes inside the %llu-byte file: the file is corrupt; "
                                "re-run internvl convert", mf->path, tensor, (unsigned long long)c,
                                (unsigned long long)size, (unsigned long long)addr,
                                (unsigned long long)want, (unsigned long long)fsize);
        }
    }
done:
    if (sp >= 0) H5Sclose(sp);
    if (dcpl >= 0) H5Pclose(dcpl);
    return rc;
}

static int read_block(ivl_model_file *mf, const char *tensor, hid_t d, int ndim,
                      const hsize_t *start, const hsize_t *count, ivl_dtype stored, ivl_dtype dt,
                      ivl_tensor *out) {
    int rc = 0;
    hid_t fs = -1, ms = -1;
    void *tmp = NULL;
    int64_t shape[IVL_MAX_DIMS] = {0};
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        shape[i] = (int64_t)count[i];
        numel *= (size_t)count[i];
    }
    memset(out, 0, sizeof *out);
    *out = ivl_tensor_host(dt, ndim, shape);
    void *dst = out->data;
    if (dt != stored) dst = tmp = ivl_malloc(numel * ivl_dtype_size(stored));
    if (numel && check_chunks(mf, tensor, d, stored, start, count) != 0) {
        rc = -1;
        goto fail;
    }
    if (numel) {
        H5_TRY(fs = H5Dget_space(d), "%s: tensor %s", mf->path, tensor);
        H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
        H5_CHECK(ms = H5Screate_simple(ndim, count, NULL));
        H5_TRY(H5Dread(d, ivl_h5_type_for(stored), ms, fs, H5P_DEFAULT, dst),
               "%s: reading tensor %s", mf->path, tensor);
        if (tmp) convert(out->data, dt, tmp, stored, numel);
    }
    mf->bytes_read += numel * ivl_dtype_size(stored);
fail:
    free(tmp);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (rc) ivl_tensor_free_host(out);
    return rc;
}

static int check_dt(const ivl_model_file *mf, const char *tensor, ivl_dtype dt) {
    if (dt == IVL_F32 || dt == IVL_BF16 || dt == IVL_F16) return 0;
    return ivl_errorf("%s: tensor %s: cannot read as %s (f32, bf16 or f16)", mf->path, tensor,
                      ivl_dtype_name(dt));
}

// Whole tensor (axis -1), or [r0, r0 + n) along axis 0 (rows) or 1 (columns, 2-D only).
static int read_range(ivl_model_file *mf, const char *tensor, int axis, int64_t r0, int64_t n,
                      ivl_dtype dt, ivl_tensor *out) {
    static const char *what[2] = {"rows", "columns"};
    hid_t d;
    int ndim;
    hsize_t dims[IVL_MAX_DIMS], start[IVL_MAX_DIMS] = {0};
    ivl_dtype stored;
    if (check_dt(mf, tensor, dt) || open_tensor(mf, tensor, &d, &ndim, dims, &stored)) return -1;
    int rc;
    if (stored == IVL_Q8 || stored == IVL_Q4) {
        rc = ivl_errorf("%s: tensor %s is quantized (%s): the engine reads it only as a linear "
                        "layer's weight", mf->path, tensor, ivl_dtype_name(stored));
    } else if (axis == 1 && ndim != 2) {
        rc = ivl_errorf("%s: tensor %s: column reads need a 2-D tensor (it has %d dimensions)",
                        mf->path, tensor, ndim);
    } else if (axis >= 0 && (r0 < 0 || n < 0 || (hsize_t)r0 + (hsize_t)n > dims[axis])) {
        rc = ivl_errorf("%s: tensor %s: %s [%lld, %lld) outside its %llu %s", mf->path, tensor,
                        what[axis], (long long)r0, (long long)(r0 + n),
                        (unsigned long long)dims[axis], what[axis]);
    } else {
        if (axis >= 0) {
            start[axis] = (hsize_t)r0;
            dims[axis] = (hsize_t)n;
        }
        rc = read_block(mf, tensor, d, ndim, start, dims, stored, dt, out);
    }
    H5Dclose(d);
    return rc;
}

int ivl_model_file_read(ivl_model_file *mf, const char *tensor, ivl_dtype dt, ivl_tensor *out) {
    return read_range(mf, tensor, -1, 0, 0, dt, out);
}

int ivl_model_file_read_rows(ivl_model_file *mf, const char *tensor, int64_t r0, int64_t n,
                             ivl_dtype dt, ivl_tensor *out) {
    return read_range(mf, tensor, 0, r0, n, dt, out);
}

int ivl_model_file_read_cols(ivl_model_file *mf, const char *tensor, int64_t c0, int64_t n,
                             ivl_dtype dt, ivl_tensor *out) {
    return read_range(mf, tensor, 1, c0, n, dt, out);
}

int ivl_model_file_config(ivl_model_file *mf, ivl_model_config *cfg) {
    if (ivl_model_config_parse(mf->config_json, cfg))
        return ivl_errorf("%s: %s", mf->path, ivl_last_error());
    int ndim;
    int64_t shape[IVL_MAX_DIMS] = {0};
    ivl_dtype st;
    if (ivl_model_file_shape(mf, "llm.embed", &ndim, shape, &st)) return -1;
    if (ndim != 2 || shape[1] != cfg->llm.hidden)
        return ivl_errorf("%s: tensor llm.embed is not [vocab, %d]", mf->path, cfg->llm.hidden);
    cfg->llm.vocab = (int)shape[0];
    return 0;
}

// ---- quantized weights (weights/SCHEMA.md "Quantized tensors") ----

// Shape [n0, n1] and type of /tensors/<name>; -1 + error if absent or not 2-D.
static int dataset_2d(ivl_model_file *mf, const char *name, const char *of, hsize_t *dims,
                      hid_t *type) {
    int rc = 0;
    hid_t d = -1, s = -1;
    *type = -1;
    if (!ivl_model_file_has(mf, name))
        return ivl_errorf("%s: quantized tensor %s has no dataset %s", mf->path, of, name);
    H5_TRY(d = H5Dopen2(mf->tensors, name, H5P_DEFAULT), "%s: tensor %s", mf->path, name);
    H5_TRY(s = H5Dget_space(d), "%s: tensor %s", mf->path, name);
    if (H5Sget_simple_extent_ndims(s) != 2) {
        rc = ivl_errorf("%s: %s of quantized tensor %s is not 2-D", mf->path, name, of);
        goto fail;
    }
    H5Sget_simple_extent_dims(s, dims, NULL);
    H5_TRY(*type = H5Dget_type(d), "%s: tensor %s", mf->path, name);
fail:
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    return rc;
}

int ivl_model_file_quant_info(ivl_model_file *mf, const char *tensor, ivl_quant_info *qi) {
    int rc = 0;
    hid_t d = -1, t = -1;
    char *q = NULL, *method = NULL, name[300];
    long long group = 0, in = 0;
    memset(qi, 0, sizeof *qi);
    if (!ivl_model_file_has(mf, tensor))
        return ivl_errorf("%s: tensor %s missing from the model file", mf->path, tensor);
    H5_TRY(d = H5Dopen2(mf->tensors, tensor, H5P_DEFAULT), "%s: tensor %s", mf->path, tensor);
    if (H5Aexists(d, "quant") <= 0) goto fail;   // a float tensor: bits 0
    if (ivl_h5_read_str_attr(d, "quant", &q) || (strcmp(q, "int8") && strcmp(q, "int4"))) {
        rc = ivl_errorf("%s: tensor %s: unknown quantization '%s' (this engine reads int8 and "
                        "int4)", mf->path, tensor, q ? q : "?");
        goto fail;
    }
    qi->bits = q[3] == '8' ? 8 : 4;
    if (ivl_h5_read_i64_attr(d, "group_size", &group) || ivl_h5_read_i64_attr(d, "in_features", &in)) {
        rc = ivl_errorf("%s: quantized tensor %s lacks the group_size or in_features attribute",
                        mf->path, tensor);
        goto fail;
    }
    if (ivl_h5_read_str_attr(d, "quant_method", &method) == 0)
        snprintf(qi->method, sizeof qi->method, "%s", method);
    hsize_t pd[2], sd[2], zd[2];
    H5Dclose(d);
    d = -1;
    if ((rc = dataset_2d(mf, tensor, tensor, pd, &t))) goto fail;
    int ok_type = H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 &&
                  H5Tget_sign(t) == (qi->bits == 8 ? H5T_SGN_2 : H5T_SGN_NONE);
    H5Tclose(t);
    t = -1;
    if (!ok_type) {
        rc = ivl_errorf("%s: quantized tensor %s (int%d) is not stored as %s bytes", mf->path,
                        tensor, qi->bits, qi->bits == 8 ? "signed" : "unsigned");
        goto fail;
    }
    qi->rows = (int64_t)pd[0];
    qi->cols = in;
    qi->group = group;
    hsize_t want = qi->bits == 8 ? (hsize_t)in : (hsize_t)in / 2;
    if (in < 1 || (qi->bits == 4 && in % 2) || pd[1] != want) {
        rc = ivl_errorf("%s: quantized tensor %s: packed data [%llu, %llu] does not hold "
                        "in_features %lld (int%d: %s)", mf->path, tensor,
                        (unsigned long long)pd[0], (unsigned long long)pd[1], in, qi->bits,
                        qi->bits == 8 ? "one byte each" : "two per byte");
        goto fail;
    }
    if (group < 1 || in % group || (qi->bits == 4 && group % 2)) {
        rc = ivl_errorf("%s: quantized tensor %s: group size %lld does not divide its input "
                        "width %lld%s", mf->path, tensor, group, in,
                        qi->bits == 4 && group % 2 ? " (or is odd: int4 groups are even)" : "");
        goto fail;
    }
    const long long ng = in / group;
    snprintf(name, sizeof name, "%s.scales", tensor);
    if ((rc = dataset_2d(mf, name, tensor, sd, &t))) goto fail;
    int sdt = ivl_h5_dtype_of(t);
    H5Tclose(t);
    t = -1;
    if (sdt < 0 || sd[0] != pd[0] || sd[1] != (hsize_t)ng) {
        rc = ivl_errorf("%s: %s is [%llu, %llu] %s, expected [%llu, %lld] floats for %s [%llu, "
                        "%lld] (int%d, group %lld)", mf->path, name, (unsigned long long)sd[0],
                        (unsigned long long)sd[1], sdt < 0 ? "non-float" : ivl_dtype_name(sdt),
                        (unsigned long long)pd[0], ng, tensor, (unsigned long long)pd[0], in,
                        qi->bits, group);
        goto fail;
    }
    qi->scale_dt = (ivl_dtype)sdt;
    snprintf(name, sizeof name, "%s.zeros", tensor);
    qi->has_zeros = ivl_model_file_has(mf, name);
    if (qi->bits == 4 && !qi->has_zeros) {
        rc = ivl_errorf("%s: int4 tensor %s has no %s", mf->path, tensor, name);
        goto fail;
    }
    if (qi->has_zeros) {
        if ((rc = dataset_2d(mf, name, tensor, zd, &t))) goto fail;
        int okz = H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 &&
                  H5Tget_sign(t) == H5T_SGN_NONE;
        H5Tclose(t);
        t = -1;
        if (!okz || zd[0] != pd[0] || zd[1] != (hsize_t)ng) {
            rc = ivl_errorf("%s: %s is [%llu, %llu]%s, expected [%llu, %lld] unsigned bytes",
                            mf->path, name, (unsigned long long)zd[0], (unsigned long long)zd[1],
                            okz ? "" : " (not unsigned bytes)", (unsigned long long)pd[0], ng);
            goto fail;
        }
    }
fail:
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    free(q);
    free(method);
    return rc;
}

// Reads the block [start, start + count) of the 2-D dataset /tensors/<name> (stored element
// type `mem`, chunk element dtype cdt for the chunk checks) into dst.
static int read_slab(ivl_model_file *mf, const char *name, hid_t mem, ivl_dtype cdt,
                     const hsize_t *start, const hsize_t *count, void *dst) {
    int rc = 0;
    hid_t d = -1, fs = -1, ms = -1;
    if (!count[0] || !count[1]) return 0;
    H5_TRY(d = H5Dopen2(mf->tensors, name, H5P_DEFAULT), "%s: tensor %s", mf->path, name);
    if ((rc = check_chunks(mf, name, d, cdt, start, count))) goto fail;
    H5_TRY(fs = H5Dget_space(d), "%s: tensor %s", mf->path, name);
    H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
    H5_CHECK(ms = H5Screate_simple(2, count, NULL));
    H5_TRY(H5Dread(d, mem, ms, fs, H5P_DEFAULT, dst), "%s: reading tensor %s", mf->path, name);
    mf->bytes_read += count[0] * count[1] * ivl_dtype_size(cdt);
fail:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    return rc;
}

int ivl_model_file_read_quant(ivl_model_file *mf, const char *tensor, int axis, int64_t r0,
                              int64_t n, ivl_qweight *out) {
    static const char *what[2] = {"rows", "input columns"};
    ivl_quant_info qi;
    memset(out, 0, sizeof *out);
    if (ivl_model_file_quant_info(mf, tensor, &qi)) return -1;
    if (!qi.bits)
        return ivl_errorf("%s: tensor %s is not quantized", mf->path, tensor);
    const int64_t R = qi.rows, K = qi.cols, G = qi.group, ng = K / G;
    int64_t lim = axis == 1 ? K : R;
    if (axis >= 0 && (r0 < 0 || n < 1 || r0 + n > lim))
        return ivl_errorf("%s: tensor %s: %s [%lld, %lld) outside its %lld %s", mf->path, tensor,
                          what[axis], (long long)r0, (long long)(r0 + n), (long long)lim,
                          what[axis]);
    if (axis == 1 && ng > 1 && (r0 % G || n % G))
        return ivl_errorf("%s: tensor %s (int%d, group %lld): the input columns [%lld, %lld) "
                          "of this rank's share split a quantization group; the tensor-parallel "
                          "share of its %lld inputs must be a multiple of %lld (use a --tp that "
                          "divides %lld, or convert with a smaller --group-size)", mf->path,
                          tensor, qi.bits, (long long)G, (long long)r0, (long long)(r0 + n),
                          (long long)K, (long long)G, (long long)ng);
    int64_t rows = axis == 0 ? n : R, cols = axis == 1 ? n : K;
    int64_t g0 = axis == 1 && ng > 1 ? r0 / G : 0, gn = axis == 1 && ng > 1 ? n / G : ng;
    int64_t row0 = axis == 0 ? r0 : 0, col0 = axis == 1 ? r0 : 0;
    out->bits = qi.bits;
    out->rows = rows;
    out->cols = cols;
    out->group = ng == 1 ? cols : G;
    int64_t pcols = qi.bits == 8 ? cols : cols / 2;
    out->q = ivl_malloc((size_t)(rows * pcols));
    out->scales = ivl_malloc((size_t)(rows * gn) * sizeof(float));
    if (qi.has_zeros) out->zeros = ivl_malloc((size_t)(rows * gn));
    char name[300];
    hsize_t st[2] = {(hsize_t)row0, (hsize_t)(qi.bits == 8 ? col0 : col0 / 2)};
    hsize_t ct[2] = {(hsize_t)rows, (hsize_t)pcols};
    int rc = read_slab(mf, tensor, qi.bits == 8 ? H5T_NATIVE_INT8 : H5T_NATIVE_UINT8, IVL_U8, st,
                       ct, out->q);
    hsize_t gs[2] = {(hsize_t)row0, (hsize_t)g0}, gc[2] = {(hsize_t)rows, (hsize_t)gn};
    if (!rc) {
        snprintf(name, sizeof name, "%s.scales", tensor);
        void *tmp = qi.scale_dt == IVL_F32 ? (void *)out->scales
                                           : ivl_malloc((size_t)(rows * gn) * 2);
        rc = read_slab(mf, name, ivl_h5_type_for(qi.scale_dt), qi.scale_dt, gs, gc, tmp);
        if (tmp != out->scales) {
            if (!rc) ivl_convert(out->scales, IVL_F32, tmp, qi.scale_dt, (size_t)(rows * gn));
            free(tmp);
        }
    }
    if (!rc && qi.has_zeros) {
        snprintf(name, sizeof name, "%s.zeros", tensor);
        rc = read_slab(mf, name, H5T_NATIVE_UINT8, IVL_U8, gs, gc, out->zeros);
        for (int64_t i = 0; !rc && i < rows * gn; i++)
            if (qi.bits == 4 && out->zeros[i] > 15)
                rc = ivl_errorf("%s: %s.zeros holds %d at [%lld, %lld]; int4 zero points are "
                                "0..15", mf->path, tensor, out->zeros[i],
                                (long long)(row0 + i / gn), (long long)(g0 + i % gn));
    }
    if (rc) ivl_qweight_free_host(out);
    return rc;
}

int ivl_model_file_part_bytes(ivl_model_file *mf, const char *prefix, int float_bytes,
                              double *bytes, int *quantized) {
    char **names;
    int n;
    *bytes = 0;
    if (quantized) *quantized = 0;
    if (ivl_model_file_list(mf, &names, &n)) return -1;
    int rc = 0;
    size_t pl = strlen(prefix);
    for (int i = 0; i < n; i++) {
        const char *nm = names[i];
        size_t len = strlen(nm);
        int part = (len > 7 && !strcmp(nm + len - 7, ".scales")) ||
                   (len > 6 && !strcmp(nm + len - 6, ".zeros"));
        if (!rc && !part && !strncmp(nm, prefix, pl)) {
            int ndim;
            int64_t shape[IVL_MAX_DIMS], numel = 1;
            ivl_dtype dt;
            if (!(rc = ivl_model_file_shape(mf, nm, &ndim, shape, &dt))) {
                for (int d = 0; d < ndim; d++) numel *= shape[d];
                if (dt == IVL_Q8 || dt == IVL_Q4) {
                    ivl_quant_info qi;
                    if (!(rc = ivl_model_file_quant_info(mf, nm, &qi))) {
                        *bytes += (double)ivl_qweight_bytes(qi.bits, qi.rows, qi.cols, qi.group,
                                                            4, qi.has_zeros);
                        if (quantized) *quantized = 1;
                    }
                } else {
                    *bytes += (double)numel * float_bytes;
                }
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}
