// test_gpu_select.c - which GPU each rank takes (comm/gpu_select.c), without a GPU: the
// visible-device count is given on the command line, CUDA_VISIBLE_DEVICES per rank by the
// caller (gpu_select.sh).
//   test_gpu_select pure              the arithmetic of ivl_gpu_pick (no MPI needed)
//   test_gpu_select VISIBLE SHARE     ivl_comm_gpu_choose on every rank; prints one line a rank:
//     "rank R device D index I nranks N shared S" or "rank R refused: MESSAGE"
//   Exit 0 when this rank chose a GPU, 3 when refused.
#include "comm/comm.h"
#include "core/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pure(void) {
    int d = -1;
    // index % visible, refused when ranks outnumber GPUs unless shared
    IVL_CHECK(ivl_gpu_pick(0, 1, 1, 0, &d) == 0 && d == 0, "1 rank, 1 GPU");
    IVL_CHECK(ivl_gpu_pick(3, 4, 4, 0, &d) == 0 && d == 3, "4 ranks, 4 GPUs: rank 3 -> 3");
    IVL_CHECK(ivl_gpu_pick(1, 2, 8, 0, &d) == 0 && d == 1, "2 ranks, 8 GPUs: rank 1 -> 1");
    IVL_CHECK(ivl_gpu_pick(1, 2, 1, 0, &d) != 0, "2 ranks, 1 GPU without share must be refused");
    IVL_CHECK(strstr(ivl_last_error(), "--gpu-share") && strstr(ivl_last_error(), "2 ranks"),
              "the refusal names the counts and the flag: %s", ivl_last_error());
    IVL_CHECK(ivl_gpu_pick(1, 2, 1, 1, &d) == 0 && d == 0, "2 ranks share 1 GPU");
    IVL_CHECK(ivl_gpu_pick(5, 6, 4, 1, &d) == 0 && d == 1, "6 ranks share 4 GPUs: rank 5 -> 1");
    IVL_CHECK(ivl_gpu_pick(0, 1, 0, 1, &d) != 0, "no visible GPU");
    puts("gpu_pick: ok");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "pure")) return pure();
    if (argc != 3) {
        fprintf(stderr, "usage: %s pure | VISIBLE SHARE\n", argv[0]);
        return 2;
    }
    ivl_comm_init(&argc, &argv);
    ivl_gpu_choice g;
    int rc = ivl_comm_gpu_choose(atoi(argv[1]), atoi(argv[2]), &g);
    int rank = ivl_comm_world_rank();
    if (rc == 0)
        printf("rank %d device %d index %d nranks %d shared %d\n", rank, g.device, g.index,
               g.nranks, g.shared);
    else
        printf("rank %d refused: %s\n", rank, ivl_last_error());
    fflush(stdout);
    ivl_comm_finalize();
    return rc == 0 ? 0 : 3;
}
