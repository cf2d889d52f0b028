// comm_timer.c - see comm_timer.h.
#include "bench/driver/comm_timer.h"

#include <string.h>
#include <time.h>

static ivl_comm_totals g_tot;
static int g_on;
static int g_depth;   // > 0 inside a timed call: nested MPI calls are not counted twice

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *ivl_ct_kind_name(ivl_ct_kind k) {
    static const char *n[IVL_CT_COUNT] = {"allreduce", "allgather", "reduce_scatter", "bcast",
                                          "send", "recv", "sendrecv", "barrier"};
    return k < IVL_CT_COUNT ? n[k] : "?";
}

void ivl_comm_timer_reset(void) { memset(&g_tot, 0, sizeof g_tot); }
void ivl_comm_timer_start(void) { g_on = 1; }
void ivl_comm_timer_stop(void) { g_on = 0; }
void ivl_comm_timer_get(ivl_comm_totals *out) { *out = g_tot; }

double ivl_comm_totals_seconds(const ivl_comm_totals *t) {
    double s = 0;
    for (int i = 0; i < IVL_CT_COUNT; i++) s += t->seconds[i];
    return s;
}
double ivl_comm_totals_bytes(const ivl_comm_totals *t) {
    double s = 0;
    for (int i = 0; i < IVL_CT_COUNT; i++) s += t->bytes[i];
    return s;
}

static double enter(void) {
    g_depth++;
    return g_on && g_depth == 1 ? now() : 0.0;
}
static void leave(ivl_ct_kind k, double t0, double bytes) {
    if (g_on && g_depth == 1) {
        g_tot.seconds[k] += now() - t0;
        g_tot.bytes[k] += bytes;
        g_tot.calls[k]++;
    }
    g_depth--;
}

static double type_bytes(int count, MPI_Datatype t) {
    int sz = 0;
    PMPI_Type_size(t, &sz);
    return (double)count * sz;
}

// ---- MPI profiling interface (signatures of Open MPI 4's mpi.h, MPI 3 const-correct) ----

int MPI_Allreduce(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c) {
    double t0 = enter();
    int rc = PMPI_Allreduce(s, r, n, t, op, c);
    leave(IVL_CT_ALLREDUCE, t0, type_bytes(n, t));
    return rc;
}

int MPI_Allgather(const void *s, int sn, MPI_Datatype st, void *r, int rn, MPI_Datatype rt,
                  MPI_Comm c) {
    double t0 = enter();
    int rc = PMPI_Allgather(s, sn, st, r, rn, rt, c);
    int size = 1;
    PMPI_Comm_size(c, &size);
    leave(IVL_CT_ALLGATHER, t0, type_bytes(rn, rt) * size);
    return rc;
}

int MPI_Reduce_scatter_block(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op,
                             MPI_Comm c) {
    double t0 = enter();
    int rc = PMPI_Reduce_scatter_block(s, r, n, t, op, c);
    int size = 1;
    PMPI_Comm_size(c, &size);
    leave(IVL_CT_REDUCE_SCATTER, t0, type_bytes(n, t) * size);
    return rc;
}

int MPI_Bcast(void *b, int n, MPI_Datatype t, int root, MPI_Comm c) {
    double t0 = enter();
    int rc = PMPI_Bcast(b, n, t, root, c);
    leave(IVL_CT_BCAST, t0, type_bytes(n, t));
    return rc;
}

int MPI_Send(const void *b, int n, MPI_Datatype t, int dst, int tag, MPI_Comm c) {
    double t0 = enter();
    int rc = PMPI_Send(b, n, t, dst, tag, c);
    leave(IVL_CT_SEND, t0, type_bytes(n, t));
    return rc;
}

int MPI_Recv(void *b, int n, MPI_Datatype t, int src, int tag, MPI_Comm c, MPI_Status *st) {
    double t0 = enter();
    int rc = PMPI_Recv(b, n, t, src, tag, c, st);
    leave(IVL_CT_RECV, t0, 0.0);   // bytes are counted once, on the send side
    return rc;
}

int MPI_Sendrecv(const void *sb, int sn, MPI_Datatype st, int dst, int stag, void *rb, int rn,
                 MPI_Datatype rt, int src, int rtag, MPI_Comm c, MPI_Status *status) {
    double t0 = enter();
    int rc = PMPI_Sendrecv(sb, sn, st, dst, stag, rb, rn, rt, src, rtag, c, status);
    leave(IVL_CT_SENDRECV, t0, type_bytes(sn, st));
    return rc;
}

int MPI_Barrier(MPI_Comm c) {
    double t0 = enter();
    int rc = PMPI_Barrier(c);
    leave(IVL_CT_BARRIER, t0, 0.0);
    return rc;
}

// ---- device table wrapper ----

static const ivl_comm_ops *g_real;

#define TIMED(kind, bytes, call)                    \
    do {                                            \
        double t0_ = enter();                       \
        call;                                       \
        if (g_on) g_real->synchronize(g);           \
        leave(kind, t0_, (double)(bytes));          \
    } while (0)

static void w_allreduce(const ivl_comm_group *g, void *buf, size_t n, ivl_dtype dt, ivl_comm_redop op) {
    TIMED(IVL_CT_ALLREDUCE, n * ivl_dtype_size(dt), g_real->allreduce(g, buf, n, dt, op));
}
static void w_allgather(const ivl_comm_group *g, const void *s, void *r, size_t n, ivl_dtype dt) {
    TIMED(IVL_CT_ALLGATHER, n * ivl_dtype_size(dt) * g->size, g_real->allgather(g, s, r, n, dt));
}
static void w_reduce_scatter(const ivl_comm_group *g, const void *s, void *r, size_t n,
                             ivl_dtype dt, ivl_comm_redop op) {
    TIMED(IVL_CT_REDUCE_SCATTER, n * ivl_dtype_size(dt) * g->size,
          g_real->reduce_scatter(g, s, r, n, dt, op));
}
static void w_bcast(const ivl_comm_group *g, void *b, size_t n, ivl_dtype dt, int root) {
    TIMED(IVL_CT_BCAST, n * ivl_dtype_size(dt), g_real->bcast(g, b, n, dt, root));
}
static void w_send(const ivl_comm_group *g, const void *b, size_t n, ivl_dtype dt, int peer) {
    TIMED(IVL_CT_SEND, n * ivl_dtype_size(dt), g_real->send(g, b, n, dt, peer));
}
static void w_recv(const ivl_comm_group *g, void *b, size_t n, ivl_dtype dt, int peer) {
    TIMED(IVL_CT_RECV, 0, g_real->recv(g, b, n, dt, peer));
}
static void w_sendrecv(const ivl_comm_group *g, const void *s, size_t sn, int dst, void *r,
                       size_t rn, int src, ivl_dtype dt) {
    TIMED(IVL_CT_SENDRECV, sn * ivl_dtype_size(dt), g_real->sendrecv(g, s, sn, dst, r, rn, src, dt));
}
static void w_barrier(const ivl_comm_group *g) { TIMED(IVL_CT_BARRIER, 0, g_real->barrier(g)); }
static void w_synchronize(const ivl_comm_group *g) { g_real->synchronize(g); }

const ivl_comm_ops *ivl_comm_timer_wrap_ops(const ivl_comm_ops *real) {
    static ivl_comm_ops wrapped;
    if (!real || real == ivl_comm_mpi_ops()) return real;
    g_real = real;
    wrapped = (ivl_comm_ops){real->name, w_allreduce, w_allgather, w_reduce_scatter, w_bcast,
                             w_send, w_recv, w_sendrecv, w_barrier, w_synchronize};
    return &wrapped;
}
