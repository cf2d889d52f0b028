// serve_metrics.c - see serve_metrics.h.
#include "parallel/serve/serve_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "parallel/serve/serve_job.h"

static const double k_bounds[IVL_SERVE_HIST_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

void ivl_serve_metrics_init(ivl_serve_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->start = ivl_serve_now();
}

static void hist_add(ivl_serve_hist *h, double v) {
    int b = 0;
    while (b < IVL_SERVE_HIST_BUCKETS && v > k_bounds[b]) b++;
    h->count[b]++;
    h->sum += v;
    h->n++;
}

void ivl_serve_metrics_status(ivl_serve_metrics *m, int status) {
    pthread_mutex_lock(&m->mu);
    if (status >= 100 && status < 600) m->by_status[status]++;
    pthread_mutex_unlock(&m->mu);
}

void ivl_serve_metrics_done(ivl_serve_metrics *m, int prompt_tokens, int completion_tokens,
                            double ttft, double tpot, double e2e, const char *finish_reason) {
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (uint64_t)prompt_tokens;
    m->completion_tokens += (uint64_t)completion_tokens;
    if (ttft >= 0) hist_add(&m->ttft, ttft);
    if (tpot >= 0) hist_add(&m->tpot, tpot);
    if (e2e >= 0) hist_add(&m->e2e, e2e);
    if (finish_reason && !strcmp(finish_reason, "cancelled")) m->cancelled++;
    if (finish_reason && !strcmp(finish_reason, "timeout")) m->timed_out++;
    pthread_mutex_unlock(&m->mu);
}

void ivl_serve_metrics_gauges(ivl_serve_metrics *m, const ivl_serve_gauges *g) {
    pthread_mutex_lock(&m->mu);
    m->g = *g;
    pthread_mutex_unlock(&m->mu);
}

void ivl_serve_metrics_queue(ivl_serve_metrics *m, int queue_length) {
    pthread_mutex_lock(&m->mu);
    m->g.queue_length = queue_length;
    pthread_mutex_unlock(&m->mu);
}

typedef struct {
    char *s;
    size_t n, cap;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(k > 0 ? k : 64);
        b->s = ivl_realloc(b->s, b->cap);
    }
}

static void put_hist(buf *b, const char *name, const char *help, const ivl_serve_hist *h) {
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < IVL_SERVE_HIST_BUCKETS; i++) {
        cum += h->count[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, k_bounds[i], (unsigned long long)cum);
    }
    cum += h->count[IVL_SERVE_HIST_BUCKETS];
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
        (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->n);
}

char *ivl_serve_metrics_render(ivl_serve_metrics *m) {
    buf b = {ivl_malloc(4096), 0, 4096};
    b.s[0] = 0;
    pthread_mutex_lock(&m->mu);
    put(&b, "# HELP ivl_serve_requests_total HTTP requests answered, by status code.\n"
            "# TYPE ivl_serve_requests_total counter\n");
    for (int s = 100; s < 600; s++)
        if (m->by_status[s])
            put(&b, "ivl_serve_requests_total{status=\"%d\"} %llu\n", s,
                (unsigned long long)m->by_status[s]);
    put(&b, "# HELP ivl_serve_prompt_tokens_total Prompt tokens of finished generations.\n"
            "# TYPE ivl_serve_prompt_tokens_total counter\nivl_serve_prompt_tokens_total %llu\n",
        (unsigned long long)m->prompt_tokens);
    put(&b, "# HELP ivl_serve_completion_tokens_total Tokens generated.\n"
            "# TYPE ivl_serve_completion_tokens_total counter\n"
            "ivl_serve_completion_tokens_total %llu\n", (unsigned long long)m->completion_tokens);
    put(&b, "# HELP ivl_serve_cancelled_total Generations stopped because the client went away.\n"
            "# TYPE ivl_serve_cancelled_total counter\nivl_serve_cancelled_total %llu\n",
        (unsigned long long)m->cancelled);
    put(&b, "# HELP ivl_serve_timeouts_total Generations stopped by the per-request timeout.\n"
            "# TYPE ivl_serve_timeouts_total counter\nivl_serve_timeouts_total %llu\n",
        (unsigned long long)m->timed_out);
    put_hist(&b, "ivl_serve_time_to_first_token_seconds",
             "Seconds from a request's arrival to its first generated token.", &m->ttft);
    put_hist(&b, "ivl_serve_time_per_output_token_seconds",
             "Mean seconds per generated token after the first, per request.", &m->tpot);
    put_hist(&b, "ivl_serve_request_duration_seconds",
             "Seconds from a request's arrival to its last token.", &m->e2e);
    put(&b, "# HELP ivl_serve_prompt_tokens_cached_total Prompt tokens served from the prefix "
            "cache (KV blocks of an earlier request with the same prefix), not computed again.\n"
            "# TYPE ivl_serve_prompt_tokens_cached_total counter\n"
            "ivl_serve_prompt_tokens_cached_total %lld\n", (long long)m->g.reused_tokens);
    put(&b, "# HELP ivl_serve_preemptions_total Sequences paused when KV blocks ran out and "
            "recomputed later.\n"
            "# TYPE ivl_serve_preemptions_total counter\nivl_serve_preemptions_total %lld\n",
        (long long)m->g.preemptions);
    put(&b, "# HELP ivl_serve_queue_length Requests waiting for the engine.\n"
            "# TYPE ivl_serve_queue_length gauge\nivl_serve_queue_length %d\n", m->g.queue_length);
    put(&b, "# HELP ivl_serve_running_sequences Sequences in the running batch (continuous "
            "batching: requests join and leave it between engine steps).\n"
            "# TYPE ivl_serve_running_sequences gauge\nivl_serve_running_sequences %d\n",
        m->g.running);
    put(&b, "# HELP ivl_serve_running_sequences_peak Most sequences in one engine step since "
            "the server started.\n"
            "# TYPE ivl_serve_running_sequences_peak gauge\nivl_serve_running_sequences_peak %d\n",
        m->g.peak_running);
    put(&b, "# HELP ivl_serve_kv_blocks_used KV cache blocks referenced by running sequences.\n"
            "# TYPE ivl_serve_kv_blocks_used gauge\nivl_serve_kv_blocks_used %lld\n",
        (long long)m->g.kv_used);
    put(&b, "# HELP ivl_serve_kv_blocks_cached KV cache blocks held only by the prefix cache "
            "(reusable by a request with the same prefix, evicted when blocks run out).\n"
            "# TYPE ivl_serve_kv_blocks_cached gauge\nivl_serve_kv_blocks_cached %lld\n",
        (long long)m->g.kv_cached);
    put(&b, "# HELP ivl_serve_kv_blocks_total KV cache blocks in the pool (--kv-mem).\n"
            "# TYPE ivl_serve_kv_blocks_total gauge\nivl_serve_kv_blocks_total %lld\n",
        (long long)m->g.kv_total);
    put(&b, "# HELP ivl_serve_uptime_seconds Seconds since the server started.\n"
            "# TYPE ivl_serve_uptime_seconds gauge\nivl_serve_uptime_seconds %.3f\n",
        ivl_serve_now() - m->start);
    pthread_mutex_unlock(&m->mu);
    return b.s;
}
