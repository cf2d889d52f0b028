// report.c - see report.h.
#include "bench/driver/report.h"
#include "core/check.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef IVL_SOURCE_DIR
#define IVL_SOURCE_DIR "."
#endif
#ifndef IVL_BUILD_COMMIT
#define IVL_BUILD_COMMIT "unknown"
#endif

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Linear interpolation between order statistics (numpy's default percentile).
static double quantile(const double *s, int n, double q) {
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return s[n - 1];
    return s[i] + (pos - i) * (s[i + 1] - s[i]);
}

void ivl_bench_stats(ivl_bench_meas *m) {
    if (m->n <= 0) return;
    double s[IVL_BENCH_MAX_REPEATS], sum = 0;
    memcpy(s, m->t, (size_t)m->n * sizeof *s);
    qsort(s, (size_t)m->n, sizeof *s, cmp_double);
    for (int i = 0; i < m->n; i++) sum += s[i];
    m->min = s[0];
    m->max = s[m->n - 1];
    m->median = quantile(s, m->n, 0.5);
    m->q1 = quantile(s, m->n, 0.25);
    m->q3 = quantile(s, m->n, 0.75);
    m->mean = sum / m->n;
}

static double throughput(const ivl_bench_meas *m) { return m->median > 0 ? m->units / m->median : 0; }

void ivl_bench_table_header(FILE *f) {
    fprintf(f, "%-9s %-28s %10s %21s %14s %-9s %8s %6s %6s %6s %9s\n", "phase", "params",
            "median ms", "[min .. max] ms", "throughput", "unit", "TFLOP/s", "MFU%", "BW%",
            "comm%", "RSS MiB");
}

static void params_str(const ivl_bench_meas *m, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
#define ADD(...) o += (size_t)snprintf(buf + o, o < n ? n - o : 0, __VA_ARGS__)
    if (m->tiles) ADD("tiles=%d ", m->tiles);
    if (m->images) ADD("images=%d ", m->images);
    if (m->batch) ADD("B=%d ", m->batch);
    if (m->prompt_len) ADD("S=%lld ", (long long)m->prompt_len);
    if (m->context_len) ADD("ctx=%lld ", (long long)m->context_len);
    if (m->output_len) ADD("out=%lld ", (long long)m->output_len);
#undef ADD
    if (o > 0 && o < n) buf[o - 1] = 0;
}

void ivl_bench_table_row(FILE *f, const ivl_bench_run *run, const ivl_bench_meas *m) {
    char p[160];
    params_str(m, p, sizeof p);
    if (m->skipped) {
        fprintf(f, "%-9s %-28s skipped: %s\n", m->phase, p, m->extra);
        return;
    }
    double tf = m->flops > 0 ? m->flops / m->median / 1e12 : 0;
    double peak = run->peak_tflops * run->world;
    double mfu = peak > 0 && tf > 0 ? 100 * tf / peak : 0;
    double bw = m->bytes > 0 && run->mem_bw_gbs > 0
                    ? 100 * (m->bytes / m->median / 1e9) / (run->mem_bw_gbs * run->world) : 0;
    double comm = 0, rss = 0;
    for (int r = 0; r < m->nranks; r++) {
        if (m->ranks[r].comm_s > comm) comm = m->ranks[r].comm_s;
        if (m->ranks[r].peak_rss_mib > rss) rss = m->ranks[r].peak_rss_mib;
    }
    char range[48];
    snprintf(range, sizeof range, "[%.2f .. %.2f]", 1e3 * m->min, 1e3 * m->max);
    fprintf(f, "%-9s %-28s %10.2f %21s %14.2f %-9s %8.3f %6.1f %6.1f %6.1f %9.0f\n", m->phase, p,
            1e3 * m->median, range, throughput(m), m->unit, tf, mfu, bw,
            m->mean > 0 ? 100 * comm / m->mean : 0, rss);
}

char *ivl_bench_json(const ivl_bench_run *run, const ivl_bench_meas *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "phase", m->phase);
    cJSON_AddStringToObject(o, "preset", run->preset);
    cJSON_AddStringToObject(o, "model", run->model);
    cJSON_AddStringToObject(o, "weights", run->weights);
    cJSON *lay = cJSON_AddObjectToObject(o, "layout");
    cJSON_AddNumberToObject(lay, "world", run->world);
    cJSON_AddNumberToObject(lay, "tp", run->tp);
    cJSON_AddNumberToObject(lay, "pp", run->pp);
    cJSON_AddNumberToObject(lay, "vit_tp", run->vit_tp);
    cJSON_AddStringToObject(o, "dtype", run->dtype);
    cJSON_AddStringToObject(o, "backend", run->backend);
    cJSON_AddStringToObject(o, "device", run->device);
    cJSON_AddStringToObject(o, "comm", run->comm[0] ? run->comm : "none");
    cJSON_AddNumberToObject(o, "threads", run->threads);
    cJSON_AddStringToObject(o, "blas", run->blas);
    cJSON_AddStringToObject(o, "commit", run->commit);
    cJSON_AddStringToObject(o, "date", run->date);
    cJSON_AddStringToObject(o, "host", run->host);
    cJSON *par = cJSON_AddObjectToObject(o, "params");
    if (m->tiles) cJSON_AddNumberToObject(par, "tiles", m->tiles);
    if (m->images) cJSON_AddNumberToObject(par, "images", m->images);
    if (m->batch) cJSON_AddNumberToObject(par, "batch", m->batch);
    if (m->prompt_len) cJSON_AddNumberToObject(par, "prompt_len", (double)m->prompt_len);
    if (m->context_len) cJSON_AddNumberToObject(par, "context_len", (double)m->context_len);
    if (m->output_len) cJSON_AddNumberToObject(par, "output_len", (double)m->output_len);
    if (m->extra[0]) cJSON_AddStringToObject(par, "note", m->extra);
    if (m->skipped) {
        cJSON_AddBoolToObject(o, "skipped", 1);
    } else {
        cJSON_AddNumberToObject(o, "repeats", m->n);
        cJSON *t = cJSON_AddObjectToObject(o, "time_s");
        cJSON_AddNumberToObject(t, "median", m->median);
        cJSON_AddNumberToObject(t, "min", m->min);
        cJSON_AddNumberToObject(t, "max", m->max);
        cJSON_AddNumberToObject(t, "q1", m->q1);
        cJSON_AddNumberToObject(t, "q3", m->q3);
        cJSON_AddNumberToObject(t, "mean", m->mean);
        cJSON *all = cJSON_AddArrayToObject(t, "all");
        for (int i = 0; i < m->n; i++) cJSON_AddItemToArray(all, cJSON_CreateNumber(m->t[i]));
        cJSON_AddNumberToObject(o, "throughput", throughput(m));
        cJSON_AddStringToObject(o, "unit", m->unit);
        cJSON_AddNumberToObject(o, "units_per_repeat", m->units);
        if (m->flops > 0) {
            double tf = m->flops / m->median / 1e12;
            cJSON_AddNumberToObject(o, "flops", m->flops);
            cJSON_AddNumberToObject(o, "tflops", tf);
            if (run->peak_tflops > 0) cJSON_AddNumberToObject(o, "mfu", tf / (run->peak_tflops * run->world));
        }
        if (m->bytes > 0) {
            double gbs = m->bytes / m->median / 1e9;
            cJSON_AddNumberToObject(o, "bytes", m->bytes);
            cJSON_AddNumberToObject(o, "bandwidth_gbs", gbs);
            if (run->mem_bw_gbs > 0) cJSON_AddNumberToObject(o, "bw_fraction", gbs / (run->mem_bw_gbs * run->world));
        }
    }
    cJSON_AddNumberToObject(o, "peak_tflops_per_rank", run->peak_tflops);
    cJSON_AddStringToObject(o, "peak_source", run->peak_source);
    cJSON_AddNumberToObject(o, "mem_bw_gbs_per_rank", run->mem_bw_gbs);
    cJSON *ranks = cJSON_AddArrayToObject(o, "ranks");
    for (int r = 0; r < m->nranks; r++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "rank", r);
        cJSON_AddNumberToObject(x, "comm_s", m->ranks[r].comm_s);
        cJSON_AddNumberToObject(x, "compute_s", m->mean - m->ranks[r].comm_s > 0 ? m->mean - m->ranks[r].comm_s : 0);
        cJSON_AddNumberToObject(x, "comm_bytes", m->ranks[r].comm_bytes);
        cJSON_AddNumberToObject(x, "peak_rss_mib", m->ranks[r].peak_rss_mib);
        cJSON_AddItemToArray(ranks, x);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    IVL_CHECK(s, "bench: out of memory writing a JSON record");
    return s;
}

// `git describe` of the source tree at run time (the binary may be older than the tree: the
// build-time commit is the fallback when git or the tree is not there).
static void git_commit(char *out, size_t n) {
    snprintf(out, n, "%s", IVL_BUILD_COMMIT);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "git -C '%s' describe --always --dirty --abbrev=12 2>/dev/null", IVL_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    char buf[128] = {0};
    if (fgets(buf, sizeof buf, p)) {
        buf[strcspn(buf, "\r\n")] = 0;
        if (buf[0]) snprintf(out, n, "%s", buf);
    }
    pclose(p);
}

char *openblas_get_corename(void);   // OpenBLAS (no header declares it in every version)

void ivl_bench_run_stamp(ivl_bench_run *run) {
    // DYNAMIC_ARCH OpenBLAS picks its kernels at load time; on CPUs it does not know (0.3.21
    // on Sapphire Rapids) it falls back to Prescott (SSE3), several times slower than
    // OPENBLAS_CORETYPE=Haswell. Every record says which kernels produced it.
    const char *core = openblas_get_corename();
    snprintf(run->blas, sizeof run->blas, "openblas %s", core ? core : "?");
    git_commit(run->commit, sizeof run->commit);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(run->date, sizeof run->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (gethostname(run->host, sizeof run->host) != 0) snprintf(run->host, sizeof run->host, "unknown");
    run->host[sizeof run->host - 1] = 0;
}
