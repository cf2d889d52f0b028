// tensor_io.c - see tensor_io.h.
#include "weights/tensor_io.h"
#include "core/check.h"
#include "weights/h5_util.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

struct ivl_h5_out {
    hid_t file;
    char path[1024];
};

int ivl_h5_out_create(const char *path, ivl_h5_out **out) {
    ivl_h5_init();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        char m[512];
        return ivl_errorf("cannot create %s: %s", path, ivl_h5_error_message(m, sizeof m));
    }
    ivl_h5_out *o = ivl_calloc(1, sizeof *o);
    o->file = f;
    snprintf(o->path, sizeof o->path, "%s", path);
    *out = o;
    return 0;
}

int ivl_h5_out_write(ivl_h5_out *f, const char *name, const ivl_tensor *t) {
    hsize_t dims[IVL_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) dims[i] = (hsize_t)t->shape[i];
    const void *data = t->data;
    void *tmp = NULL;
    hid_t mem_type;
    if (t->dtype == IVL_I64) {
        mem_type = H5T_NATIVE_INT64;
    } else if (t->dtype == IVL_I32) {
        mem_type = H5T_NATIVE_INT32;
    } else {
        mem_type = H5T_NATIVE_FLOAT;
        if (t->dtype != IVL_F32) {
            tmp = ivl_malloc((size_t)ivl_tensor_numel(t) * sizeof(float));
            ivl_convert(tmp, IVL_F32, t->data, t->dtype, (size_t)ivl_tensor_numel(t));
            data = tmp;
        }
    }
    hid_t file_type = t->dtype == IVL_I64 ? H5T_STD_I64LE
                      : t->dtype == IVL_I32 ? H5T_STD_I32LE : H5T_IEEE_F32LE;
    int rc = 0;
    hid_t space = H5Screate_simple(t->ndim, dims, NULL);
    hid_t ds = H5Dcreate2(f->file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        char m[512];
        rc = ivl_errorf("%s: cannot write dataset %s: %s", f->path, name,
                        ivl_h5_error_message(m, sizeof m));
    }
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    free(tmp);
    return rc;
}

int ivl_h5_out_attr_i64(ivl_h5_out *f, const char *name, long long value) {
    return ivl_h5_write_i64_attr(f->file, name, value);
}

int ivl_h5_out_close(ivl_h5_out *f) {
    if (!f) return 0;
    int rc = H5Fclose(f->file) < 0 ? ivl_errorf("%s: close failed (disk full?)", f->path) : 0;
    free(f);
    return rc;
}

int ivl_h5_read_array(const char *path, const char *name, ivl_dtype dt, int optional,
                      ivl_tensor *out) {
    ivl_h5_init();
    IVL_CHECK(dt == IVL_F32 || dt == IVL_I64, "ivl_h5_read_array reads F32 or I64");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return ivl_errorf("cannot open %s as HDF5 (missing or not an HDF5 file)", path);
    int rc = 0;
    hid_t ds = -1, space = -1;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        rc = optional ? 1 : ivl_errorf("%s: dataset %s missing", path, name);
        goto done;
    }
    ds = H5Dopen2(f, name, H5P_DEFAULT);
    space = ds >= 0 ? H5Dget_space(ds) : -1;
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (nd < 0 || nd > IVL_MAX_DIMS) {
        rc = ivl_errorf("%s: dataset %s has an unsupported rank", path, name);
        goto done;
    }
    hsize_t dims[IVL_MAX_DIMS];
    H5Sget_simple_extent_dims(space, dims, NULL);
    int64_t shape[IVL_MAX_DIMS];
    for (int i = 0; i < nd; i++) shape[i] = (int64_t)dims[i];
    *out = ivl_tensor_host(dt, nd, shape);
    if (H5Dread(ds, dt == IVL_F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64, H5S_ALL, H5S_ALL,
                H5P_DEFAULT, out->data) < 0) {
        char m[512];
        rc = ivl_errorf("%s: cannot read %s as %s: %s", path, name, ivl_dtype_name(dt),
                        ivl_h5_error_message(m, sizeof m));
        ivl_tensor_free_host(out);
    }
done:
    if (space >= 0) H5Sclose(space);
    if (ds >= 0) H5Dclose(ds);
    H5Fclose(f);
    return rc;
}
