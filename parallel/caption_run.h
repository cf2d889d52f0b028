// caption_run.h - the captioning loop of `internvl caption` (issue 7; design.md "Data flow
// of a captioning batch", "Results and resume").
//
// Every rank runs ivl_caption_run in lockstep, each with its own copy of the scheduler
// (parallel/scheduler.h) in the same state. The loop is the engine's (ivl_engine_run); caption
// gives it a feed (steps 1-3) and a drain (step 5). Each iteration ("tick"):
//   1. all ranks: one MAX all-reduce of {signal level, error}: a SIGTERM seen by any rank
//      stops every rank at the same tick, so no rank is left in a collective;
//   2. rank 0 plans which images start: it pops decoded images from the feed (caption_feed.h),
//      builds each prompt (<IMG_CONTEXT> x 256 x tiles) and starts images while the scheduler
//      has a sequence slot (--max-seqs) and free KV blocks for their prompts, and their prompts
//      fit the step's rows (--batch-tokens); requests the scheduler paused (preempted) go
//      first. It broadcasts the plan (comm/proto/ivl.proto Envelope{BatchPlan} with
//      ImageRef/Sequence: the new images and their prompts; Control{SHUTDOWN,STOP,ERROR}
//      ends the loop);
//   3. all ranks: the new images' tiles (one ViT batch over all of them) go from rank 0 to the
//      ranks that encode them (ivl_dist_encode_share); every rank submits the new requests to
//      its scheduler, which refers to their embedding rows until they end;
//   4. all ranks: one engine step (parallel/engine.h): the scheduler's plan (prefill chunks of
//      new sequences mixed with a decode row of each running one, over the paged KV cache),
//      the forward, the tokens (greedy on the device, or sampled on rank 0 with a per-image
//      seed so the result does not depend on batching), the commit;
//   5. a finished sequence's line is formatted on rank 0 (on_done) and appended to its unit's
//      file, fsync'ed at least every flush_s seconds (caption_out.h); a unit is marked done
//      once all its keys are written. The progress line shows the decode batch and KV use.
// Stop: signal level 1 (first SIGTERM/SIGINT) admits nothing new, finishes the running
// sequences, flushes, and returns with summary.stopped = 1; level 2 (a second signal) drops
// the running sequences after the current step. Their keys are redone by the next run.
#ifndef IVL_PARALLEL_CAPTION_RUN_H
#define IVL_PARALLEL_CAPTION_RUN_H

#include <signal.h>
#include <stdint.h>

#include "comm/comm.h"
#include "core/models/generate.h"
#include "core/text/chat.h"
#include "parallel/engine.h"
#include "parallel/caption_input.h"

typedef struct {
    const char *out_dir;
    const char *prompt;          // the user question
    const char *system;          // NULL: config/template default
    int max_tiles;
    int64_t max_pixels;          // decode limit per image (<= 0: core/image's default)
    int max_new_tokens;
    ivl_sampling sampling;
    int max_seqs;                // most sequences in flight at once
    int64_t batch_tokens;        // most rows (prefill + decode) in one step
    int threads;                 // image decode workers (rank 0)
    int queue;                   // decoded images held ahead of the model
    double flush_s;              // results reach the disk at least this often (0: every step)
    double log_s;                // progress line interval when stderr is not a terminal
    int progress_bar;            // 1: \r progress bar, 0: log lines
    int64_t max_member_bytes;    // larger tar members and image files become error results
    int exif_transpose;          // 1: apply EXIF orientation (not the reference's default)
    volatile sig_atomic_t *stop_level;   // set by the launcher's signal handlers
    const char *model_name;      // "model" of every line (caption_settings.h: ivl_cap_model_name)
    const char *settings_id;     // "settings" of every line: the settings' fingerprint (or NULL)
    double step_timeout_s;       // watchdog (watchdog.h): end the job when no step finishes
                                 // for this long; <= 0: off
} ivl_caption_opts;

// The model as the loop sees it (one rank, or a tp x pp group).
typedef struct {
    const ivl_model_config *cfg;
    ivl_engine *eng;                 // the scheduler over the paged KV cache, and the step
    // Encodes a batch of `tiles` tiles of which this rank holds pixels_host [t1 - t0, 3, S, S]
    // (NULL: none), its share from tile_share; embeds: every tile's rows, on the ranks
    // of the first pipeline stage (the others get an empty tensor).
    void (*encode)(void *ctx, const ivl_tensor *pixels_host, int64_t tiles, ivl_tensor *embeds);
    // The share [t0, t1) of world rank `rank`; NULL: one rank encodes every tile.
    void (*tile_share)(void *ctx, int rank, int64_t tiles, int64_t *t0, int64_t *t1);
    void *encode_ctx;
    ivl_backend *be;
    const ivl_tokenizer *tok;
    const ivl_chat_template *tmpl;
    int32_t stop_id, img_context;
    int64_t kv_positions;            // the KV cache's positions (blocks x block size)
    int kv_block;                    // positions per block
} ivl_caption_engine;

typedef struct {
    int64_t done, skipped, failed;   // images captioned, skipped (done before), error lines
    int64_t retried;                 // images not written, retried by the next run (I/O errors)
    int64_t dups, dups_across;       // keys twice in one output (skipped) / also in another one
    int64_t units, units_done, units_failed;
    int64_t gen_tokens, prompt_tokens;
    double seconds;
    int peak_in_flight;              // most sequences in one step
    int64_t kv_blocks, kv_peak_blocks;   // KV blocks in all / most in use at once
    int64_t reused_tokens;           // prompt positions served from the prefix cache
    int64_t preemptions;             // sequences paused for lack of KV blocks, recomputed later
    int stopped;                     // a signal stopped the run (work remains)
    int fatal;                       // a job-level error (message logged on rank 0)
} ivl_caption_summary;

// Tokens of the longest prompt (max_tiles, plus the thumbnail) + max_new_tokens: the KV
// positions one image may need. -1 + ivl_last_error() when the prompt cannot be encoded.
int64_t ivl_caption_max_ctx(const ivl_tokenizer *tok, const ivl_chat_template *tmpl,
                            const ivl_model_config *cfg, const ivl_caption_opts *o);

// Collective. `in` is read on rank 0 only (NULL elsewhere). Returns 0 when every unit is
// complete, 75 when stopped by a signal with work left, 1 after a job-level error or when a
// unit could not be read to its end (summary says which).
int ivl_caption_run(const ivl_caption_engine *e, const ivl_cap_inputs *in,
                    const ivl_caption_opts *o, ivl_caption_summary *sum);

#define IVL_CAPTION_EXIT_REQUEUE 75   // EX_TEMPFAIL: stopped early, run again to continue

#endif
