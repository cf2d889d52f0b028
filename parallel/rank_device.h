// rank_device.h - the backend of this rank: the CPU, or the GPU chosen for it on its node
// (comm/comm.h ivl_comm_gpu_choose: CUDA_VISIBLE_DEVICES and Slurm's GPU binding honoured,
// local ranks round robin over the visible GPUs, refused when ranks outnumber GPUs unless
// --gpu-share). Every command that runs the model opens its backend here, on one rank or many.
#ifndef IVL_PARALLEL_RANK_DEVICE_H
#define IVL_PARALLEL_RANK_DEVICE_H

#include "comm/comm.h"
#include "core/backend.h"

typedef struct {
    int on_gpu;            // 1: the CUDA backend
    ivl_gpu_choice gpu;    // which GPU, when on_gpu
} ivl_rank_device;

// Collective over the world. device: "cpu", "cuda" or "auto".
//   cuda: ends the job on every rank (exit 3) with "--device cuda: no CUDA device (...)" when
//         a rank sees no GPU, or with the GPU-choice message when ranks outnumber GPUs;
//   auto: the CUDA backend when every rank sees a GPU, else the CPU backend on every rank
//         (mixing backends in one job cannot work), said once in the log.
ivl_backend *ivl_rank_backend_open(const char *device, int gpu_share, ivl_rank_device *info);

#endif
