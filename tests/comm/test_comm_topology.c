// test_comm_topology.c - layouts and the groups built from them.
// Pure part (every rank, no MPI needed): ivl_layout_check accepts exactly tp*pp == world with
// vit_tp | world, and its errors name the numbers and suggest a layout that fits.
// MPI part: for every tp x pp == world (and every vit_tp dividing world), the groups have the
// members the layout says, pipeline neighbours are right, and a collective on each group sums
// exactly its members. Bad layouts return -1 on every rank.
#include <stdlib.h>
#include <string.h>

#include "comm/topology.h"
#include "comm_test.h"
#include "core/check.h"

static void test_layout_pure(void) {
    for (int world = 1; world <= 16; world++)
        for (int tp = 0; tp <= 17; tp++)
            for (int pp = 0; pp <= 17; pp++) {
                ivl_layout l = {.world = world, .tp = tp, .pp = pp, .vit_tp = 0};
                int rc = ivl_layout_check(&l);
                int want = tp >= 1 && pp >= 1 && tp * pp == world ? 0 : -1;
                EXPECT(rc == want, "world %d tp %d pp %d: rc %d", world, tp, pp, rc);
                if (rc) continue;
                EXPECT(l.vit_tp == 1, "vit_tp default %d", l.vit_tp);
                for (int r = 0; r < world; r++) {
                    ivl_layout_pos p = ivl_layout_position(&l, r);
                    EXPECT(p.stage == r / tp && p.tp_rank == r % tp &&
                               ivl_layout_rank(&l, p.stage, p.tp_rank) == r,
                           "world %d tp %d: rank %d -> stage %d tp %d", world, tp, r, p.stage,
                           p.tp_rank);
                }
            }
    // The messages: name the numbers, suggest what works.
    ivl_layout l = {.world = 6, .tp = 4, .pp = 2};
    EXPECT(ivl_layout_check(&l) == -1, "6 ranks, tp 4 pp 2");
    const char *e = ivl_last_error();
    EXPECT(strstr(e, "--tp 4 --pp 2") && strstr(e, "8 ranks") && strstr(e, "has 6") &&
               strstr(e, "--tp 3 --pp 2") && strstr(e, "--tp 6 --pp 1"),
           "message: %s", e);
    if (ivl_comm_world_rank() == 0) printf("bad layout message: %s\n", e);
    l = (ivl_layout){.world = 4, .tp = 0, .pp = 4};
    EXPECT(ivl_layout_check(&l) == -1 && strstr(ivl_last_error(), ">= 1"), "tp 0: %s",
           ivl_last_error());
    l = (ivl_layout){.world = 6, .tp = 3, .pp = 2, .vit_tp = 4};
    EXPECT(ivl_layout_check(&l) == -1 && strstr(ivl_last_error(), "--vit-tp 4") &&
               strstr(ivl_last_error(), "1, 2, 3, 6"),
           "vit_tp 4 of 6: %s", ivl_last_error());
    l = (ivl_layout){.world = 6, .tp = 3, .pp = 2, .vit_tp = 2};
    EXPECT(ivl_layout_check(&l) == 0, "vit_tp 2 of 6: %s", ivl_last_error());
}

// Sum of the world ranks of a group, through a real collective on it.
static int group_rank_sum(const ivl_comm_group *g) {
    int32_t v = ivl_comm_world_rank();
    ivl_comm_mpi_ops()->allreduce(g, &v, 1, IVL_I32, IVL_COMM_SUM);
    return v;
}

static void test_topology(int tp, int pp, int vit_tp) {
    const int W = ivl_comm_world_size(), me = ivl_comm_world_rank();
    ivl_topology t;
    int rc = ivl_topology_create(&t, tp, pp, vit_tp);
    EXPECT(rc == 0, "tp %d pp %d vit_tp %d: %s", tp, pp, vit_tp, ivl_last_error());
    if (rc) return;
    const char *ctx = "";
    char where[64];
    snprintf(where, sizeof where, "tp %d pp %d vit_tp %d", tp, pp, vit_tp);
    ctx = where;
    int stage = me / tp, tpr = me % tp, V = vit_tp < 1 ? 1 : vit_tp;
    EXPECT(t.pos.stage == stage && t.pos.tp_rank == tpr, "%s: pos", ctx);
    EXPECT(t.world.size == W && t.world.rank == me, "%s: world", ctx);
    // tp: the tp ranks of my stage, in tp order.
    EXPECT(t.tp.size == tp && t.tp.rank == tpr, "%s: tp %d/%d", ctx, t.tp.rank, t.tp.size);
    int tsum = 0;
    for (int i = 0; i < tp && i < t.tp.size; i++) {
        EXPECT(t.tp.world_ranks[i] == stage * tp + i, "%s: tp member %d", ctx, i);
        tsum += stage * tp + i;
    }
    EXPECT(group_rank_sum(&t.tp) == tsum, "%s: allreduce on tp", ctx);
    // pp: one rank per stage with my tp rank.
    EXPECT(t.pp.size == pp && t.pp.rank == stage, "%s: pp %d/%d", ctx, t.pp.rank, t.pp.size);
    int psum = 0;
    for (int s = 0; s < pp && s < t.pp.size; s++) {
        EXPECT(t.pp.world_ranks[s] == s * tp + tpr, "%s: pp member %d", ctx, s);
        psum += s * tp + tpr;
    }
    EXPECT(group_rank_sum(&t.pp) == psum, "%s: allreduce on pp", ctx);
    EXPECT(t.prev == (stage > 0 ? stage - 1 : -1) && t.next == (stage < pp - 1 ? stage + 1 : -1),
           "%s: prev %d next %d", ctx, t.prev, t.next);
    EXPECT(t.prev_world == (stage > 0 ? me - tp : -1) &&
               t.next_world == (stage < pp - 1 ? me + tp : -1),
           "%s: prev_world %d next_world %d", ctx, t.prev_world, t.next_world);
    // The pipeline hand-off works along pp: each stage sends its world rank to the next.
    if (t.next >= 0) ivl_comm_mpi_ops()->send(&t.pp, &me, 1, IVL_I32, t.next);
    if (t.prev >= 0) {
        int32_t got = -1;
        ivl_comm_mpi_ops()->recv(&t.pp, &got, 1, IVL_I32, t.prev);
        EXPECT(got == t.prev_world, "%s: got %d from prev, expected %d", ctx, got, t.prev_world);
    }
    // vision: vit_tp = V consecutive ranks; vit_dp = one rank per vit_tp group.
    EXPECT(t.vit_tp.size == V && t.vit_tp.rank == me % V, "%s: vit_tp %d/%d", ctx,
           t.vit_tp.rank, t.vit_tp.size);
    EXPECT(t.vit_dp.size == W / V && t.vit_dp.rank == me / V, "%s: vit_dp %d/%d", ctx,
           t.vit_dp.rank, t.vit_dp.size);
    int vsum = 0, dsum = 0;
    for (int i = 0; i < V; i++) vsum += (me / V) * V + i;
    for (int j = 0; j < W / V; j++) dsum += j * V + me % V;
    EXPECT(group_rank_sum(&t.vit_tp) == vsum, "%s: allreduce on vit_tp", ctx);
    EXPECT(group_rank_sum(&t.vit_dp) == dsum, "%s: allreduce on vit_dp", ctx);
    char line[256];
    ivl_topology_describe(&t, line, sizeof line);
    EXPECT(strstr(line, "stage") != NULL, "describe: %s", line);
    if (me == W - 1) printf("%s -> %s\n", ctx, line);
    ivl_topology_free(&t);
}

int main(int argc, char **argv) {
    ivl_comm_init(&argc, &argv);
    const int W = ivl_comm_world_size();
    test_layout_pure();
    for (int tp = 1; tp <= W; tp++) {
        if (W % tp) continue;
        for (int v = 0; v <= W; v++)
            if (v == 0 || W % v == 0) test_topology(tp, W / tp, v);
    }
    // Bad layouts: every rank gets -1 and the same message, and nothing is left half-built.
    ivl_topology t;
    EXPECT(ivl_topology_create(&t, W + 1, 1, 0) == -1, "tp %d on %d ranks accepted", W + 1, W);
    EXPECT(strstr(ivl_last_error(), "has") != NULL, "message: %s", ivl_last_error());
    ivl_topology_free(&t);   // safe on a failed create
    EXPECT(ivl_topology_create(&t, W, 2, 0) == -1, "pp 2 x tp %d on %d ranks accepted", W, W);
    ivl_topology_free(&t);
    if (W > 1) {
        EXPECT(ivl_topology_create(&t, W, 1, W + 1) == -1, "vit_tp %d accepted", W + 1);
        ivl_topology_free(&t);
    }
    // Still in step after the failures: a collective on the world works.
    int32_t one = 1;
    MPI_Allreduce(MPI_IN_PLACE, &one, 1, MPI_INT32_T, MPI_SUM, MPI_COMM_WORLD);
    EXPECT(one == W, "world allreduce after bad layouts: %d", one);
    return comm_test_finish("test_comm_topology");
}
