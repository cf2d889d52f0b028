// backend.c - choosing and creating a backend, and small helpers over the table.
#include "core/backend.h"
#include "core/check.h"
#include "core/log.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// The CUDA backend is a separate shared module so that CPU-only runs never load cuBLAS
// (about 0.5 s and 210 MB per process). It exports:
//   int ivl_cuda_probe(char *msg, size_t n);            GPUs visible (>= 1), else -1 + reason
//   ivl_backend *ivl_cuda_backend_create(int device);
typedef int (*probe_fn)(char *msg, size_t n);
typedef ivl_backend *(*create_fn)(int device);

int ivl_exe_lib_path(const char *file, char *out, size_t n) {
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return -1;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = '\0';   // the executable's folder, e.g. <bundle>/bin
    int w = snprintf(out, n, "%s/../lib/%s", exe, file);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

static void *open_cuda_module(char *why, size_t n) {
    const char *env = getenv("IVL_CUDA_MODULE");
    char beside[4096];
    int have_beside = ivl_exe_lib_path("libivl_cuda.so", beside, sizeof beside) == 0 &&
                      access(beside, F_OK) == 0;
    const char *candidates[4] = {env, have_beside ? beside : NULL,
                                 IVL_CUDA_MODULE_DIR "/libivl_cuda.so", "libivl_cuda.so"};
    int found = 0;   // a module that exists but does not load says more than "not found"
    for (int i = 0; i < 4; i++) {
        if (!candidates[i]) continue;
        void *h = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
        int exists = strchr(candidates[i], '/') && access(candidates[i], F_OK) == 0;
        if (exists || !found) snprintf(why, n, "%s", dlerror());
        found |= exists;
    }
    return NULL;
}

ivl_backend *ivl_backend_create(const char *kind, int device_index) {
    if (!kind || !strcmp(kind, "cpu")) return ivl_backend_cpu_create();
    int want_cuda = !strcmp(kind, "cuda");
    IVL_CHECK(want_cuda || !strcmp(kind, "auto"),
              "unknown backend '%s' (use cpu, cuda or auto)", kind);
    char why[512] = "";
    void *h = open_cuda_module(why, sizeof why);
    if (!h) {
        if (want_cuda)
            ivl_die(3, "--device cuda: this build has no CUDA backend module (%s); rebuild "
                       "with -DIVL_CUDA=ON on a machine with the CUDA toolkit", why);
        return ivl_backend_cpu_create();
    }
    probe_fn probe = (probe_fn)dlsym(h, "ivl_cuda_probe");
    create_fn create = (create_fn)dlsym(h, "ivl_cuda_backend_create");
    IVL_CHECK(probe && create, "CUDA module is missing its entry points");
    if (probe(why, sizeof why) < 1) {
        if (want_cuda)
            ivl_die(3, "--device cuda: no CUDA device (%s); run on a GPU node or use "
                       "--device cpu", why);
        LOG_INFO("no CUDA device (%s); using the CPU backend", why);
        return ivl_backend_cpu_create();
    }
    return create(device_index);
}

int ivl_backend_gpu_count(char *why, size_t n) {
    char w[512] = "";
    void *h = open_cuda_module(w, sizeof w);
    if (!h) {
        snprintf(why, n, "this build has no CUDA backend module (%s); rebuild with "
                 "-DIVL_CUDA=ON on a machine with the CUDA toolkit", w);
        return 0;
    }
    probe_fn probe = (probe_fn)dlsym(h, "ivl_cuda_probe");
    IVL_CHECK(probe, "CUDA module is missing its entry points");
    int count = probe(w, sizeof w);
    snprintf(why, n, "%s", w);
    return count > 0 ? count : 0;
}

void ivl_backend_destroy(ivl_backend *be) {
    if (be && be->destroy) be->destroy(be);
}

ivl_tensor ivl_backend_from_host(ivl_backend *be, const ivl_tensor *src_host) {
    ivl_dtype dt = (src_host->dtype == IVL_I32 || src_host->dtype == IVL_I64 ||
                    src_host->dtype == IVL_U8) ? src_host->dtype : be->dtype;
    ivl_tensor t = be->alloc(be, dt, src_host->ndim, src_host->shape);
    be->upload(be, &t, src_host);
    return t;
}

ivl_tensor ivl_backend_to_host_f32(ivl_backend *be, const ivl_tensor *src) {
    ivl_tensor h = ivl_tensor_host(IVL_F32, src->ndim, src->shape);
    be->download(be, &h, src);
    return h;
}

ivl_tensor ivl_backend_alloc_2d(ivl_backend *be, int64_t rows, int64_t cols) {
    return be->alloc(be, be->dtype, 2, (int64_t[]){rows, cols});
}
