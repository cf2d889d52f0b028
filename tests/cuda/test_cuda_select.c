// test_cuda_select.c - backend selection without a GPU, and what a CPU run loads.
//   test_cuda_select cpu    -> CPU backend; libcublas/libcudart must not be in the process
//   test_cuda_select auto   -> "cuda" if a GPU is usable, else "cpu" (prints which)
//   test_cuda_select cuda   -> the CUDA backend, or the job ends (non-zero) with a message
// Prints "backend <name>" and "cublas-loaded <0|1>" (from /proc/self/maps) on success.
#include "core/backend.h"
#include "core/check.h"

#include <stdio.h>
#include <string.h>

static int maps_contain(const char *what) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, what)) found = 1;
    fclose(f);
    return found;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s cpu|auto|cuda\n", argv[0]);
        return 2;
    }
    ivl_backend *be = ivl_backend_create(argv[1], 0);
    IVL_CHECK(be && be->name, "no backend returned");
    int cublas = maps_contain("libcublas");
    printf("backend %s\ndevice %s\ncublas-loaded %d\n", be->name, be->device_name, cublas);
    if (!strcmp(argv[1], "cpu")) {
        IVL_CHECK(!strcmp(be->name, "cpu"), "asked for cpu, got %s", be->name);
        IVL_CHECK(cublas == 0, "a CPU run has libcublas mapped (see /proc/self/maps)");
        IVL_CHECK(maps_contain("libcudart") == 0, "a CPU run has libcudart mapped");
    }
    if (!strcmp(argv[1], "cuda")) IVL_CHECK(!strcmp(be->name, "cuda"), "asked for cuda, got %s", be->name);
    // A tiny op through the table proves the backend is usable.
    ivl_tensor h = ivl_tensor_host_2d(IVL_F32, 2, 3);
    for (int i = 0; i < 6; i++) ((float *)h.data)[i] = (float)i;
    ivl_tensor d = ivl_backend_from_host(be, &h);
    be->scale(be, &d, 2.0f);
    ivl_tensor back = ivl_backend_to_host_f32(be, &d);
    for (int i = 0; i < 6; i++)
        IVL_CHECK(((float *)back.data)[i] == 2.0f * i, "scale gave %g at %d",
                  ((float *)back.data)[i], i);
    be->free(be, &d);
    ivl_tensor_free_host(&h);
    ivl_tensor_free_host(&back);
    ivl_backend_destroy(be);
    return 0;
}
