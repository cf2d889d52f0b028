// comm.h - moving bytes between ranks: MPI bootstrap, communicator groups, and one table of
// collectives (ivl_comm_ops) with two implementations:
//   ivl_comm_mpi_ops()    host memory, MPI, always available;
//   ivl_comm_device_ops() device memory, NCCL, from libivl_nccl.so (comm/nccl/), which is
//                         dlopen'ed only by ivl_comm_group_init_device(), so CPU runs never
//                         load CUDA or NCCL.
// Both take the same arguments, so TP/PP code is written once:
//     const ivl_comm_ops *ops = on_gpu ? ivl_comm_device_ops() : ivl_comm_mpi_ops();
//     ops->allreduce(&topo->tp, y.data, n, IVL_F32, IVL_COMM_SUM);
//
// Semantics shared by both tables:
// - Ranks and roots are ranks inside the group (0 .. size-1), never world ranks.
// - Counts are element counts of dtype dt; per-rank counts for allgather / reduce_scatter.
// - MPI calls block until the buffers are usable. NCCL calls are enqueued on the group's
//   stream (ivl_comm_group_set_stream) and are ordered with kernels on that stream; call
//   ops->synchronize(g) before reading results on the host.
// - Every failure (MPI/NCCL error, bad dtype, count mismatch) ends the whole job with a
//   message naming rank, host, file:line and the call: a collective has no way to recover
//   on one rank only.
//
// Setup (see comm/topology.h for the tp x pp x vision groups):
//     ivl_comm_init(&argc, &argv);        // first thing in main; works without mpirun too
//     ...
//     ivl_comm_finalize();
#ifndef IVL_COMM_H
#define IVL_COMM_H

#include <mpi.h>
#include <stddef.h>

#include "core/tensor.h"

// ---- bootstrap -------------------------------------------------------------------------

// MPI_Init_thread (MPI_THREAD_FUNNELED: only the main thread calls MPI), MPI_ERRORS_RETURN on
// MPI_COMM_WORLD/SELF so MPI_CHECK sees error codes, the abort hook of core/check.h (every
// IVL_CHECK failure becomes MPI_Abort(MPI_COMM_WORLD, code), so no rank is left hanging),
// the rank prefix of the log, and the node-local rank. Safe to call when MPI is already up.
void ivl_comm_init(int *argc, char ***argv);
// MPI_Finalize when ivl_comm_init started MPI. Call it on every rank, after the last collective.
void ivl_comm_finalize(void);

int ivl_comm_world_rank(void);
int ivl_comm_world_size(void);
// Rank and count of ranks on this node (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)); the CUDA
// backend uses device = local rank.
int ivl_comm_local_rank(void);
int ivl_comm_local_size(void);

// ---- GPU choice ----------------------------------------------------------------------

// The GPU of rank `index` among the `nranks` ranks of a node that see the same `visible`
// GPUs: index % visible. When ranks outnumber GPUs it returns -1 with a message saying what
// to do, unless share is set (--gpu-share). Pure.
int ivl_gpu_pick(int index, int nranks, int visible, int share, int *device);

typedef struct {
    int device;            // CUDA ordinal among the visible GPUs
    int visible;           // GPUs this rank sees
    int index, nranks;     // this rank's place among the node's ranks that see the same GPUs
    int shared;            // 1: more ranks than GPUs in that set (--gpu-share)
    char visible_env[64];  // CUDA_VISIBLE_DEVICES as this rank saw it, or "(unset)"
} ivl_gpu_choice;

// Collective over MPI_COMM_WORLD: groups the node's ranks by their CUDA_VISIBLE_DEVICES (as
// Slurm's --gpus-per-task/--gpu-bind or the user set it) and picks with ivl_gpu_pick.
// `visible` = the device count the CUDA runtime reports to this rank. 0, or -1 +
// ivl_last_error().
int ivl_comm_gpu_choose(int visible, int share, ivl_gpu_choice *out);

// ---- groups ----------------------------------------------------------------------------

typedef struct ivl_comm_group {
    char name[16];      // "world", "tp", "pp", "vit_tp", "vit_dp": used in messages
    int rank;           // this process's rank in the group
    int size;
    MPI_Comm comm;      // MPI communicator of the group (owned)
    int *world_ranks;   // [size]: world rank of each member, in group order (owned)
    void *dev;          // device communicator (NCCL, opaque) or NULL: see init_device
} ivl_comm_group;

// Collective over MPI_COMM_WORLD: a group with all ranks (a dup of the world communicator).
void ivl_comm_group_world(ivl_comm_group *g);
// Collective over parent: ranks with the same color form one group, ordered by key.
void ivl_comm_group_split(ivl_comm_group *g, const ivl_comm_group *parent, int color, int key,
                          const char *name);
// Frees the MPI communicator and, if there is one, the device communicator. Collective.
void ivl_comm_group_free(ivl_comm_group *g);

// Collective over g: loads libivl_nccl.so, group rank 0 makes an NCCL unique id, MPI_Bcast
// sends it to the others, each rank calls ncclCommInitRank on CUDA device `device`.
// Returns 0, or -1 with ivl_last_error() when the module or a GPU is missing (on every rank,
// so the caller can fall back or stop cleanly).
int ivl_comm_group_init_device(ivl_comm_group *g, int device);
// The cudaStream_t the device ops of g enqueue on (NULL: a stream the module created).
void ivl_comm_group_set_stream(ivl_comm_group *g, void *cuda_stream);

// ---- collectives -----------------------------------------------------------------------

typedef enum {
    IVL_COMM_SUM = 0,
    IVL_COMM_MAX = 1,   // for control values (flags, counts), not only data
} ivl_comm_redop;

typedef struct ivl_comm_ops {
    const char *name;   // "mpi" or "nccl"
    // buf[i] = op over ranks of buf[i], in place, count elements.
    void (*allreduce)(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt,
                      ivl_comm_redop op);
    // recv[r*count .. (r+1)*count) = send of rank r. send may be recv + rank*count (in place).
    void (*allgather)(const ivl_comm_group *g, const void *send, void *recv, size_t count,
                      ivl_dtype dt);
    // send has size*count elements; recv[0..count) = op over ranks of send[rank*count ..].
    void (*reduce_scatter)(const ivl_comm_group *g, const void *send, void *recv, size_t count,
                           ivl_dtype dt, ivl_comm_redop op);
    // buf of root is copied to every rank.
    void (*bcast)(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt, int root);
    // Point to point (pipeline hand-off). A recv must match a send of the same count.
    void (*send)(const ivl_comm_group *g, const void *buf, size_t count, ivl_dtype dt, int peer);
    void (*recv)(const ivl_comm_group *g, void *buf, size_t count, ivl_dtype dt, int peer);
    // Send to dst and receive from src at once (rings and shifts without deadlock).
    void (*sendrecv)(const ivl_comm_group *g, const void *send, size_t send_count, int dst,
                     void *recv, size_t recv_count, int src, ivl_dtype dt);
    void (*barrier)(const ivl_comm_group *g);
    // Waits until every op issued on g has finished (a no-op for MPI).
    void (*synchronize)(const ivl_comm_group *g);
} ivl_comm_ops;

const ivl_comm_ops *ivl_comm_mpi_ops(void);
// The NCCL table, or NULL before a successful ivl_comm_group_init_device().
const ivl_comm_ops *ivl_comm_device_ops(void);

// The MPI datatype used for dt (also for the byte-moving ops on bf16/f16).
MPI_Datatype ivl_comm_mpi_type(ivl_dtype dt);

#endif
