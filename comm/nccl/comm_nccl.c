// comm_nccl.c - the NCCL module (libivl_nccl.so): the collectives table on device memory.
// Built only with IVL_CUDA and loaded with dlopen by comm/device.c, so CPU runs never load
// libcudart or libnccl. Uses the CUDA runtime API only: linking the driver (-lcuda) would
// make the module fail to load on machines without a driver (docs: env.md G3).
//
// Each group's device communicator holds the ncclComm_t and the stream its ops enqueue on.
// Ops are asynchronous on that stream (ordered with kernels on it); synchronize() waits.
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/device.h"

static const ivl_nccl_host *g_host;

#define CUDA_CHECK(call)                                                                  \
    do {                                                                                  \
        cudaError_t ivl_cuda_rc_ = (call);                                                \
        if (ivl_cuda_rc_ != cudaSuccess)                                                  \
            g_host->fatal_call("CUDA", #call, cudaGetErrorString(ivl_cuda_rc_), __FILE__, \
                               __LINE__, __func__);                                       \
    } while (0)

#define NCCL_CHECK(call)                                                                  \
    do {                                                                                  \
        ncclResult_t ivl_nccl_rc_ = (call);                                               \
        if (ivl_nccl_rc_ != ncclSuccess) nccl_fail(ivl_nccl_rc_, #call, __FILE__, __LINE__, __func__); \
    } while (0)

static _Noreturn void nccl_fail(ncclResult_t rc, const char *call, const char *file, int line,
                                const char *func) {
    char msg[1024];
    const char *last = ncclGetLastError(NULL);
    snprintf(msg, sizeof msg, "%s%s%s", ncclGetErrorString(rc), last && *last ? ": " : "",
             last ? last : "");
    g_host->fatal_call("NCCL", call, msg, file, line, func);
}

typedef struct nccl_dev {
    ncclComm_t comm;
    cudaStream_t stream;       // the one ops enqueue on
    cudaStream_t own_stream;   // created here, destroyed in comm_destroy
    int device;
    float *scratch;            // one float on the device, for barrier
} nccl_dev;

static nccl_dev *dev_of(const ivl_comm_group *g) {
    if (!g->dev)
        g_host->fatal_call("NCCL", "device collective", "the group has no device communicator "
                           "(call ivl_comm_group_init_device first)", __FILE__, __LINE__, g->name);
    return (nccl_dev *)g->dev;
}

static ncclDataType_t nccl_type(ivl_dtype dt) {
    switch (dt) {
    case IVL_F32:  return ncclFloat32;
    case IVL_BF16: return ncclBfloat16;
    case IVL_F16:  return ncclFloat16;
    case IVL_I32:  return ncclInt32;
    case IVL_I64:  return ncclInt64;
    case IVL_U8:   return ncclUint8;
    case IVL_Q8:
    case IVL_Q4:   break;   // quantized weights never travel
    }
    g_host->fatal_call("NCCL", "dtype", "unknown ivl_dtype", __FILE__, __LINE__, __func__);
}

static ncclRedOp_t nccl_op(ivl_comm_redop op) {
    return op == IVL_COMM_MAX ? ncclMax : ncclSum;
}

static void check_peer(const ivl_comm_group *g, int peer, const char *what) {
    if (peer < 0 || peer >= g->size) {
        char msg[160];
        snprintf(msg, sizeof msg, "peer/root %d is not a rank of group '%s' (size %d)", peer,
                 g->name, g->size);
        g_host->fatal_call("NCCL", what, msg, __FILE__, __LINE__, __func__);
    }
}

static void d_allreduce(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt,
                        ivl_comm_redop op) {
    nccl_dev *d = dev_of(g);
    NCCL_CHECK(ncclAllReduce(buf, buf, count, nccl_type(dt), nccl_op(op), d->comm, d->stream));
}

static void d_allgather(const ivl_comm_group *g, const void *send, void *recv, size_t count,
                        ivl_dtype dt) {
    nccl_dev *d = dev_of(g);   // NCCL detects the in-place case (send == recv + rank*count)
    NCCL_CHECK(ncclAllGather(send, recv, count, nccl_type(dt), d->comm, d->stream));
}

static void d_reduce_scatter(const ivl_comm_group *g, const void *send, void *recv, size_t count,
                             ivl_dtype dt, ivl_comm_redop op) {
    nccl_dev *d = dev_of(g);
    NCCL_CHECK(ncclReduceScatter(send, recv, count, nccl_type(dt), nccl_op(op), d->comm,
                                 d->stream));
}

static void d_bcast(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt, int root) {
    nccl_dev *d = dev_of(g);
    check_peer(g, root, "bcast");
    NCCL_CHECK(ncclBroadcast(buf, buf, count, nccl_type(dt), root, d->comm, d->stream));
}

static void d_send(const ivl_comm_group *g, const void *buf, size_t count, ivl_dtype dt,
                   int peer) {
    nccl_dev *d = dev_of(g);
    check_peer(g, peer, "send");
    NCCL_CHECK(ncclSend(buf, count, nccl_type(dt), peer, d->comm, d->stream));
}

static void d_recv(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt, int peer) {
    nccl_dev *d = dev_of(g);
    check_peer(g, peer, "recv");
    NCCL_CHECK(ncclRecv(buf, count, nccl_type(dt), peer, d->comm, d->stream));
}

static void d_sendrecv(const ivl_comm_group *g, const void *send, size_t send_count, int dst,
                       void *recv, size_t recv_count, int src, ivl_dtype dt) {
    nccl_dev *d = dev_of(g);
    check_peer(g, dst, "sendrecv");
    check_peer(g, src, "sendrecv");
    // Inside one group call NCCL posts both sides together, so a ring cannot deadlock.
    NCCL_CHECK(ncclGroupStart());
    NCCL_CHECK(ncclSend(send, send_count, nccl_type(dt), dst, d->comm, d->stream));
    NCCL_CHECK(ncclRecv(recv, recv_count, nccl_type(dt), src, d->comm, d->stream));
    NCCL_CHECK(ncclGroupEnd());
}

static void d_synchronize(const ivl_comm_group *g) {
    CUDA_CHECK(cudaStreamSynchronize(dev_of(g)->stream));
}

static void d_barrier(const ivl_comm_group *g) {
    nccl_dev *d = dev_of(g);
    NCCL_CHECK(ncclAllReduce(d->scratch, d->scratch, 1, ncclFloat32, ncclSum, d->comm,
                             d->stream));
    CUDA_CHECK(cudaStreamSynchronize(d->stream));
}

static const ivl_comm_ops k_nccl_ops = {
    .name = "nccl",
    .allreduce = d_allreduce,
    .allgather = d_allgather,
    .reduce_scatter = d_reduce_scatter,
    .bcast = d_bcast,
    .send = d_send,
    .recv = d_recv,
    .sendrecv = d_sendrecv,
    .barrier = d_barrier,
    .synchronize = d_synchronize,
};

static int m_get_unique_id(void *id) {
    ncclUniqueId u;
    ncclResult_t rc = ncclGetUniqueId(&u);
    if (rc != ncclSuccess)
        return g_host->errorf("ncclGetUniqueId: %s", ncclGetErrorString(rc));
    memcpy(id, &u, sizeof u);
    return 0;
}

static int m_use_device(int device) {
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    // No driver gives cudaErrorInsufficientDriver (35), not cudaErrorNoDevice: any error
    // means "no usable GPU".
    if (rc != cudaSuccess)
        return g_host->errorf("no usable CUDA GPU: cudaGetDeviceCount: %s",
                              cudaGetErrorString(rc));
    if (device < 0 || device >= n)
        return g_host->errorf("CUDA device %d does not exist (this node has %d); one rank per "
                              "GPU: start at most %d ranks per node", device, n, n);
    rc = cudaSetDevice(device);
    if (rc != cudaSuccess)
        return g_host->errorf("cudaSetDevice(%d): %s", device, cudaGetErrorString(rc));
    return 0;
}

static void *m_comm_create(const void *id, int nranks, int rank) {
    nccl_dev *d = calloc(1, sizeof *d);
    if (!d) g_host->fatal_call("NCCL", "calloc", "out of host memory", __FILE__, __LINE__, __func__);
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    CUDA_CHECK(cudaGetDevice(&d->device));
    NCCL_CHECK(ncclCommInitRank(&d->comm, nranks, u, rank));
    CUDA_CHECK(cudaStreamCreateWithFlags(&d->own_stream, cudaStreamNonBlocking));
    d->stream = d->own_stream;
    CUDA_CHECK(cudaMalloc((void **)&d->scratch, sizeof(float)));
    CUDA_CHECK(cudaMemset(d->scratch, 0, sizeof(float)));
    return d;
}

static void m_comm_destroy(void *p) {
    nccl_dev *d = p;
    if (!d) return;
    CUDA_CHECK(cudaStreamSynchronize(d->stream));
    NCCL_CHECK(ncclCommDestroy(d->comm));
    CUDA_CHECK(cudaFree(d->scratch));
    CUDA_CHECK(cudaStreamDestroy(d->own_stream));
    free(d);
}

static void m_set_stream(void *p, void *stream) {
    nccl_dev *d = p;
    d->stream = stream ? (cudaStream_t)stream : d->own_stream;
}

static char g_version[96];

static ivl_nccl_module g_module = {
    .abi = IVL_NCCL_MODULE_ABI,
    .id_size = sizeof(ncclUniqueId),
    .version = g_version,
    .get_unique_id = m_get_unique_id,
    .use_device = m_use_device,
    .comm_create = m_comm_create,
    .comm_destroy = m_comm_destroy,
    .set_stream = m_set_stream,
    .ops = &k_nccl_ops,
};

__attribute__((visibility("default"))) const ivl_nccl_module *
ivl_nccl_module_get(const ivl_nccl_host *host) {
    g_host = host;
    int nv = 0, rv = 0;
    ncclGetVersion(&nv);
    cudaRuntimeGetVersion(&rv);
    snprintf(g_version, sizeof g_version, "NCCL %d.%d.%d, CUDA runtime %d", nv / 10000,
             (nv / 100) % 100, nv % 100, rv);
    return &g_module;
}
