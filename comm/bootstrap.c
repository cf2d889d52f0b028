// bootstrap.c - MPI start and stop, error handler, abort hook, node-local rank, MPI_CHECK's
// reporter. MPI is one per process, so its state is one per process too (file-static here).
#include "comm/comm.h"
#include "comm/mpi_check.h"
#include "core/check.h"
#include "core/log.h"

#include <stdio.h>
#include <unistd.h>
#include <string.h>

static int g_started_mpi;   // 1 when ivl_comm_init called MPI_Init_thread (so we finalize)
static int g_rank, g_size = 1, g_local_rank, g_local_size = 1;

void ivl_mpi_fail(int rc, const char *call, const char *file, int line, const char *func) {
    char msg[MPI_MAX_ERROR_STRING + 64];
    int len = 0, cls = 0;
    char cls_msg[MPI_MAX_ERROR_STRING];
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    // The class string says which kind of error (MPI_ERR_RANK, MPI_ERR_TRUNCATE...) when the
    // code's own string is an implementation-specific detail.
    if (MPI_Error_class(rc, &cls) == MPI_SUCCESS && cls != rc &&
        MPI_Error_string(cls, cls_msg, &len) == MPI_SUCCESS) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof msg - n, " (%.*s)", 48, cls_msg);
    }
    ivl_fatal_call("MPI", call, msg, file, line, func);
}

// Installed into core/check.h: IVL_CHECK/ivl_fatal on any rank ends every rank.
static void abort_hook(int code) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    // Alone there is no other rank to take down: a plain exit keeps the user's error message
    // free of Open MPI's MPI_ABORT banner (_exit: MPI is not finalized, so skip atexit).
    if (init && !fin && g_size <= 1) _exit(code ? code : 1);
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
}

void ivl_comm_init(int *argc, char ***argv) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    IVL_CHECK(!fin, "ivl_comm_init called after MPI_Finalize");
    if (!init) {
        int provided = 0;
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        IVL_CHECK(rc == MPI_SUCCESS, "MPI_Init_thread failed (code %d): is the MPI runtime "
                  "installed and, under Slurm, was the job started with srun --mpi=pmix or mpirun?",
                  rc);
        g_started_mpi = 1;
        if (provided < MPI_THREAD_FUNNELED)
            LOG_WARN("MPI gives thread level %d < MPI_THREAD_FUNNELED; keep MPI calls on the "
                     "main thread", provided);
    }
    // Before anything else can fail: errors become return codes, and fatal errors abort all.
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN));
    ivl_set_abort_hook(abort_hook);

    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
    ivl_log_set_rank(g_rank, g_size);

    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL,
                                  &node));
    MPI_CHECK(MPI_Comm_rank(node, &g_local_rank));
    MPI_CHECK(MPI_Comm_size(node, &g_local_size));
    MPI_CHECK(MPI_Comm_free(&node));
    LOG_DEBUG("MPI up: rank %d of %d, local rank %d of %d", g_rank, g_size, g_local_rank,
              g_local_size);
}

void ivl_comm_finalize(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) return;
    ivl_set_abort_hook(NULL);   // after MPI_Finalize, MPI_Abort is no longer allowed
    if (g_started_mpi) MPI_Finalize();
}

int ivl_comm_world_rank(void) { return g_rank; }
int ivl_comm_world_size(void) { return g_size; }
int ivl_comm_local_rank(void) { return g_local_rank; }
int ivl_comm_local_size(void) { return g_local_size; }
