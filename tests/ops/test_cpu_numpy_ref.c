// test_cpu_numpy_ref.c - attention and pixel_shuffle of the CPU backend against outputs
// computed in Python (numpy_ref_ops.py: numpy float64, cross-checked with the project's
// PyTorch reference), exchanged through an HDF5 file. Usage: test_cpu_numpy_ref FILE.h5
#include "tests/ops/ops_test.h"

#include <hdf5.h>

// Reads a whole f32 dataset; *rows and *cols get its 2-D shape.
static float *read_2d(hid_t g, const char *name, int64_t *rows, int64_t *cols) {
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    IVL_CHECK(d >= 0, "reference file: dataset '%s' missing", name);
    hid_t s = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    IVL_CHECK(H5Sget_simple_extent_ndims(s) == 2, "reference file: '%s' is not 2-D", name);
    H5Sget_simple_extent_dims(s, dims, NULL);
    float *a = malloc(sizeof(float) * (size_t)(dims[0] * dims[1] > 0 ? dims[0] * dims[1] : 1));
    IVL_CHECK(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, a) >= 0,
              "reference file: cannot read '%s'", name);
    H5Sclose(s);
    H5Dclose(d);
    *rows = (int64_t)dims[0];
    *cols = (int64_t)dims[1];
    return a;
}

static double attr_d(hid_t g, const char *name) {
    double v = 0;
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    IVL_CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0,
              "reference file: attribute '%s' missing", name);
    H5Aclose(a);
    return v;
}

static hsize_t count_cases(hid_t f, const char *group) {
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    IVL_CHECK(g >= 0, "reference file: group '%s' missing", group);
    H5G_info_t info;
    H5Gget_info(g, &info);
    H5Gclose(g);
    return info.nlinks;
}

static double *to_double(const float *a, int64_t n) {
    double *d = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) d[i] = a[i];
    return d;
}

int main(int argc, char **argv) {
    IVL_CHECK(argc == 2, "usage: %s REFERENCE.h5 (written by tests/ops/numpy_ref_ops.py)",
              argv[0]);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    IVL_CHECK(f >= 0, "%s: cannot open (run tests/ops/numpy_ref_ops.py to make it)", argv[1]);
    ivl_backend *be = ivl_backend_cpu_create();
    char path[64], what[160];

    hsize_t na = count_cases(f, "attention"), ns = count_cases(f, "pixel_shuffle");
    check_true("reference file has cases", na > 0 && ns > 0);
    FOR_THREADS(nt) {
        for (hsize_t i = 0; i < na; i++) {
            snprintf(path, sizeof path, "attention/%llu", (unsigned long long)i);
            hid_t g = H5Gopen2(f, path, H5P_DEFAULT);
            IVL_CHECK(g >= 0, "reference file: %s missing", path);
            int64_t T, qw, L, kw, r, c;
            float *q = read_2d(g, "q", &T, &qw), *k = read_2d(g, "k", &L, &kw);
            float *v = read_2d(g, "v", &r, &c), *want = read_2d(g, "out", &r, &c);
            int H = (int)attr_d(g, "H"), K = (int)attr_d(g, "K"), hd = (int)attr_d(g, "hd");
            int causal = (int)attr_d(g, "causal");
            int64_t pos0 = (int64_t)attr_d(g, "q_pos0");
            float scale = (float)attr_d(g, "scale");
            ivl_tensor tq = dev_from(be, q, T, qw), tk = dev_from(be, k, L, kw);
            ivl_tensor tv = dev_from(be, v, L, kw), to = ivl_backend_alloc_2d(be, T, qw);
            be->attention(be, &to, &tq, &tk, &tv, H, K, hd, causal, pos0, scale);
            float *o = host_from(be, &to);
            double *ref = to_double(want, T * qw);
            snprintf(what, sizeof what, "numpy attention T=%lld L=%lld H=%d K=%d hd=%d causal=%d "
                     "q_pos0=%lld threads=%d", (long long)T, (long long)L, H, K, hd, causal,
                     (long long)pos0, nt);
            // Reference is float64 rounded to f32; ours is f32 throughout.
            check_close(what, o, ref, T * qw, 2e-5, 1e-4);
            be->free(be, &tq); be->free(be, &tk); be->free(be, &tv); be->free(be, &to);
            free(q); free(k); free(v); free(want); free(o); free(ref);
            H5Gclose(g);
        }
        for (hsize_t i = 0; i < ns; i++) {
            snprintf(path, sizeof path, "pixel_shuffle/%llu", (unsigned long long)i);
            hid_t g = H5Gopen2(f, path, H5P_DEFAULT);
            IVL_CHECK(g >= 0, "reference file: %s missing", path);
            int64_t R, C, R2, C4;
            float *x = read_2d(g, "in", &R, &C), *want = read_2d(g, "out", &R2, &C4);
            int grid = (int)attr_d(g, "grid"), version = (int)attr_d(g, "version");
            ivl_tensor tx = dev_from(be, x, R, C), to = ivl_backend_alloc_2d(be, R2, C4);
            be->pixel_shuffle(be, &to, &tx, grid, version);
            float *o = host_from(be, &to);
            double *ref = to_double(want, R2 * C4);
            snprintf(what, sizeof what, "numpy pixel_shuffle v%d rows=%lld grid=%d C=%lld "
                     "threads=%d", version, (long long)R, grid, (long long)C, nt);
            check_close(what, o, ref, R2 * C4, 0, 0);
            be->free(be, &tx); be->free(be, &to);
            free(x); free(want); free(o); free(ref);
            H5Gclose(g);
        }
    }
    H5Fclose(f);
    ivl_backend_destroy(be);
    return finish("test_cpu_numpy_ref");
}
