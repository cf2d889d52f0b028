// ivl_cuda.h - what the CUDA backend offers beyond the op table in core/backend.h, for code
// that runs only on GPUs (NCCL in comm/, the loader's memory check, benchmarks).
//
// The module is dlopen'ed, so these are reached through the backend, not by symbol: when
// be->name is "cuda", be->ctx points at a struct that BEGINS with an ivl_cuda_ext.
//     const ivl_cuda_ext *x = ivl_cuda_ext_of(be);   // NULL for the CPU backend
//     x->mem_info(be, &free_b, &total_b);
// Plain C, no CUDA headers needed.
#ifndef IVL_CUDA_EXT_H
#define IVL_CUDA_EXT_H

#include <stdint.h>
#include <string.h>

#include "core/backend.h"

typedef struct ivl_cuda_ext {
    int abi_version;   // IVL_CUDA_EXT_ABI
    // The backend's one compute stream (a cudaStream_t): every op is enqueued on it, so
    // NCCL collectives enqueued on it are ordered with the ops without extra syncs.
    void *(*stream)(ivl_backend *be);
    int (*device)(ivl_backend *be);   // CUDA device ordinal
    int (*cc)(ivl_backend *be);       // compute capability * 10 (75, 80, 90)
    // Device memory free/total in bytes (cudaMemGetInfo; memory cached by the allocator's
    // pool counts as used). Returns 0.
    int (*mem_info)(ivl_backend *be, size_t *free_bytes, size_t *total_bytes);
    // Fills a float tensor on this backend with uniform values in [-amp, amp) from a
    // counter-based hash of (seed, index): the same seed gives the same values on any GPU.
    // For benchmarks at real size without a checkpoint.
    void (*fill_random)(ivl_backend *be, ivl_tensor *t, uint64_t seed, float amp);
} ivl_cuda_ext;

#define IVL_CUDA_EXT_ABI 1

static inline const ivl_cuda_ext *ivl_cuda_ext_of(const ivl_backend *be) {
    if (!be || !be->name || strcmp(be->name, "cuda") != 0 || !be->ctx) return NULL;
    const ivl_cuda_ext *x = (const ivl_cuda_ext *)be->ctx;
    return x->abi_version == IVL_CUDA_EXT_ABI ? x : NULL;
}

#endif
