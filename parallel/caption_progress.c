// caption_progress.c - see caption_progress.h.
#include "parallel/caption_progress.h"

#include <stdio.h>
#include <time.h>

#include "core/log.h"

double ivl_cap_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void ivl_cap_progress_init(ivl_cap_progress *p, int bar, double log_s) {
    *p = (ivl_cap_progress){0};
    p->bar = bar;
    p->log_s = log_s > 0 ? log_s : 30;
    p->t0 = p->last = ivl_cap_now();
    p->total = -1;
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (s < 0) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

void ivl_cap_progress_update(ivl_cap_progress *p, int force) {
    double now = ivl_cap_now();
    double every = p->bar ? 0.25 : p->log_s;
    if (!force && now - p->last < every) return;
    p->last = now;
    double el = now - p->t0;
    int64_t fin = p->done + p->failed;
    double ips = el > 0 ? fin / el : 0, tps = el > 0 ? p->tokens / el : 0;
    double eta = -1;
    int64_t left = p->total >= 0 ? p->total - fin - p->skipped : -1;
    if (left >= 0 && ips > 0) eta = left / ips;
    char etas[32];
    fmt_eta(etas, sizeof etas, eta);
    if (p->bar) {
        char barbuf[32] = "";
        if (p->total > 0) {
            int w = 20, k = (int)((double)(fin + p->skipped) / p->total * w);
            for (int i = 0; i < w; i++) barbuf[i] = i < k ? '#' : '.';
            barbuf[w] = 0;
        }
        fprintf(stderr, "\r[%s] %lld done %lld failed %lld skipped | %.2f img/s %.1f tok/s | "
                "batch %d, KV %.0f%% | ETA %s   ",
                barbuf, (long long)p->done, (long long)p->failed, (long long)p->skipped, ips, tps,
                p->in_flight, p->kv_total ? 100.0 * p->kv_used / p->kv_total : 0.0, etas);
        fflush(stderr);
        p->drawn = 1;
    } else {
        char tot[48] = "";
        if (p->total >= 0) snprintf(tot, sizeof tot, " (of ~%lld)", (long long)p->total);
        LOG_INFO("progress: %lld done, %lld failed, %lld skipped%s | %.2f images/s, %.1f tokens/s | "
                 "in flight: %d sequences, KV %lld/%lld blocks | ETA %s",
                 (long long)p->done, (long long)p->failed, (long long)p->skipped, tot, ips, tps,
                 p->in_flight, (long long)p->kv_used, (long long)p->kv_total, etas);
    }
}

void ivl_cap_progress_finish(ivl_cap_progress *p, int64_t units_done, int64_t units,
                             int64_t units_failed, int stopped) {
    if (p->bar && p->drawn) {
        ivl_cap_progress_update(p, 1);
        fputc('\n', stderr);
    }
    double el = ivl_cap_now() - p->t0;
    char extra[320] = "";
    size_t k = 0;
    if (p->retried)
        k += (size_t)snprintf(extra, sizeof extra, ", %lld to retry (I/O or shard errors, not "
                              "written: run again)", (long long)p->retried);
    if (p->dups + p->dups_across)
        snprintf(extra + k, sizeof extra - k, ", %lld duplicate keys (%lld within an output, "
                 "captioned once; %lld also in another output, captioned in each)",
                 (long long)(p->dups + p->dups_across), (long long)p->dups,
                 (long long)p->dups_across);
    LOG_INFO("summary: %lld captioned, %lld skipped (done before), %lld failed%s; %lld/%lld outputs "
             "complete%s%s; %.1f s, %.2f images/s, %.1f tokens/s",
             (long long)p->done, (long long)p->skipped, (long long)p->failed, extra, (long long)units_done,
             (long long)units, units_failed ? ", some inputs unreadable" : "",
             stopped ? ", stopped early (run again to continue)" : "", el,
             el > 0 ? (p->done + p->failed) / el : 0.0, el > 0 ? p->tokens / el : 0.0);
    LOG_INFO("batch: peak in flight: %d sequences; KV cache: peak %lld of %lld blocks (%.0f%%), "
             "%lld prompt positions reused from the prefix cache, %lld preemptions",
             p->peak_in_flight, (long long)p->kv_peak, (long long)p->kv_total,
             p->kv_total ? 100.0 * p->kv_peak / p->kv_total : 0.0, (long long)p->reused_tokens,
             (long long)p->preemptions);
}
