// caption_progress.h - rank 0's progress report: on a terminal a one-line bar redrawn in
// place (images/s, tokens/s, ETA), otherwise a log line every `log_s` seconds; and the final
// summary line.
#ifndef IVL_PARALLEL_CAPTION_PROGRESS_H
#define IVL_PARALLEL_CAPTION_PROGRESS_H

#include <stdint.h>

typedef struct {
    int bar;                  // 1: \r bar on stderr
    double log_s;
    double t0, last;          // seconds (monotonic)
    int64_t total;            // estimated images this run will see (done+skipped+failed+left); -1 unknown
    int64_t done, skipped, failed, tokens;
    int64_t retried;          // images not written, retried by the next run (caption_retry.h)
    int64_t dups, dups_across;   // duplicate keys: within one output / also in another output
    int drawn;
    // The decode batch and the KV cache (set by the loop each step): sequences in flight now
    // and at most so far, KV blocks in use now / at most / in all, prefix-cache hits.
    int in_flight, peak_in_flight;
    int64_t kv_used, kv_peak, kv_total, reused_tokens, preemptions;
} ivl_cap_progress;

double ivl_cap_now(void);
void ivl_cap_progress_init(ivl_cap_progress *p, int bar, double log_s);
// Redraws (bar, at most 4 times a second) or logs (every log_s) unless force.
void ivl_cap_progress_update(ivl_cap_progress *p, int force);
// Ends the bar line and logs the summary.
void ivl_cap_progress_finish(ivl_cap_progress *p, int64_t units_done, int64_t units,
                             int64_t units_failed, int stopped);

#endif
