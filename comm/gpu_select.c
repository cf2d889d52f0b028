// gpu_select.c - which GPU a rank uses. The CUDA runtime already applies CUDA_VISIBLE_DEVICES
// (and with it Slurm's --gpus-per-task / --gpu-bind, which set it per task), so a rank counts
// only the GPUs it can see. Ranks of one node that see the same set of GPUs (the same
// CUDA_VISIBLE_DEVICES string) share those GPUs round robin in world-rank order; ranks bound to
// their own GPU each see one and take it. Nothing here reads hostnames or files.
#include "comm/comm.h"
#include "comm/mpi_check.h"
#include "core/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ivl_gpu_pick(int index, int nranks, int visible, int share, int *device) {
    if (visible < 1)
        return ivl_errorf("no CUDA device is visible to this rank");
    if (index < 0 || index >= nranks)
        return ivl_errorf("GPU choice: rank index %d out of %d", index, nranks);
    if (nranks > visible && !share)
        return ivl_errorf("%d ranks on this node see the same %d GPU%s, so some would share one; "
                          "start at most %d rank%s per node, give each task its own GPU (Slurm: "
                          "--gpus-per-task=1 or --gpu-bind=single:1; or set CUDA_VISIBLE_DEVICES "
                          "per rank), or pass --gpu-share to let ranks share a GPU (for tests and "
                          "small models)", nranks, visible, visible == 1 ? "" : "s", visible,
                          visible == 1 ? "" : "s");
    *device = index % visible;
    return 0;
}

#define VIS_MAX 256

int ivl_comm_gpu_choose(int visible, int share, ivl_gpu_choice *out) {
    memset(out, 0, sizeof *out);
    const char *env = getenv("CUDA_VISIBLE_DEVICES");
    char mine[VIS_MAX];
    snprintf(mine, sizeof mine, "%s", env ? env : "(unset)");
    snprintf(out->visible_env, sizeof out->visible_env, "%.*s", (int)sizeof out->visible_env - 1, mine);
    out->visible = visible;

    // The ranks of this node, in world-rank order, and the visible-device string of each.
    int wrank = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &wrank));
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, wrank, MPI_INFO_NULL,
                                  &node));
    int nrank = 0, nsize = 1;
    MPI_CHECK(MPI_Comm_rank(node, &nrank));
    MPI_CHECK(MPI_Comm_size(node, &nsize));
    char *all = ivl_malloc((size_t)nsize * VIS_MAX);
    MPI_CHECK(MPI_Allgather(mine, VIS_MAX, MPI_CHAR, all, VIS_MAX, MPI_CHAR, node));
    MPI_CHECK(MPI_Comm_free(&node));
    int index = 0, nranks = 0;
    for (int r = 0; r < nsize; r++) {
        if (strncmp(all + (size_t)r * VIS_MAX, mine, VIS_MAX) != 0) continue;
        if (r < nrank) index++;
        nranks++;
    }
    free(all);
    out->index = index;
    out->nranks = nranks;
    if (ivl_gpu_pick(index, nranks, visible, share, &out->device) != 0) return -1;
    out->shared = nranks > visible;
    return 0;
}
