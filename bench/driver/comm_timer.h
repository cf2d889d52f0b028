// comm_timer.h - time spent inside communication, per rank, for the compute/comm split of
// `internvl bench`.
//
// MPI (the CPU path): through the MPI profiling interface. This file defines MPI_Allreduce,
// MPI_Bcast, ... which time the call and forward to PMPI_*; being in the executable they take
// the place of libmpi's for every caller (comm/ops_mpi.c, parallel/dist.c's logits
// broadcast), with no change to those files. Counting happens only between
// ivl_comm_timer_start() and ivl_comm_timer_stop(), so setup traffic and the benchmark's own
// bookkeeping collectives are left out.
// NCCL (a GPU layout): ivl_comm_timer_wrap_ops() returns a table that forwards to the real one
// and synchronises after each op, so the time is the transfer, not the enqueue.
//
// The time is transfer + waiting for the slowest peer (a pipeline bubble counts as comm).
#ifndef IVL_BENCH_COMM_TIMER_H
#define IVL_BENCH_COMM_TIMER_H

#include "comm/comm.h"

typedef enum {
    IVL_CT_ALLREDUCE = 0,
    IVL_CT_ALLGATHER,
    IVL_CT_REDUCE_SCATTER,
    IVL_CT_BCAST,
    IVL_CT_SEND,
    IVL_CT_RECV,
    IVL_CT_SENDRECV,
    IVL_CT_BARRIER,
    IVL_CT_COUNT
} ivl_ct_kind;

typedef struct {
    double seconds[IVL_CT_COUNT];
    double bytes[IVL_CT_COUNT];   // this rank's payload (count x type size; send side for p2p)
    long calls[IVL_CT_COUNT];
} ivl_comm_totals;

const char *ivl_ct_kind_name(ivl_ct_kind k);

void ivl_comm_timer_reset(void);
void ivl_comm_timer_start(void);
void ivl_comm_timer_stop(void);
void ivl_comm_timer_get(ivl_comm_totals *out);
double ivl_comm_totals_seconds(const ivl_comm_totals *t);
double ivl_comm_totals_bytes(const ivl_comm_totals *t);

// A timed copy of a device (NCCL) table; returns `real` itself for the MPI table (already
// timed through PMPI).
const ivl_comm_ops *ivl_comm_timer_wrap_ops(const ivl_comm_ops *real);

#endif
