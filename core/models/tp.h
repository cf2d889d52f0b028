// tp.h - what a model forward needs to know about tensor parallelism, without MPI.
// A tensor-parallel block is the local op on this rank's shard plus one collective; the
// collectives come in as function pointers that parallel/ fills from comm/. On one rank,
// use ivl_tp_single(): size 1 and no collectives.
#ifndef IVL_MODELS_TP_H
#define IVL_MODELS_TP_H

#include "core/backend.h"

typedef struct ivl_tp_ctx {
    int rank;   // rank inside the tensor-parallel group
    int size;   // group size (1 = no tensor parallelism)
    void *comm; // opaque group handle for the functions below
    // t = sum over the group of t (in place).
    void (*allreduce_sum)(void *comm, ivl_backend *be, ivl_tensor *t);
    // out [rows, size * local_cols] = the group's local [rows, local_cols] blocks side by side,
    // in rank order.
    void (*allgather_cols)(void *comm, ivl_backend *be, ivl_tensor *out, const ivl_tensor *local);
} ivl_tp_ctx;

static inline ivl_tp_ctx ivl_tp_single(void) {
    ivl_tp_ctx t = {0, 1, 0, 0, 0};
    return t;
}

#endif
