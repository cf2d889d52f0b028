// topology.c - layout arithmetic (pure) and the groups it implies (MPI).
#include "comm/topology.h"
#include "core/check.h"

#include <stdio.h>
#include <string.h>

// "--tp 1 --pp 6, --tp 2 --pp 3, ..." for every split of world, largest tp first (TP inside
// a node is usually the better use of a fast link than more stages).
static void suggest_splits(int world, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (int tp = world; tp >= 1 && used < n; tp--) {
        if (world % tp) continue;
        used += (size_t)snprintf(buf + used, n - used, "%s--tp %d --pp %d", used ? ", " : "",
                                 tp, world / tp);
    }
}

int ivl_layout_check(ivl_layout *l) {
    char s[512];
    if (l->vit_tp <= 0) l->vit_tp = 1;
    if (l->world < 1) return ivl_errorf("layout: the job has %d ranks", l->world);
    if (l->tp < 1 || l->pp < 1) {
        suggest_splits(l->world, s, sizeof s);
        return ivl_errorf("layout: --tp %d --pp %d: both must be >= 1; with %d ranks use %s",
                          l->tp, l->pp, l->world, s);
    }
    if ((long)l->tp * l->pp != l->world) {
        suggest_splits(l->world, s, sizeof s);
        return ivl_errorf("layout: --tp %d --pp %d needs tp x pp = %ld ranks, but the job has "
                          "%d; with %d ranks use %s (or start %ld ranks)",
                          l->tp, l->pp, (long)l->tp * l->pp, l->world, l->world, s,
                          (long)l->tp * l->pp);
    }
    if (l->world % l->vit_tp) {
        size_t used = 0;
        s[0] = 0;
        for (int v = 1; v <= l->world; v++)
            if (l->world % v == 0)
                used += (size_t)snprintf(s + used, sizeof s - used, "%s%d", used ? ", " : "", v);
        return ivl_errorf("layout: --vit-tp %d does not divide the %d ranks into whole ViT "
                          "groups; use one of %s", l->vit_tp, l->world, s);
    }
    return 0;
}

ivl_layout_pos ivl_layout_position(const ivl_layout *l, int rank) {
    IVL_ASSERT(rank >= 0 && rank < l->world);
    ivl_layout_pos p = {
        .stage = rank / l->tp,
        .tp_rank = rank % l->tp,
        .vit_tp_rank = rank % l->vit_tp,
        .vit_dp_rank = rank / l->vit_tp,
    };
    return p;
}

int ivl_layout_rank(const ivl_layout *l, int stage, int tp_rank) {
    IVL_ASSERT(stage >= 0 && stage < l->pp && tp_rank >= 0 && tp_rank < l->tp);
    return stage * l->tp + tp_rank;
}

int ivl_topology_create(ivl_topology *t, int tp, int pp, int vit_tp) {
    memset(t, 0, sizeof *t);
    // Every rank checks the same numbers, so every rank returns the same error: no collective
    // is entered by only some of them.
    t->layout = (ivl_layout){.world = ivl_comm_world_size(), .tp = tp, .pp = pp,
                             .vit_tp = vit_tp};
    if (ivl_layout_check(&t->layout) != 0) return -1;
    const ivl_layout *l = &t->layout;
    t->rank = ivl_comm_world_rank();
    t->pos = ivl_layout_position(l, t->rank);

    ivl_comm_group_world(&t->world);
    ivl_comm_group_split(&t->tp, &t->world, t->pos.stage, t->pos.tp_rank, "tp");
    ivl_comm_group_split(&t->pp, &t->world, t->pos.tp_rank, t->pos.stage, "pp");
    ivl_comm_group_split(&t->vit_tp, &t->world, t->pos.vit_dp_rank, t->pos.vit_tp_rank, "vit_tp");
    ivl_comm_group_split(&t->vit_dp, &t->world, t->pos.vit_tp_rank, t->pos.vit_dp_rank, "vit_dp");
    IVL_ASSERT(t->tp.rank == t->pos.tp_rank && t->pp.rank == t->pos.stage);

    t->prev = t->pos.stage > 0 ? t->pos.stage - 1 : -1;
    t->next = t->pos.stage < l->pp - 1 ? t->pos.stage + 1 : -1;
    t->prev_world = t->prev >= 0 ? t->pp.world_ranks[t->prev] : -1;
    t->next_world = t->next >= 0 ? t->pp.world_ranks[t->next] : -1;
    return 0;
}

void ivl_topology_free(ivl_topology *t) {
    if (t->layout.world == 0 || t->world.size == 0) return;   // create failed or never ran
    ivl_comm_group_free(&t->vit_dp);
    ivl_comm_group_free(&t->vit_tp);
    ivl_comm_group_free(&t->pp);
    ivl_comm_group_free(&t->tp);
    ivl_comm_group_free(&t->world);
    memset(t, 0, sizeof *t);
}

void ivl_topology_describe(const ivl_topology *t, char *buf, size_t n) {
    char prev[16] = "-", next[16] = "-";
    if (t->prev_world >= 0) snprintf(prev, sizeof prev, "%d", t->prev_world);
    if (t->next_world >= 0) snprintf(next, sizeof next, "%d", t->next_world);
    snprintf(buf, n, "rank %d/%d: stage %d/%d tp %d/%d (prev rank %s, next rank %s), "
             "vit_tp %d/%d vit_dp %d/%d", t->rank, t->layout.world, t->pos.stage, t->layout.pp,
             t->pos.tp_rank, t->layout.tp, prev, next, t->vit_tp.rank, t->vit_tp.size,
             t->vit_dp.rank, t->vit_dp.size);
}
