// comm_test.h - tiny helpers for the multi-rank comm tests: EXPECT counts failures on this
// rank and prints them with the rank; comm_test_finish() sums the counts over all ranks so
// every rank exits with the same status.
#ifndef IVL_TESTS_COMM_TEST_H
#define IVL_TESTS_COMM_TEST_H

#include <mpi.h>
#include <stdio.h>

#include "comm/comm.h"

static int g_test_failures;

#define EXPECT(cond, ...)                                                                 \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            g_test_failures++;                                                            \
            fprintf(stderr, "[rank %d] FAIL %s:%d: %s: ", ivl_comm_world_rank(), __FILE__, \
                    __LINE__, #cond);                                                     \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, "\n");                                                        \
        }                                                                                 \
    } while (0)

// Returns the exit code: 0 when no rank failed.
static inline int comm_test_finish(const char *name) {
    int total = 0;
    MPI_Allreduce(&g_test_failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (ivl_comm_world_rank() == 0)
        printf("%s: %s (%d failures over %d ranks)\n", name, total ? "FAILED" : "OK", total,
               ivl_comm_world_size());
    ivl_comm_finalize();
    return total ? 1 : 0;
}

#endif
