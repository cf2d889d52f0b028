// test_cpu_memory.c - the CPU backend's memory functions: alloc (zeroed, IVL_DEVICE, f32),
// upload from f32/bf16/f16 with conversion, i32 passed through, download to f32/bf16, copy
// of row slices, zero, the helpers in backend.c, and rejection of mismatched sizes/dtypes.
#include "tests/ops/ops_test.h"

int main(void) {
    ivl_backend *be = ivl_backend_cpu_create();
    char want_name[64];
    snprintf(want_name, sizeof want_name, "x86_64 CPU, %d thread%s", omp_get_max_threads(),
             omp_get_max_threads() == 1 ? "" : "s");
    printf("device_name: %s\n", be->device_name);
    check_true("name, dtype and device_name", !strcmp(be->name, "cpu") && be->dtype == IVL_F32 &&
                                                  !strcmp(be->device_name, want_name));

    FOR_THREADS(nt) {
        // Sizes above the conversion chunk (1 << 20) so the parallel split runs.
        const int64_t R = 3, C = 700001, n = R * C;
        ivl_tensor t = ivl_backend_alloc_2d(be, R, C);
        int zero = t.loc == IVL_DEVICE && t.dtype == IVL_F32 && t.data;
        for (int64_t i = 0; i < n && zero; i++) zero = ((float *)t.data)[i] == 0.0f;
        check_true("alloc gives zeroed f32 backend memory", zero);

        float *src = rnd_array(n, -1000, 1000);
        double *ref = malloc(sizeof(double) * (size_t)n);
        char what[96];
        // bf16 and f16 sources: the device holds exactly their f32 values.
        for (int dti = 0; dti < 3; dti++) {
            ivl_dtype dt = (ivl_dtype[]){IVL_F32, IVL_BF16, IVL_F16}[dti];
            ivl_tensor h = ivl_tensor_host_2d(dt, R, C);
            ivl_convert(h.data, dt, src, IVL_F32, (size_t)n);
            for (int64_t i = 0; i < n; i++) {
                float f;
                ivl_convert(&f, IVL_F32, (char *)h.data + i * ivl_dtype_size(dt), dt, 1);
                ref[i] = f;
            }
            be->upload(be, &t, &h);
            float *back = host_from(be, &t);
            snprintf(what, sizeof what, "upload from %s threads=%d", ivl_dtype_name(dt), nt);
            check_close(what, back, ref, n, 0, 0);
            free(back);
            ivl_tensor_free_host(&h);
        }
        // Download to bf16 rounds like ivl_f32_to_bf16.
        ivl_tensor hb = ivl_tensor_host_2d(IVL_BF16, R, C);
        be->download(be, &hb, &t);
        int same = 1;
        for (int64_t i = 0; i < n && same; i++)
            same = ((uint16_t *)hb.data)[i] == ivl_f32_to_bf16((float)ref[i]);
        snprintf(what, sizeof what, "download to bf16 threads=%d", nt);
        check_true(what, same);
        ivl_tensor_free_host(&hb);

        // zero, then copy one row range into another (row-slice views).
        be->zero(be, &t);
        ivl_tensor t2 = dev_from(be, src, R, C);
        ivl_tensor dst = ivl_tensor_slice(&t, 2, 1), from = ivl_tensor_slice(&t2, 0, 1);
        be->copy(be, &dst, &from);
        for (int64_t i = 0; i < n; i++) ref[i] = i >= 2 * C ? src[i - 2 * C] : 0.0;
        float *back = host_from(be, &t);
        snprintf(what, sizeof what, "zero + copy of a row slice threads=%d", nt);
        check_close(what, back, ref, n, 0, 0);
        free(back);
        be->free(be, &t);
        be->free(be, &t2);
        check_true("free clears the pointer", t.data == NULL);
        free(src);
        free(ref);
    }

    // i32 tensors pass through unchanged (token ids, positions).
    ivl_tensor hi = ivl_tensor_host_2d(IVL_I32, 1, 5);
    int32_t vals[5] = {0, -7, 92546, 2147483647, -2147483647 - 1};
    memcpy(hi.data, vals, sizeof vals);
    ivl_tensor di = ivl_backend_from_host(be, &hi);
    ivl_tensor ho = ivl_tensor_host_2d(IVL_I32, 1, 5);
    be->download(be, &ho, &di);
    check_true("i32 upload/download pass through", di.dtype == IVL_I32 && di.loc == IVL_DEVICE &&
                                                      !memcmp(ho.data, vals, sizeof vals));

    // The to-host helper returns f32.
    float small[6] = {1, 2, 3, 4, 5, 6};
    ivl_tensor ds = dev_from(be, small, 2, 3);
    ivl_tensor hs = ivl_backend_to_host_f32(be, &ds);
    check_true("ivl_backend_to_host_f32", hs.dtype == IVL_F32 && hs.shape[0] == 2 &&
                                              hs.shape[1] == 3 && !memcmp(hs.data, small, sizeof small));

    ivl_tensor wrong = ivl_tensor_host_2d(IVL_F32, 2, 4);
    expect_rejected("upload with a different element count", be->upload(be, &ds, &wrong));
    ivl_tensor hi6 = ivl_tensor_host_2d(IVL_I32, 2, 3);
    expect_rejected("upload of i32 into f32", be->upload(be, &ds, &hi6));
    ivl_tensor_free_host(&hi6);
    expect_rejected("copy between dtypes", be->copy(be, &di, &ds));
    ivl_tensor_free_host(&wrong);
    ivl_tensor_free_host(&hi);
    ivl_tensor_free_host(&ho);
    ivl_tensor_free_host(&hs);
    be->free(be, &di);
    be->free(be, &ds);
    ivl_backend_destroy(be);
    return finish("test_cpu_memory");
}
