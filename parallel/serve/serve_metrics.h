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

// The engine's side, set by the engine loop after every step (and when idle).
typedef struct {
    int queue_length;                // requests waiting in the HTTP queue
    int running;                     // sequences in the running batch (the scheduler's)
    int peak_running;                // most sequences in one step since start
    int64_t kv_used, kv_cached, kv_total;   // KV blocks referenced by sequences / held only by
                                            // the prefix cache / in the pool
    int64_t reused_tokens;           // prompt positions served from the prefix cache (total)
    int64_t preemptions;             // sequences paused for KV blocks and recomputed (total)
} ivl_serve_gauges;

typedef struct {
    pthread_mutex_t mu;
    uint64_t by_status[600];         // requests answered, by HTTP status
    uint64_t prompt_tokens, completion_tokens;
    uint64_t cancelled, timed_out;
    ivl_serve_hist ttft;             // seconds from arrival to the first token
    ivl_serve_hist tpot;             // seconds per output token after the first
    ivl_serve_hist e2e;              // seconds from arrival to the last token
    ivl_serve_gauges g;              // the engine's state after its last step
    double start;                    // monotonic seconds at start
} ivl_serve_metrics;

void ivl_serve_metrics_init(ivl_serve_metrics *m);
void ivl_serve_metrics_status(ivl_serve_metrics *m, int status);
// A finished generation: its token counts and timings (ttft < 0: no token came).
void ivl_serve_metrics_done(ivl_serve_metrics *m, int prompt_tokens, int completion_tokens,
                            double ttft, double tpot, double e2e, const char *finish_reason);
void ivl_serve_metrics_gauges(ivl_serve_metrics *m, const ivl_serve_gauges *g);
void ivl_serve_metrics_queue(ivl_serve_metrics *m, int queue_length);
// The exposition text (malloc'ed).
char *ivl_serve_metrics_render(ivl_serve_metrics *m);

#endif
