// topology.h - how the ranks of a job are arranged, and the communicator groups built from
// that once at start.
//
// Layout (world = tp * pp, ranks numbered so a TP group is consecutive ranks, which mpirun
// and Slurm place on one node, where NVLink makes TP's all-reduces cheap):
//     stage   = rank / tp          (pipeline stage, 0 .. pp-1)
//     tp_rank = rank % tp          (rank inside the stage's tensor-parallel group)
//   world 8, tp 4, pp 2:  stage 0 = ranks 0 1 2 3, stage 1 = ranks 4 5 6 7.
// Groups:
//   tp      the tp ranks of this stage; group rank = tp_rank
//   pp      the pp ranks with this tp_rank, one per stage; group rank = stage. The pipeline
//           hands hidden states to pp-group rank stage+1 (topo->next) and gets them from
//           stage-1 (topo->prev); -1 at the ends.
//   vit_tp  the vision tensor-parallel group: vit_tp consecutive ranks that split one ViT's
//           weights (--vit-tp V); size 1 by default (every rank holds a whole ViT).
//   vit_dp  the vision data-parallel group: ranks that share the tiles of a batch, one per
//           vit_tp group (all ranks by default: each rank encodes every size-th tile).
//   world   every rank (the image-embedding all-reduce, control messages).
#ifndef IVL_COMM_TOPOLOGY_H
#define IVL_COMM_TOPOLOGY_H

#include "comm/comm.h"

typedef struct ivl_layout {
    int world;    // ranks in the job
    int tp;       // LLM tensor-parallel ranks per stage
    int pp;       // LLM pipeline stages
    int vit_tp;   // ranks splitting one ViT (1 = each rank has a whole ViT)
} ivl_layout;

typedef struct ivl_layout_pos {
    int stage, tp_rank;        // LLM position
    int vit_tp_rank;           // rank inside the vit_tp group = rank % vit_tp
    int vit_dp_rank;           // which vit_tp group (= which share of the tiles) = rank / vit_tp
} ivl_layout_pos;

// Checks a layout: 0, or -1 with ivl_last_error() naming the numbers and suggesting layouts
// that fit the world size ("--tp 4 --pp 2 needs 8 ranks, the job has 6; with 6 ranks use
// --tp 6 --pp 1, --tp 3 --pp 2, ..."). vit_tp <= 0 means 1. Pure: no MPI.
int ivl_layout_check(ivl_layout *l);
// Position of world rank `rank` in a checked layout, and the inverse for the LLM grid.
ivl_layout_pos ivl_layout_position(const ivl_layout *l, int rank);
int ivl_layout_rank(const ivl_layout *l, int stage, int tp_rank);

typedef struct ivl_topology {
    ivl_layout layout;
    int rank;              // world rank
    ivl_layout_pos pos;
    ivl_comm_group world, tp, pp, vit_tp, vit_dp;
    int prev, next;              // pp-group ranks of the pipeline neighbours, -1 at the ends
    int prev_world, next_world;  // the same as world ranks
} ivl_topology;

// Collective over MPI_COMM_WORLD (after ivl_comm_init). Returns 0, or -1 with
// ivl_last_error() on every rank when the layout does not fit the job (nothing is created).
int ivl_topology_create(ivl_topology *t, int tp, int pp, int vit_tp);
void ivl_topology_free(ivl_topology *t);
// One line for the log: "rank 5/8: stage 1 tp 1/4 (prev 1 next -), vit 0/1 dp 5/8".
void ivl_topology_describe(const ivl_topology *t, char *buf, size_t n);

#endif
