// test_comm_collectives.c - the MPI collectives table against values computed by hand, on the
// world group (run at np 1, 2, 4), plus bootstrap facts (local rank) and the device-loading
// failure path (no GPU here: every rank must get -1 and a message, none may hang).
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "comm_test.h"
#include "core/check.h"

static void test_allreduce(const ivl_comm_ops *ops, const ivl_comm_group *g) {
    const int R = g->rank, N = g->size;
    const size_t counts[] = {1, 7, 1000, (size_t)1 << 18};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        size_t n = counts[c];
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++) x[i] = (float)(R + 1) * 0.5f + (float)(i % 97);
        ops->allreduce(g, x, n, IVL_F32, IVL_COMM_SUM);
        // sum over r of ((r+1)/2 + i%97) = N(N+1)/4 + N*(i%97): exact in f32 at these sizes.
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            if (x[i] != (float)N * (N + 1) / 4.0f + (float)N * (float)(i % 97)) bad++;
        EXPECT(bad == 0, "allreduce f32 sum, %zu elements: %zu wrong (x[0] = %g)", n, bad, x[0]);
        free(x);
    }
    int32_t m[3] = {R * 10, -R, (R * 7) % 5};
    ops->allreduce(g, m, 3, IVL_I32, IVL_COMM_MAX);
    int exp2 = 0;
    for (int r = 0; r < N; r++) exp2 = (r * 7) % 5 > exp2 ? (r * 7) % 5 : exp2;
    EXPECT(m[0] == (N - 1) * 10 && m[1] == 0 && m[2] == exp2, "allreduce i32 max: %d %d %d",
           m[0], m[1], m[2]);
    int64_t big = ((int64_t)1 << 40) + R;
    ops->allreduce(g, &big, 1, IVL_I64, IVL_COMM_SUM);
    EXPECT(big == ((int64_t)N << 40) + (int64_t)N * (N - 1) / 2, "allreduce i64 sum: %lld",
           (long long)big);
    float fm = (float)R - 0.25f;
    ops->allreduce(g, &fm, 1, IVL_F32, IVL_COMM_MAX);
    EXPECT(fm == (float)(N - 1) - 0.25f, "allreduce f32 max: %g", fm);
}

static void test_allgather(const ivl_comm_ops *ops, const ivl_comm_group *g) {
    const int R = g->rank, N = g->size;
    const size_t n = 513;
    float *send = malloc(n * sizeof *send), *recv = malloc(n * N * sizeof *recv);
    for (size_t i = 0; i < n; i++) send[i] = (float)(R * 1000 + (int)i);
    ops->allgather(g, send, recv, n, IVL_F32);
    size_t bad = 0;
    for (int r = 0; r < N; r++)
        for (size_t i = 0; i < n; i++)
            if (recv[r * n + i] != (float)(r * 1000 + (int)i)) bad++;
    EXPECT(bad == 0, "allgather f32: %zu wrong", bad);
    // In place: this rank's slice already sits in the output.
    memset(recv, 0, n * N * sizeof *recv);
    for (size_t i = 0; i < n; i++) recv[R * n + i] = (float)(R * 1000 + (int)i);
    ops->allgather(g, recv + R * n, recv, n, IVL_F32);
    bad = 0;
    for (int r = 0; r < N; r++)
        for (size_t i = 0; i < n; i++)
            if (recv[r * n + i] != (float)(r * 1000 + (int)i)) bad++;
    EXPECT(bad == 0, "allgather f32 in place: %zu wrong", bad);
    // bf16 travels as raw bits.
    uint16_t h[2] = {ivl_f32_to_bf16((float)R + 0.5f), 0xffc1}, hall[16];
    ops->allgather(g, h, hall, 2, IVL_BF16);
    for (int r = 0; r < N; r++)
        EXPECT(ivl_bf16_to_f32(hall[2 * r]) == (float)r + 0.5f && hall[2 * r + 1] == 0xffc1,
               "allgather bf16 from rank %d: %04x %04x", r, hall[2 * r], hall[2 * r + 1]);
    free(send);
    free(recv);
}

static void test_reduce_scatter(const ivl_comm_ops *ops, const ivl_comm_group *g) {
    const int R = g->rank, N = g->size;
    const size_t n = 300;
    float *send = malloc(n * N * sizeof *send), *recv = malloc(n * sizeof *recv);
    for (int b = 0; b < N; b++)
        for (size_t i = 0; i < n; i++) send[b * n + i] = (float)(R + 1) * (float)(b * 3 + 1) + (float)i;
    ops->reduce_scatter(g, send, recv, n, IVL_F32, IVL_COMM_SUM);
    // block R summed over ranks r: (R*3+1) * N(N+1)/2 + N*i
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (recv[i] != (float)(R * 3 + 1) * (float)(N * (N + 1) / 2) + (float)N * (float)i) bad++;
    EXPECT(bad == 0, "reduce_scatter f32 sum: %zu wrong (recv[0] = %g)", bad, recv[0]);
    int32_t s[8], r1 = -1;
    for (int b = 0; b < N; b++) s[b] = (R == b) ? 100 + b : b;   // max on block b is rank b's
    ops->reduce_scatter(g, s, &r1, 1, IVL_I32, IVL_COMM_MAX);
    EXPECT(r1 == 100 + R, "reduce_scatter i32 max: %d", r1);
    free(send);
    free(recv);
}

static void test_bcast(const ivl_comm_ops *ops, const ivl_comm_group *g) {
    for (int root = 0; root < g->size; root++) {
        int64_t v[5];
        for (int i = 0; i < 5; i++) v[i] = g->rank == root ? (int64_t)root * 100 + i : -1;
        ops->bcast(g, v, 5, IVL_I64, root);
        int ok = 1;
        for (int i = 0; i < 5; i++) ok &= v[i] == (int64_t)root * 100 + i;
        EXPECT(ok, "bcast from root %d: v[0] = %lld", root, (long long)v[0]);
    }
}

static void test_point_to_point(const ivl_comm_ops *ops, const ivl_comm_group *g) {
    const int R = g->rank, N = g->size;
    const size_t n = (size_t)1 << 20;   // 4 MB: past the eager limit, so ordering matters
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) a[i] = (float)R + (float)(i & 1023);
    // Pipeline-style chain: 0 -> 1 -> ... -> N-1, each stage adds its rank.
    if (N > 1) {
        if (R > 0) ops->recv(g, b, n, IVL_F32, R - 1);
        else memset(b, 0, n * sizeof *b);
        for (size_t i = 0; i < n; i++) b[i] += (float)R;
        if (R < N - 1) ops->send(g, b, n, IVL_F32, R + 1);
        if (R == N - 1) EXPECT(b[5] == (float)(N * (N - 1) / 2), "chain send/recv: %g", b[5]);
    }
    // Ring shift: receive from the left what it sent to its right.
    int right = (R + 1) % N, left = (R + N - 1) % N;
    ops->sendrecv(g, a, n, right, b, n, left, IVL_F32);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (float)left + (float)(i & 1023)) bad++;
    EXPECT(bad == 0, "sendrecv ring from %d: %zu wrong", left, bad);
    free(a);
    free(b);
}

int main(int argc, char **argv) {
    ivl_comm_init(&argc, &argv);
    const int N = ivl_comm_world_size();
    EXPECT(N <= 8, "this test supports up to 8 ranks");

    // Bootstrap: one node here, so the local rank is the world rank.
    EXPECT(ivl_comm_local_rank() == ivl_comm_world_rank() && ivl_comm_local_size() == N,
           "local rank %d/%d vs world %d/%d", ivl_comm_local_rank(), ivl_comm_local_size(),
           ivl_comm_world_rank(), N);

    ivl_comm_group world;
    ivl_comm_group_world(&world);
    EXPECT(world.rank == ivl_comm_world_rank() && world.size == N, "world group %d/%d",
           world.rank, world.size);
    for (int r = 0; r < N; r++) EXPECT(world.world_ranks[r] == r, "world_ranks[%d]", r);

    const ivl_comm_ops *ops = ivl_comm_mpi_ops();
    EXPECT(!strcmp(ops->name, "mpi"), "name %s", ops->name);
    test_allreduce(ops, &world);
    test_allgather(ops, &world);
    test_reduce_scatter(ops, &world);
    test_bcast(ops, &world);
    test_point_to_point(ops, &world);
    ops->barrier(&world);
    ops->synchronize(&world);

    // A split group: even and odd world ranks, ordered backwards; collectives stay inside.
    ivl_comm_group half;
    ivl_comm_group_split(&half, &world, world.rank % 2, -world.rank, "half");
    int expect_size = (N - world.rank % 2 + 1) / 2;
    EXPECT(half.size == expect_size, "half size %d, expected %d", half.size, expect_size);
    EXPECT(half.world_ranks[0] >= half.world_ranks[half.size - 1], "half order reversed");
    int32_t v = world.rank;
    ops->allreduce(&half, &v, 1, IVL_I32, IVL_COMM_SUM);
    int ev = 0;
    for (int r = world.rank % 2; r < N; r += 2) ev += r;
    EXPECT(v == ev, "allreduce on half group: %d, expected %d", v, ev);
    test_allgather(ops, &half);

    // Without a GPU (and, in a CPU build, without the module) every rank gets -1 and a
    // message, and nobody hangs. With a GPU (device runs) the communicator must exist.
    EXPECT(ivl_comm_device_ops() == NULL, "device ops before init");
    int rc = ivl_comm_group_init_device(&half, ivl_comm_local_rank());
    if (rc == 0) {
        EXPECT(half.dev != NULL && ivl_comm_device_ops() != NULL, "device init without state");
        if (world.rank == 0) printf("init_device: NCCL communicator made (GPU present)\n");
    } else {
        EXPECT(rc == -1, "init_device returned %d", rc);
        EXPECT(strstr(ivl_last_error(), "NCCL") || strstr(ivl_last_error(), "GPU") ||
                   strstr(ivl_last_error(), "CUDA"),
               "init_device message: %s", ivl_last_error());
        EXPECT(half.dev == NULL, "no device communicator after a failed init");
        if (world.rank == 0) printf("init_device without a GPU: %s\n", ivl_last_error());
    }

    ivl_comm_group_free(&half);
    ivl_comm_group_free(&world);
    return comm_test_finish("test_comm_collectives");
}
