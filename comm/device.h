// device.h - the interface between ivl_comm and the NCCL module libivl_nccl.so
// (comm/nccl/comm_nccl.c, built only with IVL_CUDA). The module is dlopen'ed by
// ivl_comm_group_init_device(), so CPU runs never load libcudart or libnccl.
//
// The module does not link ivl_core: the host passes the few functions the module needs
// (the fatal reporter, the error recorder), so a fatal NCCL error still goes through the abort
// hook that MPI_Aborts the whole job, and the module has no undefined symbols of ours.
#ifndef IVL_COMM_DEVICE_H
#define IVL_COMM_DEVICE_H

#include <stddef.h>

#include "comm/comm.h"

#define IVL_NCCL_MODULE_ABI 1
#define IVL_NCCL_MODULE_FILE "libivl_nccl.so"
#define IVL_NCCL_MODULE_ENTRY "ivl_nccl_module_get"
#define IVL_NCCL_ID_MAX 256   // bytes; ncclUniqueId is 128

typedef struct ivl_nccl_host {
    __attribute__((noreturn)) void (*fatal_call)(const char *lib, const char *call,
                                                 const char *msg, const char *file, int line,
                                                 const char *func);
    int (*errorf)(const char *fmt, ...);
} ivl_nccl_host;

typedef struct ivl_nccl_module {
    int abi;                  // IVL_NCCL_MODULE_ABI
    size_t id_size;           // sizeof(ncclUniqueId), <= IVL_NCCL_ID_MAX
    const char *version;      // "NCCL 2.28.9, CUDA runtime 13000"
    // 0, or -1 with host errorf (no GPU, no driver).
    int (*get_unique_id)(void *id);
    // cudaSetDevice(device): 0, or -1 with host errorf (bad index, no GPU).
    int (*use_device)(int device);
    // ncclCommInitRank on the current device and a stream. Collective over the group; an
    // NCCL error there is fatal (the peers are inside the same call and would wait forever).
    void *(*comm_create)(const void *id, int nranks, int rank);
    void (*comm_destroy)(void *dev);
    void (*set_stream)(void *dev, void *cuda_stream);
    const ivl_comm_ops *ops;  // the device collectives; they use g->dev
} ivl_nccl_module;

// The module's one exported symbol.
typedef const ivl_nccl_module *(*ivl_nccl_module_get_fn)(const ivl_nccl_host *host);

// Host side (comm/device.c): destroys g->dev; called by ivl_comm_group_free.
void ivl_comm_device_free(ivl_comm_group *g);

#endif
