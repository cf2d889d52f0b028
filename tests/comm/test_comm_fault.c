// test_comm_fault.c - a job that fails on purpose, driven by fault_check.py.
//   test_comm_fault MODE PID_DIR
// Every rank writes PID_DIR/rank<r>.pid, then all ranks loop over small all-reduces (the
// situation of a real job: everyone inside collectives). Then, by MODE:
//   kill      nothing here: the driver SIGKILLs one rank from outside;
//   check     rank 1 fails an IVL_CHECK at iteration 20 (-> MPI_Abort through the hook);
//   mpierror  rank 1 makes an MPI call that fails (send to a rank that does not exist) at
//             iteration 20 (MPI_ERRORS_RETURN -> MPI_CHECK -> MPI_Abort).
// The loop never ends by itself: if a fault did not take the job down, the driver sees a hang.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "comm/mpi_check.h"
#include "core/check.h"

static void write_pid(const char *dir, int rank) {
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/rank%d.pid.tmp", dir, rank);
    snprintf(path, sizeof path, "%s/rank%d.pid", dir, rank);
    FILE *f = fopen(tmp, "w");
    IVL_CHECK(f, "cannot write %s", tmp);
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    IVL_CHECK(rename(tmp, path) == 0, "cannot rename %s", tmp);
}

int main(int argc, char **argv) {
    ivl_comm_init(&argc, &argv);
    IVL_CHECK(argc == 3, "usage: test_comm_fault kill|check|mpierror PID_DIR");
    const char *mode = argv[1];
    const int rank = ivl_comm_world_rank();
    ivl_comm_group w;
    ivl_comm_group_world(&w);
    write_pid(argv[2], rank);
    const ivl_comm_ops *ops = ivl_comm_mpi_ops();
    ops->barrier(&w);
    for (long it = 0;; it++) {
        float x[256];
        for (int i = 0; i < 256; i++) x[i] = (float)rank;
        ops->allreduce(&w, x, 256, IVL_F32, IVL_COMM_SUM);
        if (rank == 1 && it == 20) {
            if (!strcmp(mode, "check"))
                IVL_CHECK(x[0] < 0, "planned failure on rank %d at iteration %ld", rank, it);
            if (!strcmp(mode, "mpierror")) {
                int v = 0;
                MPI_CHECK(MPI_Send(&v, 1, MPI_INT, w.size + 5, 0, w.comm));
            }
        }
        usleep(2000);   // keep the 2-core box usable while ranks wait to be killed
    }
}
