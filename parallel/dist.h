// dist.h - the model spread over ranks: tensor parallelism inside a pipeline stage, pipeline
// parallelism across stages, tile-sharded vision. Every rank calls every function here in the
// same order with the same arguments (lockstep). The last stage's logits go to world rank 0,
// which picks the tokens and shares them (ivl_step.share_tokens), so all ranks take the same
// decisions.
//
//   world = tp x pp. Stage s owns layers [layer0_s, layer1_s) (even split, or --pp-layers);
//   rank r is stage r / tp, tp rank r % tp (comm/topology.h).
//   TP: column-parallel q, k, v, gate, up; row-parallel o, down + one all-reduce each;
//       vocab-parallel embedding (+ all-reduce) and LM head (+ all-gather) (core/models/llm.h).
//   PP: stage s receives hidden states from stage s-1 and sends to s+1; a step's sequences
//       are cut into micro-batches so stage s works on micro-batch m while s+1 works on m-1.
//   Vision: by default every rank holds the ViT and projector and encodes a contiguous share
//       of the batch's tiles; with --vit-tp V, groups of V ranks split the ViT (heads and MLP,
//       core/models/vit.h) and each group encodes a share. Each group's first rank then sends
//       its rows to every rank of the first pipeline stage (the only stage that reads image
//       embeddings): the first stage ends up with all [tiles*256, D] rows, later stages with
//       none (an empty tensor).
#ifndef IVL_PARALLEL_DIST_H
#define IVL_PARALLEL_DIST_H

#include "comm/comm.h"
#include "comm/topology.h"
#include "core/models/generate.h"
#include "core/models/internvl.h"

typedef struct {
    int tp, pp;               // LLM layout (world must equal tp * pp)
    int vit_tp;               // ranks splitting one ViT (heads and MLP); 1 = every rank holds it
    const char *pp_layers;    // "12,12": layers per stage; NULL = even split
    int microbatches;         // pipeline micro-batches per step; 0 = pp
    int text_only;            // 1: no image will come, the ViT and projector are not loaded
    int gpu_share;            // --gpu-share: ranks may share a GPU (tests, small models)
    int gpu_shared;           // set by the session: this rank's GPU is shared with another rank
} ivl_parallel_opts;

typedef struct {
    ivl_topology topo;
    const ivl_comm_ops *ops;  // MPI on the CPU backend; NCCL on CUDA, or MPI with host staging
    char comm_name[8];        // the collectives in use: "nccl" or "mpi"
    ivl_model model;
    ivl_kv_cache kv;
    int kv_ready;
    const ivl_tensor *image_embeds;
    int microbatches;
    int logits_root;          // world rank whose logits go to rank 0: (last stage, tp rank 0)
} ivl_dist;

// Splits `layers` over `pp` stages: from spec ("12,12") or evenly (the first stages take the
// remainder). Returns 0 or -1 + ivl_last_error(). first[s] .. first[s+1]-1 are stage s's.
int ivl_pp_split(int layers, int pp, const char *spec, int *first);

// Collectives (IVL_COMM in the environment): auto (default) = NCCL on the CUDA backend, every
// group (world, tp, pp, vit_tp, vit_dp) with its own communicator bound to the backend's
// compute stream; MPI with host staging (parallel/comm_staged.h, logged once) when NCCL cannot
// be used: ranks sharing a GPU without NCCL_HOSTID, the NCCL module or libnccl missing at run
// time. nccl = NCCL or fail; mpi = staging on GPUs; staged = staging even on the CPU (tests).
// The CPU backend uses MPI on host memory.
// Collective: topology, shard, loading (each rank reads only its share of the LLM).
// Returns 0, or -1 with the same error on every rank (bad layout).
int ivl_dist_init(ivl_dist *d, ivl_backend *be, const ivl_weight_reader *r,
                  const ivl_model_config *cfg, const ivl_parallel_opts *o);
void ivl_dist_free(ivl_dist *d);

// Collective: every rank passes the same host pixels [tiles, 3, S, S]; the ranks of the
// first pipeline stage get embeds (backend [tiles*256, D], allocated here), the others an
// empty tensor (data NULL).
// dump: the ViT's intermediates of this rank's share (all tiles when one vision group holds
// them all: one rank, or --vit-tp = world).
void ivl_dist_encode_images(ivl_dist *d, const ivl_tensor *pixels_host, ivl_tensor *embeds,
                            const ivl_dump *dump);
// The tiles [*t0, *t1) of a batch of `tiles` that world rank `rank` encodes (its vision
// data-parallel group's contiguous share; the ranks of one --vit-tp group share it).
void ivl_dist_tile_share(const ivl_dist *d, int rank, int64_t tiles, int64_t *t0, int64_t *t1);
// As ivl_dist_encode_images, but each rank passes only its own share of the batch (pixels
// [t1 - t0, 3, S, S] for ivl_dist_tile_share(d, own rank, tiles); NULL when it is empty):
// a job whose pixels start on one rank sends each rank its share, not every tile to all.
void ivl_dist_encode_share(ivl_dist *d, const ivl_tensor *mine_host, int64_t tiles,
                           ivl_tensor *embeds);

// The paged KV cache's pool on this rank's layers: n_blocks blocks of block_size positions
// (the same numbers on every rank; parallel/scheduler.h hands out the blocks).
void ivl_dist_kv_init(ivl_dist *d, int64_t n_blocks, int block_size);
void ivl_dist_kv_free(ivl_dist *d);

// The step for the engine (every rank steps in lockstep), for any layout, one
// rank included: dumps of the layers this rank holds; greedy picks on the device when tp = 1.
ivl_step ivl_dist_step(ivl_dist *d);

#endif
