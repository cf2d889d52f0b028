// mpi_check.h - MPI_CHECK(call): run an MPI call and end the job when it fails.
//
// MPI's default error handler (MPI_ERRORS_ARE_FATAL) kills the job before a return code can be
// seen, so ivl_comm_init() sets MPI_ERRORS_RETURN on MPI_COMM_WORLD and MPI_COMM_SELF
// (communicators made from them inherit it). A failed call then prints
//   [internvl r1/4 host] MPI ERROR at comm/ops_mpi.c:42 (mpi_send): MPI_Send(...) -> MPI_ERR_RANK: invalid rank
// and MPI_Aborts the whole job through ivl_fatal_call (core/check.h).
#ifndef IVL_COMM_MPI_CHECK_H
#define IVL_COMM_MPI_CHECK_H

#include <mpi.h>

_Noreturn void ivl_mpi_fail(int rc, const char *call, const char *file, int line,
                            const char *func);

#define MPI_CHECK(call)                                                          \
    do {                                                                         \
        int ivl_mpi_rc_ = (call);                                                \
        if (ivl_mpi_rc_ != MPI_SUCCESS)                                          \
            ivl_mpi_fail(ivl_mpi_rc_, #call, __FILE__, __LINE__, __func__);      \
    } while (0)

#endif
