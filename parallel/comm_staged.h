// comm_staged.h - the collectives of comm/comm.h on backend (device) memory, carried by MPI
// through host buffers: the fallback when NCCL cannot be used (several ranks on one GPU of one
// host, libnccl missing at run time, IVL_COMM=mpi). Each call downloads its device buffer,
// runs the MPI op of ivl_comm_mpi_ops() and uploads the result; reductions of bf16/f16 go
// through f32 on the host (MPI has no bf16 arithmetic), so a sum is rounded once, at the end.
// Slower than NCCL (two copies over PCIe per call, a host synchronisation), same results.
// On the CPU backend the copies are memcpy: IVL_COMM=staged forces this table there, which is
// how CI tests it without a GPU.
#ifndef IVL_PARALLEL_COMM_STAGED_H
#define IVL_PARALLEL_COMM_STAGED_H

#include "comm/comm.h"
#include "core/backend.h"

// The table for buffers of backend be (one backend per process: the table keeps it).
const ivl_comm_ops *ivl_comm_staged_ops(ivl_backend *be);

#endif
