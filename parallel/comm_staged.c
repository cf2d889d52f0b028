// comm_staged.c - see comm_staged.h.
#include "parallel/comm_staged.h"
#include "core/check.h"

#include <string.h>

static ivl_backend *g_be;

static int is_float(ivl_dtype dt) { return dt == IVL_F32 || dt == IVL_BF16 || dt == IVL_F16; }

// A backend tensor over count elements at p (a view: no memory of its own).
static ivl_tensor dev_view(const void *p, size_t count, ivl_dtype dt) {
    ivl_tensor t = ivl_tensor_desc(dt, 1, (int64_t[]){(int64_t)count});
    t.data = (void *)p;
    t.loc = IVL_DEVICE;
    return t;
}

// Host copy of a device buffer, as dtype host_dt (a conversion for floats, else raw).
static ivl_tensor to_host(const void *p, size_t count, ivl_dtype dt, ivl_dtype host_dt) {
    ivl_tensor d = dev_view(p, count, dt);
    ivl_tensor h = ivl_tensor_host(host_dt, 1, (int64_t[]){(int64_t)count});
    if (count) g_be->download(g_be, &h, &d);
    return h;
}

static void from_host(void *p, size_t count, ivl_dtype dt, ivl_tensor *h) {
    ivl_tensor d = dev_view(p, count, dt);
    if (count) g_be->upload(g_be, &d, h);
    ivl_tensor_free_host(h);
}

// Reductions need an MPI type with arithmetic: bf16/f16 travel as f32.
static ivl_dtype reduce_dt(ivl_dtype dt) { return is_float(dt) ? IVL_F32 : dt; }

static void st_allreduce(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt,
                         ivl_comm_redop op) {
    ivl_tensor h = to_host(buf, count, dt, reduce_dt(dt));
    ivl_comm_mpi_ops()->allreduce(g, h.data, count, h.dtype, op);
    from_host(buf, count, dt, &h);
}

static void st_allgather(const ivl_comm_group *g, const void *send, void *recv, size_t count,
                         ivl_dtype dt) {
    ivl_tensor s = to_host(send, count, dt, dt);
    ivl_tensor r = ivl_tensor_host(dt, 1, (int64_t[]){(int64_t)(count * (size_t)g->size)});
    ivl_comm_mpi_ops()->allgather(g, s.data, r.data, count, dt);
    ivl_tensor_free_host(&s);
    from_host(recv, count * (size_t)g->size, dt, &r);
}

static void st_reduce_scatter(const ivl_comm_group *g, const void *send, void *recv,
                              size_t count, ivl_dtype dt, ivl_comm_redop op) {
    ivl_tensor s = to_host(send, count * (size_t)g->size, dt, reduce_dt(dt));
    ivl_tensor r = ivl_tensor_host(s.dtype, 1, (int64_t[]){(int64_t)count});
    ivl_comm_mpi_ops()->reduce_scatter(g, s.data, r.data, count, s.dtype, op);
    ivl_tensor_free_host(&s);
    from_host(recv, count, dt, &r);
}

static void st_bcast(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt, int root) {
    ivl_tensor h = g->rank == root ? to_host(buf, count, dt, dt)
                                   : ivl_tensor_host(dt, 1, (int64_t[]){(int64_t)count});
    ivl_comm_mpi_ops()->bcast(g, h.data, count, dt, root);
    if (g->rank == root)
        ivl_tensor_free_host(&h);
    else
        from_host(buf, count, dt, &h);
}

static void st_send(const ivl_comm_group *g, const void *buf, size_t count, ivl_dtype dt,
                    int peer) {
    ivl_tensor h = to_host(buf, count, dt, dt);
    ivl_comm_mpi_ops()->send(g, h.data, count, dt, peer);
    ivl_tensor_free_host(&h);
}

static void st_recv(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt, int peer) {
    ivl_tensor h = ivl_tensor_host(dt, 1, (int64_t[]){(int64_t)count});
    ivl_comm_mpi_ops()->recv(g, h.data, count, dt, peer);
    from_host(buf, count, dt, &h);
}

static void st_sendrecv(const ivl_comm_group *g, const void *send, size_t send_count, int dst,
                        void *recv, size_t recv_count, int src, ivl_dtype dt) {
    ivl_tensor s = to_host(send, send_count, dt, dt);
    ivl_tensor r = ivl_tensor_host(dt, 1, (int64_t[]){(int64_t)recv_count});
    ivl_comm_mpi_ops()->sendrecv(g, s.data, send_count, dst, r.data, recv_count, src, dt);
    ivl_tensor_free_host(&s);
    from_host(recv, recv_count, dt, &r);
}

static void st_barrier(const ivl_comm_group *g) { ivl_comm_mpi_ops()->barrier(g); }

// Every op above leaves its result uploaded on the backend's stream, in order with the ops
// that follow; a host reader synchronises through download as usual.
static void st_synchronize(const ivl_comm_group *g) {
    (void)g;
    g_be->synchronize(g_be);
}

static const ivl_comm_ops k_staged_ops = {
    .name = "mpi",
    .allreduce = st_allreduce,
    .allgather = st_allgather,
    .reduce_scatter = st_reduce_scatter,
    .bcast = st_bcast,
    .send = st_send,
    .recv = st_recv,
    .sendrecv = st_sendrecv,
    .barrier = st_barrier,
    .synchronize = st_synchronize,
};

const ivl_comm_ops *ivl_comm_staged_ops(ivl_backend *be) {
    IVL_CHECK(!g_be || g_be == be, "the staged collectives serve one backend per process");
    g_be = be;
    return &k_staged_ops;
}
