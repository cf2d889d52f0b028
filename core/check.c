// check.c - see check.h.
#include "core/check.h"
#include "core/log.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ivl_abort_fn g_abort_hook;
static _Thread_local char g_err[2048];

void ivl_set_abort_hook(ivl_abort_fn fn) { g_abort_hook = fn; }

static char g_cleanup[4096];

void ivl_set_cleanup_path(const char *path) {
    if (!path) g_cleanup[0] = 0;
    else snprintf(g_cleanup, sizeof g_cleanup, "%s", path);
}

static _Noreturn void end_job(int code) {
    if (g_cleanup[0]) unlink(g_cleanup);
    fflush(stdout);
    fflush(stderr);
    if (g_abort_hook) g_abort_hook(code);   // MPI_Abort: takes every rank down
    // No MPI (or it is already down): a plain exit with the code, not abort(): user errors
    // found before MPI starts (a bad option) must not look like a crash or leave a core.
    _exit(code ? code : 1);
}

static void prefix(char *buf, size_t n) {
    if (ivl_log_rank() >= 0)
        snprintf(buf, n, "[internvl r%d/%d %s]", ivl_log_rank(), ivl_log_world_size(),
                 ivl_log_hostname());
    else
        snprintf(buf, n, "[internvl %s]", ivl_log_hostname());
}

void ivl_fatal(const char *file, int line, const char *func, const char *fmt, ...) {
    char msg[4096], pre[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    prefix(pre, sizeof pre);
    fprintf(stderr, "%s FATAL at %s:%d (%s): %s\n", pre, file, line, func, msg);
    end_job(1);
}

void ivl_fatal_call(const char *lib, const char *call, const char *msg, const char *file,
                    int line, const char *func) {
    char pre[128];
    prefix(pre, sizeof pre);
    fprintf(stderr, "%s %s ERROR at %s:%d (%s): %s -> %s\n", pre, lib, file, line, func, call,
            msg ? msg : "(no message)");
    end_job(1);
}

void ivl_die(int code, const char *fmt, ...) {
    char msg[4096], pre[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    prefix(pre, sizeof pre);
    fprintf(stderr, "%s error: %s\n", pre, msg);
    end_job(code);
}

int ivl_errorf(const char *fmt, ...) {
    char tmp[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);   // tmp: fmt may use ivl_last_error() as an argument
    va_end(ap);
    memcpy(g_err, tmp, sizeof g_err);
    return -1;
}

const char *ivl_last_error(void) { return g_err[0] ? g_err : "(no error recorded)"; }
void ivl_clear_error(void) { g_err[0] = 0; }

void ivl_fault_point(const char *point) {
    const char *f = getenv("IVL_FAULT");
    if (!f) return;
    size_t n = strlen(point);
    if (strncmp(f, point, n) != 0 || f[n] != ':') return;
    int rank = ivl_log_rank() < 0 ? 0 : ivl_log_rank();
    if (atoi(f + n + 1) != rank) return;
    fprintf(stderr, "[internvl r%d] IVL_FAULT: killing this rank at '%s'\n", rank, point);
    fflush(stderr);
    raise(SIGKILL);
}

void *ivl_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    IVL_CHECK(p, "out of host memory allocating %zu bytes", n);
    return p;
}
void *ivl_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    IVL_CHECK(p, "out of host memory allocating %zu x %zu bytes", n, size);
    return p;
}
void *ivl_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    IVL_CHECK(q, "out of host memory reallocating to %zu bytes", n);
    return q;
}
char *ivl_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = ivl_malloc(n);
    memcpy(p, s, n);
    return p;
}
