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
    if (dt < 0) {
        rc = ivl_errorf("%s: tensor %s is not stored as bf16, f16 or f32", mf->path, tensor);
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
    if (axis == 1 && ndim != 2) {
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
