// serve_metrics.h - the server's counters and histograms, rendered in the Prometheus text
// exposition format (GET /metrics). Thread-safe (one mutex); docs/serve.md lists the metrics.
#ifndef IVL_SERVE_METRICS_H
#define IVL_SERVE_METRICS_H

#include <pthread.h>
#include <stdint.h>

#define IVL_SERVE_HIST_BUCKETS 14

typedef struct {
    uint64_t count[IVL_SERVE_HIST_BUCKETS + 1];   // last: +Inf
    double sum;
    uint64_t n;
} ivl_serve_hist;

typedef struct {
    pthread_mutex_t mu;
    uint64_t by_status[600];         // requests answered, by HTTP status
    uint64_t prompt_tokens, completion_tokens;
    uint64_t cancelled, timed_out;
    ivl_serve_hist ttft;             // seconds from arrival to the first token
    ivl_serve_hist tpot;             // seconds per output token after the first
    ivl_serve_hist e2e;              // seconds from arrival to the last token
    int queue_length;                // waiting jobs
    int running;                     // sequences being generated (0 or 1: one at a time)
    int64_t kv_used, kv_cached, kv_total;   // KV blocks referenced by sequences / held only by
                                            // the prefix cache / in the pool
    double start;                    // monotonic seconds at start
} ivl_serve_metrics;

void ivl_serve_metrics_init(ivl_serve_metrics *m);
void ivl_serve_metrics_status(ivl_serve_metrics *m, int status);
// A finished generation: its token counts and timings (ttft < 0: no token came).
void ivl_serve_metrics_done(ivl_serve_metrics *m, int prompt_tokens, int completion_tokens,
                            double ttft, double tpot, double e2e, const char *finish_reason);
void ivl_serve_metrics_gauges(ivl_serve_metrics *m, int queue_length, int running,
                              int64_t kv_used, int64_t kv_cached, int64_t kv_total);
void ivl_serve_metrics_queue(ivl_serve_metrics *m, int queue_length);
// The exposition text (malloc'ed).
char *ivl_serve_metrics_render(ivl_serve_metrics *m);

#endif
