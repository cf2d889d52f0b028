// test_comm_nccl.c - the NCCL table (libivl_nccl.so) gives the same results as the MPI table.
// Each op runs on device buffers through ivl_comm_device_ops() and on host copies through
// ivl_comm_mpi_ops(); values are small integers so every summation order is exact and the
// results must match bit for bit. One GPU per rank (device = local rank).
// Exit 77 (ctest: skipped) when no GPU or no module is usable, unless IVL_REQUIRE_GPU=1.
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "comm_test.h"
#include "core/check.h"

#define CU(call)                                                                          \
    do {                                                                                  \
        cudaError_t e_ = (call);                                                          \
        IVL_CHECK(e_ == cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));            \
    } while (0)

static void *dev_from(const void *host, size_t bytes) {
    void *d = NULL;
    CU(cudaMalloc(&d, bytes ? bytes : 1));
    CU(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice));
    return d;
}

// Device result (after synchronize) equals the host reference, byte for byte.
static void expect_same(const ivl_comm_ops *dops, const ivl_comm_group *g, const void *dev,
                        const void *ref, size_t bytes, const char *what) {
    dops->synchronize(g);
    void *h = malloc(bytes ? bytes : 1);
    CU(cudaMemcpy(h, dev, bytes, cudaMemcpyDeviceToHost));
    EXPECT(memcmp(h, ref, bytes) == 0, "%s: NCCL and MPI results differ", what);
    free(h);
}

static float *pattern(size_t n, int rank, int salt) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)((rank + 1) * salt) + (float)(i % 31);
    return x;
}

static void run_all(const ivl_comm_group *g) {
    const ivl_comm_ops *mops = ivl_comm_mpi_ops(), *dops = ivl_comm_device_ops();
    const int R = g->rank, N = g->size;
    EXPECT(dops && !strcmp(dops->name, "nccl"), "device ops");
    const size_t n = (size_t)1 << 20;

    float *h = pattern(n, R, 3);
    void *d = dev_from(h, n * 4);
    dops->allreduce(g, d, n, IVL_F32, IVL_COMM_SUM);
    mops->allreduce(g, h, n, IVL_F32, IVL_COMM_SUM);
    expect_same(dops, g, d, h, n * 4, "allreduce f32 sum");
    free(h);
    CU(cudaFree(d));

    int32_t im[4] = {R, -R, R * 7 % 3, 5};
    d = dev_from(im, sizeof im);
    dops->allreduce(g, d, 4, IVL_I32, IVL_COMM_MAX);
    mops->allreduce(g, im, 4, IVL_I32, IVL_COMM_MAX);
    expect_same(dops, g, d, im, sizeof im, "allreduce i32 max");
    CU(cudaFree(d));

    // bf16 sum on the device (MPI has none): compare with f32 sums rounded to bf16.
    uint16_t hb[64];
    float ref[64];
    for (int i = 0; i < 64; i++) {
        hb[i] = ivl_f32_to_bf16((float)(R + i));
        ref[i] = (float)(R + i);
    }
    d = dev_from(hb, sizeof hb);
    dops->allreduce(g, d, 64, IVL_BF16, IVL_COMM_SUM);
    mops->allreduce(g, ref, 64, IVL_F32, IVL_COMM_SUM);
    for (int i = 0; i < 64; i++) hb[i] = ivl_f32_to_bf16(ref[i]);
    expect_same(dops, g, d, hb, sizeof hb, "allreduce bf16 sum");
    CU(cudaFree(d));

    const size_t c = 4099;
    float *s = pattern(c, R, 5), *out = calloc(c * N, sizeof *out);
    void *ds = dev_from(s, c * 4), *dout = dev_from(out, c * N * 4);
    dops->allgather(g, ds, dout, c, IVL_F32);
    mops->allgather(g, s, out, c, IVL_F32);
    expect_same(dops, g, dout, out, c * N * 4, "allgather");
    CU(cudaFree(ds));
    CU(cudaFree(dout));
    free(s);
    free(out);

    float *big = pattern(c * N, R, 7), *piece = calloc(c, sizeof *piece);
    void *dbig = dev_from(big, c * N * 4), *dpiece = dev_from(piece, c * 4);
    dops->reduce_scatter(g, dbig, dpiece, c, IVL_F32, IVL_COMM_SUM);
    mops->reduce_scatter(g, big, piece, c, IVL_F32, IVL_COMM_SUM);
    expect_same(dops, g, dpiece, piece, c * 4, "reduce_scatter");
    CU(cudaFree(dbig));
    CU(cudaFree(dpiece));
    free(big);
    free(piece);

    for (int root = 0; root < N; root++) {
        float *b = pattern(c, R, 11);
        void *db = dev_from(b, c * 4);
        dops->bcast(g, db, c, IVL_F32, root);
        mops->bcast(g, b, c, IVL_F32, root);
        expect_same(dops, g, db, b, c * 4, "bcast");
        CU(cudaFree(db));
        free(b);
    }

    // Ring shift (to self at one rank), on a stream of the caller's.
    cudaStream_t st;
    CU(cudaStreamCreate(&st));
    ivl_comm_group_set_stream((ivl_comm_group *)g, st);
    float *a = pattern(c, R, 13), *r = calloc(c, sizeof *r);
    void *da = dev_from(a, c * 4), *dr = dev_from(r, c * 4);
    dops->sendrecv(g, da, c, (R + 1) % N, dr, c, (R + N - 1) % N, IVL_F32);
    mops->sendrecv(g, a, c, (R + 1) % N, r, c, (R + N - 1) % N, IVL_F32);
    expect_same(dops, g, dr, r, c * 4, "sendrecv");
    if (N > 1) {   // pipeline chain 0 -> 1 -> ... on device
        if (R > 0) dops->recv(g, dr, c, IVL_F32, R - 1);
        if (R < N - 1) dops->send(g, R == 0 ? da : dr, c, IVL_F32, R + 1);
        if (R > 0) mops->recv(g, r, c, IVL_F32, R - 1);
        if (R < N - 1) mops->send(g, R == 0 ? a : r, c, IVL_F32, R + 1);
        if (R > 0) expect_same(dops, g, dr, r, c * 4, "send/recv chain");
    }
    ivl_comm_group_set_stream((ivl_comm_group *)g, NULL);
    dops->barrier(g);
    CU(cudaStreamDestroy(st));
    CU(cudaFree(da));
    CU(cudaFree(dr));
    free(a);
    free(r);
}

int main(int argc, char **argv) {
    ivl_comm_init(&argc, &argv);
    ivl_comm_group w;
    ivl_comm_group_world(&w);
    if (ivl_comm_group_init_device(&w, ivl_comm_local_rank()) != 0) {
        const char *req = getenv("IVL_REQUIRE_GPU");
        if (w.rank == 0) printf("test_comm_nccl: skipped: %s\n", ivl_last_error());
        ivl_comm_group_free(&w);
        if (req && !strcmp(req, "1")) {
            g_test_failures++;
            return comm_test_finish("test_comm_nccl");
        }
        ivl_comm_finalize();
        return 77;
    }
    run_all(&w);
    ivl_comm_group_free(&w);
    return comm_test_finish("test_comm_nccl");
}
