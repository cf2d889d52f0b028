// ops_mpi.c - the collectives table on host memory with MPI (the CPU path, and the reference
// the NCCL table is compared with).
#include "comm/comm.h"
#include "comm/mpi_check.h"
#include "core/check.h"

#include <limits.h>
#include <string.h>

// Tag for tensor traffic; protobuf messages use their own tags (comm/msg.c), so a message can
// never be taken for a tensor or the other way round.
#define IVL_TAG_DATA 100

MPI_Datatype ivl_comm_mpi_type(ivl_dtype dt) {
    switch (dt) {
    case IVL_F32:  return MPI_FLOAT;
    case IVL_BF16: return MPI_UINT16_T;   // moved as bits; no reductions (see check_reducible)
    case IVL_F16:  return MPI_UINT16_T;
    case IVL_I32:  return MPI_INT32_T;
    case IVL_I64:  return MPI_INT64_T;
    case IVL_U8:   return MPI_UINT8_T;
    case IVL_Q8:
    case IVL_Q4:   break;   // quantized weights never travel
    }
    ivl_fatal(__FILE__, __LINE__, __func__, "unknown dtype %d", (int)dt);
}

static MPI_Op mpi_op(ivl_comm_redop op) {
    switch (op) {
    case IVL_COMM_SUM: return MPI_SUM;
    case IVL_COMM_MAX: return MPI_MAX;
    }
    ivl_fatal(__FILE__, __LINE__, __func__, "unknown reduction %d", (int)op);
}

// MPI has no bf16/f16 arithmetic; the CPU backend computes in f32 anyway.
static void check_reducible(const ivl_comm_group *g, ivl_dtype dt, const char *what) {
    IVL_CHECK(dt == IVL_F32 || dt == IVL_I32 || dt == IVL_I64,
              "%s on group '%s': the MPI backend reduces f32, i32 and i64 only, not %s; "
              "convert to f32 first", what, g->name, ivl_dtype_name(dt));
}

// MPI 3 counts are int; the engine's largest message (a [tiles*256, D] embedding) is far
// below, so a bigger one is a bug, not something to split.
static int icount(const ivl_comm_group *g, size_t count, const char *what) {
    IVL_CHECK(count <= (size_t)INT_MAX, "%s on group '%s': %zu elements is more than MPI's "
              "int count allows (%d)", what, g->name, count, INT_MAX);
    return (int)count;
}

static void check_peer(const ivl_comm_group *g, int peer, const char *what) {
    IVL_CHECK(peer >= 0 && peer < g->size, "%s on group '%s': peer/root %d is not a rank of "
              "the group (size %d)", what, g->name, peer, g->size);
}

static void mpi_allreduce(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt,
                          ivl_comm_redop op) {
    check_reducible(g, dt, "allreduce");
    int n = icount(g, count, "allreduce");
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, n, ivl_comm_mpi_type(dt), mpi_op(op), g->comm));
}

static void mpi_allgather(const ivl_comm_group *g, const void *send, void *recv, size_t count,
                          ivl_dtype dt) {
    int n = icount(g, count, "allgather");
    icount(g, count * (size_t)g->size, "allgather");
    MPI_Datatype t = ivl_comm_mpi_type(dt);
    const char *mine = (const char *)recv + (size_t)g->rank * count * ivl_dtype_size(dt);
    if (send == mine) send = MPI_IN_PLACE;
    MPI_CHECK(MPI_Allgather(send, n, t, recv, n, t, g->comm));
}

static void mpi_reduce_scatter(const ivl_comm_group *g, const void *send, void *recv,
                               size_t count, ivl_dtype dt, ivl_comm_redop op) {
    check_reducible(g, dt, "reduce_scatter");
    int n = icount(g, count, "reduce_scatter");
    icount(g, count * (size_t)g->size, "reduce_scatter");
    MPI_CHECK(MPI_Reduce_scatter_block(send, recv, n, ivl_comm_mpi_type(dt), mpi_op(op),
                                       g->comm));
}

static void mpi_bcast(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt, int root) {
    check_peer(g, root, "bcast");
    MPI_CHECK(MPI_Bcast(buf, icount(g, count, "bcast"), ivl_comm_mpi_type(dt), root, g->comm));
}

static void mpi_send(const ivl_comm_group *g, const void *buf, size_t count, ivl_dtype dt,
                     int peer) {
    check_peer(g, peer, "send");
    MPI_CHECK(MPI_Send(buf, icount(g, count, "send"), ivl_comm_mpi_type(dt), peer, IVL_TAG_DATA,
                       g->comm));
}

// A shorter message than expected is as much a protocol bug as a longer one (which MPI
// reports as MPI_ERR_TRUNCATE), so both end the job.
static void check_received(const ivl_comm_group *g, const MPI_Status *st, MPI_Datatype t,
                           size_t expected, int peer) {
    int got = 0;
    MPI_CHECK(MPI_Get_count(st, t, &got));
    IVL_CHECK((size_t)got == expected, "recv on group '%s' from rank %d: expected %zu elements, "
              "got %d", g->name, peer, expected, got);
}

static void mpi_recv(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt, int peer) {
    check_peer(g, peer, "recv");
    MPI_Datatype t = ivl_comm_mpi_type(dt);
    MPI_Status st;
    MPI_CHECK(MPI_Recv(buf, icount(g, count, "recv"), t, peer, IVL_TAG_DATA, g->comm, &st));
    check_received(g, &st, t, count, peer);
}

static void mpi_sendrecv(const ivl_comm_group *g, const void *send, size_t send_count, int dst,
                         void *recv, size_t recv_count, int src, ivl_dtype dt) {
    check_peer(g, dst, "sendrecv");
    check_peer(g, src, "sendrecv");
    MPI_Datatype t = ivl_comm_mpi_type(dt);
    MPI_Status st;
    MPI_CHECK(MPI_Sendrecv(send, icount(g, send_count, "sendrecv"), t, dst, IVL_TAG_DATA, recv,
                           icount(g, recv_count, "sendrecv"), t, src, IVL_TAG_DATA, g->comm,
                           &st));
    check_received(g, &st, t, recv_count, src);
}

static void mpi_barrier(const ivl_comm_group *g) { MPI_CHECK(MPI_Barrier(g->comm)); }

static void mpi_synchronize(const ivl_comm_group *g) { (void)g; }

static const ivl_comm_ops k_mpi_ops = {
    .name = "mpi",
    .allreduce = mpi_allreduce,
    .allgather = mpi_allgather,
    .reduce_scatter = mpi_reduce_scatter,
    .bcast = mpi_bcast,
    .send = mpi_send,
    .recv = mpi_recv,
    .sendrecv = mpi_sendrecv,
    .barrier = mpi_barrier,
    .synchronize = mpi_synchronize,
};

const ivl_comm_ops *ivl_comm_mpi_ops(void) { return &k_mpi_ops; }
