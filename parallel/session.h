// session.h - a model ready to run on this job's ranks, whatever the layout: the model file,
// its tokenizer, a backend, and the model's share on this rank (parallel/dist.h; one rank is
// the 1 x 1 layout, the same code). The subcommands (forward, chat, caption, bench) share it, so each is
// only its own loop. Every function is collective when the job has several ranks.
#ifndef IVL_PARALLEL_SESSION_H
#define IVL_PARALLEL_SESSION_H

#include "core/backend.h"
#include "core/models/generate.h"
#include "core/models/internvl.h"
#include "core/text/tokenizer.h"
#include "parallel/dist.h"
#include "parallel/engine.h"
#include "parallel/scheduler.h"
#include "parallel/rank_device.h"
#include "weights/model_source.h"

typedef struct {
    ivl_model_source src;
    ivl_tokenizer *tok;
    ivl_backend *be;
    ivl_rank_device dev;      // the GPU this rank uses, when on the CUDA backend
    ivl_parallel_opts popt;   // the layout the session was opened with
    int distributed;          // several ranks or a tp/pp/vit-tp layout (1 x 1 on one rank)
    int rank;                 // world rank (0 when alone)
    ivl_dist dist;            // the model on this rank, for any layout (one rank included)
    ivl_model *model;         // &dist.model
    ivl_tensor embeds;        // image embeddings of the current batch (backend), or empty
    ivl_sched *sched;         // the scheduler over the paged KV cache (ivl_session_kv_init)
    ivl_engine engine;
    int64_t kv_bytes;         // this rank's KV pool in bytes
} ivl_session;

// The paged KV cache and its scheduler (ivl_session_kv_init).
typedef struct {
    int64_t kv_mem;           // --kv-mem: bytes of KV cache per rank; 0 = default: a share of
                              // the memory left after the weights (GPU: 80% of the free
                              // memory; CPU: half of this rank's share of MemAvailable),
                              // at most what want_positions need
    int block_size;           // positions per block (0 = 16)
    int max_seqs;             // most sequences running at once (0 = 256)
    int64_t step_tokens;      // most rows in one step (0 = 8192)
    int64_t min_positions;    // one request's positions: a smaller cache is an error
    int64_t want_positions;   // the default cache need not hold more (0 = no cap)
    int no_prefix_reuse;      // 1: never share blocks between requests
} ivl_kv_opts;

// Opens the model for the layout in popt (NULL: one rank). ivl_comm_init must have run.
// Returns 0 or -1 + ivl_last_error() (the same on every rank for layout errors).
// = ivl_session_open_source, then ivl_session_load.
int ivl_session_open(ivl_session *s, const char *model_path, const char *device,
                     const ivl_parallel_opts *popt);
// The two halves, for commands that check their options against the config and tokenizer
// before the weights are loaded: the model file, its config and tokenizer (s->src, s->tok);
// then this rank's backend and GPU (parallel/rank_device.h), the memory check, the layout's
// collectives and the weights.
int ivl_session_open_source(ivl_session *s, const char *model_path);
int ivl_session_load(ivl_session *s, const char *device, const ivl_parallel_opts *popt);
void ivl_session_close(ivl_session *s);

// Encodes host pixels [tiles, 3, S, S] (every rank passes the same) into s->embeds; tiles
// are sharded over ranks when distributed. tiles == 0 clears s->embeds. dump: one rank only.
void ivl_session_encode_images(ivl_session *s, const ivl_tensor *pixels_host, const ivl_dump *dump);

// The tiles [*t0, *t1) of a batch that world rank `rank` encodes (all of them on one rank),
// and the encoding of one rank's share (collective; see ivl_dist_encode_share): the first
// pipeline stage gets every embedding row, other stages an empty tensor.
void ivl_session_tile_share(const ivl_session *s, int rank, int64_t tiles, int64_t *t0,
                            int64_t *t1);
void ivl_session_encode_share(ivl_session *s, const ivl_tensor *mine_host, int64_t tiles,
                              ivl_tensor *embeds);
// The KV cache, and where the step reads the image embeddings of the current step from.
ivl_kv_cache *ivl_session_kv(ivl_session *s);
const ivl_tensor **ivl_session_step_embeds(ivl_session *s);

// (Re)creates the paged KV cache and the scheduler (collective: every rank gets the same
// number of blocks, the smallest any rank's budget allows). 0, or -1 + ivl_last_error() (the
// same on every rank) when the cache cannot hold min_positions, naming the numbers.
int ivl_session_kv_init(ivl_session *s, const ivl_kv_opts *o);
// Frees the KV cache and the scheduler now; ivl_session_kv_init makes new ones.
void ivl_session_kv_free(ivl_session *s);
// The engine over the session's model, scheduler and image embeddings (after kv_init).
ivl_engine *ivl_session_engine(ivl_session *s);
// A one-line description of the cache: "KV cache: 412 blocks of 16 positions (6592 positions,
// 16384 bytes each), 103.0 MiB a rank"
void ivl_session_kv_describe(const ivl_session *s, char *buf, size_t n);

// The step for ivl_generate over the current image embeddings and KV cache.
ivl_step ivl_session_step(ivl_session *s);

// The collectives in use: "nccl", "mpi" or "none" (one rank).
const char *ivl_session_comm(const ivl_session *s);

#endif
