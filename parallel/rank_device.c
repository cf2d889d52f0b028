// rank_device.c - see rank_device.h.
#include "parallel/rank_device.h"
#include "comm/mpi_check.h"
#include "core/check.h"
#include "core/log.h"

#include <string.h>

ivl_backend *ivl_rank_backend_open(const char *device, int gpu_share, ivl_rank_device *info) {
    memset(info, 0, sizeof *info);
    if (!device || !strcmp(device, "cpu")) return ivl_backend_create("cpu", 0);
    const int want_cuda = !strcmp(device, "cuda");
    if (!want_cuda && strcmp(device, "auto") != 0)
        ivl_die(2, "--device %s: unknown device (use cpu, cuda or auto)", device);
    char why[512] = "";
    const int visible = ivl_backend_gpu_count(why, sizeof why);
    if (want_cuda && visible < 1 && ivl_comm_world_size() == 1)
        ivl_die(3, "--device cuda: no CUDA device (%s); run on a GPU node or use --device cpu",
                why);
    // One backend for the whole job: agree on "every rank sees a GPU" first.
    int have = visible > 0, all = 0, ranks_without = 0, without = !have;
    MPI_CHECK(MPI_Allreduce(&have, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (!all) {
        MPI_CHECK(MPI_Allreduce(&without, &ranks_without, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
        if (want_cuda) {
            // Every rank says its own line before any rank ends the job (an MPI_Abort would
            // cut the others short); then rank 0 ends it.
            if (!have)
                LOG_ERROR("--device cuda: no CUDA device (%s); run on a GPU node or use --device "
                          "cpu", why);
            MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
            if (ivl_comm_world_rank() == 0)
                ivl_die(3, "--device cuda: %d of %d ranks found no CUDA device", ranks_without,
                        ivl_comm_world_size());
            MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));   // rank 0's abort ends this rank
        }
        if (!have)
            LOG_INFO("--device auto: no CUDA device (%s); using the CPU backend", why);
        else if (ivl_comm_world_rank() == 0)
            LOG_INFO("--device auto: %d rank(s) see no CUDA device; every rank uses the CPU "
                     "backend", ranks_without);
        return ivl_backend_create("cpu", 0);
    }
    if (ivl_comm_gpu_choose(visible, gpu_share, &info->gpu) != 0)
        ivl_die(2, "--device %s: %s", device, ivl_last_error());
    info->on_gpu = 1;
    ivl_backend *be = ivl_backend_create("cuda", info->gpu.device);
    LOG_DEBUG("GPU %d of %d visible (CUDA_VISIBLE_DEVICES=%s; rank %d of %d on this node that "
              "see them%s): %s", info->gpu.device, visible, info->gpu.visible_env,
              info->gpu.index, info->gpu.nranks, info->gpu.shared ? ", shared" : "",
              be->device_name);
    return be;
}
