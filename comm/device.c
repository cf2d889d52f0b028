// device.c - loads the NCCL module on demand and makes a group's device communicator from an
// NCCL id that group rank 0 broadcasts over MPI.
#include "comm/device.h"
#include "comm/mpi_check.h"
#include "core/backend.h"
#include "core/check.h"
#include "core/log.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef IVL_COMM_MODULE_DIR
#define IVL_COMM_MODULE_DIR "."
#endif

static const ivl_nccl_module *g_module;

// 0 with g_module set, or -1 with a message. IVL_NCCL_MODULE overrides the path; otherwise
// ../lib beside the executable (a relocated bundle, scripts/bundle.sh), then the build dir.
static int load_module(void) {
    if (g_module) return 0;
    char path[4096];
    const char *env = getenv("IVL_NCCL_MODULE");
    if (env && *env)
        snprintf(path, sizeof path, "%s", env);
    else if (ivl_exe_lib_path(IVL_NCCL_MODULE_FILE, path, sizeof path) != 0 ||
             access(path, F_OK) != 0)
        snprintf(path, sizeof path, "%s/%s", IVL_COMM_MODULE_DIR, IVL_NCCL_MODULE_FILE);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return ivl_errorf("cannot load the NCCL module %s: %s. It is built only with "
                          "-DIVL_CUDA=ON; set IVL_NCCL_MODULE to its path if it was moved",
                          path, dlerror());
    ivl_nccl_module_get_fn get = (ivl_nccl_module_get_fn)dlsym(h, IVL_NCCL_MODULE_ENTRY);
    if (!get) {
        dlclose(h);
        return ivl_errorf("%s has no symbol %s: not an engine NCCL module", path,
                          IVL_NCCL_MODULE_ENTRY);
    }
    static const ivl_nccl_host host = {.fatal_call = ivl_fatal_call, .errorf = ivl_errorf};
    const ivl_nccl_module *m = get(&host);
    if (!m || m->abi != IVL_NCCL_MODULE_ABI || m->id_size > IVL_NCCL_ID_MAX) {
        dlclose(h);
        return ivl_errorf("%s: module ABI %d, expected %d: rebuild the engine", path,
                          m ? m->abi : -1, IVL_NCCL_MODULE_ABI);
    }
    LOG_DEBUG("loaded %s (%s)", path, m->version);
    g_module = m;   // the handle stays open for the life of the process
    return 0;
}

const ivl_comm_ops *ivl_comm_device_ops(void) { return g_module ? g_module->ops : NULL; }

int ivl_comm_group_init_device(ivl_comm_group *g, int device) {
    // Every rank must take the same branch, or the ranks that succeed wait forever in the
    // MPI_Bcast below: agree on "loaded everywhere" first.
    int ok = load_module() == 0, all_ok = 0;
    char err[512] = "";
    if (!ok) snprintf(err, sizeof err, "%s", ivl_last_error());
    MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, g->comm));
    if (!all_ok)
        return ok ? ivl_errorf("group '%s': the NCCL module failed to load on another rank",
                               g->name)
                  : ivl_errorf("%s", err);

    // Rank 0 makes the id; a failure there (no GPU) travels with it as a flag.
    unsigned char id[IVL_NCCL_ID_MAX + 1];
    memset(id, 0, sizeof id);
    if (g->rank == 0) {
        id[IVL_NCCL_ID_MAX] = g_module->get_unique_id(id) == 0;
        if (!id[IVL_NCCL_ID_MAX]) snprintf(err, sizeof err, "%s", ivl_last_error());
    }
    MPI_CHECK(MPI_Bcast(id, (int)sizeof id, MPI_UNSIGNED_CHAR, 0, g->comm));
    if (!id[IVL_NCCL_ID_MAX])
        return g->rank == 0 ? ivl_errorf("group '%s': %s", g->name, err)
                            : ivl_errorf("group '%s': rank 0 could not make an NCCL id "
                                         "(see its message)", g->name);

    // ncclCommInitRank is collective and cannot be left by one rank alone, so everything
    // that can fail on one rank (the device) is agreed on before it.
    ok = g_module->use_device(device) == 0;
    if (!ok) snprintf(err, sizeof err, "%s", ivl_last_error());
    MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, g->comm));
    if (!all_ok)
        return ok ? ivl_errorf("group '%s': CUDA device setup failed on another rank", g->name)
                  : ivl_errorf("group '%s': %s", g->name, err);
    g->dev = g_module->comm_create(id, g->size, g->rank);
    LOG_DEBUG("group '%s': NCCL communicator of %d ranks on device %d", g->name, g->size, device);
    return 0;
}

void ivl_comm_group_set_stream(ivl_comm_group *g, void *cuda_stream) {
    IVL_CHECK(g->dev && g_module, "group '%s' has no device communicator: call "
              "ivl_comm_group_init_device first", g->name);
    g_module->set_stream(g->dev, cuda_stream);
}

void ivl_comm_device_free(ivl_comm_group *g) {
    if (g->dev && g_module) g_module->comm_destroy(g->dev);
    g->dev = NULL;
}
