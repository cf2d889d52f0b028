// phases.h - the timed phases of `internvl bench` over a loaded model, on one rank or a
// tp x pp layout (every rank calls every function in the same order, like parallel/dist.h).
//
// Timing protocol for every phase: untimed setup (KV reset or fill), a barrier, the work, a
// backend synchronize; the repeat's time is the maximum over ranks. `warmup` repeats are run
// and thrown away, then `repeats` are kept. Communication time per rank is counted over the
// kept repeats only (bench/driver/comm_timer.h).
#ifndef IVL_BENCH_PHASES_H
#define IVL_BENCH_PHASES_H

#include "bench/driver/report.h"
#include "core/models/generate.h"
#include "parallel/generate.h"
#include "core/models/internvl.h"
#include "parallel/dist.h"
#include "core/text/tokenizer.h"

typedef struct {
    ivl_backend *be;
    ivl_dist dist;            // the model on this rank, any layout (one rank included)
    ivl_model *m;             // &dist.model
    int warmup, repeats;
    uint64_t seed;
    double max_kv_bytes;      // per rank; a point needing more is skipped, not run
} ivl_bench_ctx;

// Loads the model (vision too) from r. 0, or -1 + ivl_last_error().
int ivl_bench_ctx_init(ivl_bench_ctx *c, ivl_backend *be, const ivl_weight_reader *r,
                       const ivl_model_config *cfg, const ivl_parallel_opts *popt);
void ivl_bench_ctx_free(ivl_bench_ctx *c);

// The timing loop of every phase (the protocol above): setup untimed (may be NULL), then run.
typedef struct {
    void (*setup)(void *arg);
    void (*run)(void *arg);
    void *arg;
} ivl_bench_fn;
void ivl_bench_time_loop(ivl_backend *be, const ivl_bench_fn *f, int warmup, int repeats,
                         ivl_bench_meas *m);

// Each fills m (phase, parameters, times, units, FLOPs, per-rank split on rank 0).
void ivl_bench_vit(ivl_bench_ctx *c, int tiles, ivl_bench_meas *m);
void ivl_bench_prefill(ivl_bench_ctx *c, int batch, int64_t prompt_len, ivl_bench_meas *m);
void ivl_bench_decode(ivl_bench_ctx *c, int batch, int64_t context_len, ivl_bench_meas *m);
// Captioning: one batch of images with tiles[i] tiles each; prompt_len text tokens around the
// image tokens; out_len generated tokens per image (the stop token is disabled so every
// image generates exactly out_len).
// Without a tokenizer (--preset): synthetic prompts through the scheduler (ivl_generate).
void ivl_bench_e2e(ivl_bench_ctx *c, const int *tiles, int images, int64_t prompt_len,
                   int64_t out_len, ivl_bench_meas *m);
// With the model file's tokenizer: the real `caption` pipeline (parallel/caption_run.h:
// image decode threads, tiling, the scheduler over the paged KV cache, JSONL output) over
// synthetic photos, one per entry of tiles (an image of tiles[i] tiles, plus the thumbnail),
// out_len new tokens each (stop token off), the KV cache of kv_bytes a rank (0: what the
// batch needs) and at most max_seqs in flight. Reports images/s and the peak in flight.
void ivl_bench_e2e_caption(ivl_bench_ctx *c, const ivl_tokenizer *tok, const int *tiles,
                           int images, int64_t out_len, int64_t kv_bytes, int max_seqs,
                           ivl_bench_meas *m);

// Ceilings of this backend, measured with every rank running at once: a square GEMM of
// size n through be->matmul (TFLOP/s) and a copy of `mib` MiB through be->copy (GB/s,
// read + write bytes).
void ivl_bench_peak_gemm(ivl_backend *be, int n, int warmup, int repeats, ivl_bench_meas *m);
void ivl_bench_mem_copy(ivl_backend *be, int mib, int warmup, int repeats, ivl_bench_meas *m);

#endif
