// group.c - communicator groups: world, split by color, free; the MPI side of each group.
#include "comm/comm.h"
#include "comm/device.h"
#include "comm/mpi_check.h"
#include "core/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Fills rank, size and the member -> world rank table from g->comm. Collective over g.
static void group_fill(ivl_comm_group *g, const char *name) {
    snprintf(g->name, sizeof g->name, "%s", name);
    MPI_CHECK(MPI_Comm_rank(g->comm, &g->rank));
    MPI_CHECK(MPI_Comm_size(g->comm, &g->size));
    int me = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &me));
    g->world_ranks = ivl_malloc((size_t)g->size * sizeof(int));
    MPI_CHECK(MPI_Allgather(&me, 1, MPI_INT, g->world_ranks, 1, MPI_INT, g->comm));
    g->dev = NULL;
}

void ivl_comm_group_world(ivl_comm_group *g) {
    memset(g, 0, sizeof *g);
    // A dup, so the engine's traffic never matches a message of a library sharing the world.
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &g->comm));
    group_fill(g, "world");
}

void ivl_comm_group_split(ivl_comm_group *g, const ivl_comm_group *parent, int color, int key,
                          const char *name) {
    IVL_CHECK(color >= 0, "group '%s': color %d must be >= 0", name, color);
    memset(g, 0, sizeof *g);
    MPI_CHECK(MPI_Comm_split(parent->comm, color, key, &g->comm));
    group_fill(g, name);
}

void ivl_comm_group_free(ivl_comm_group *g) {
    if (g->dev) ivl_comm_device_free(g);
    if (g->comm != MPI_COMM_NULL && g->comm != 0) MPI_CHECK(MPI_Comm_free(&g->comm));
    free(g->world_ranks);
    memset(g, 0, sizeof *g);
    g->comm = MPI_COMM_NULL;
}
