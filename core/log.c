// log.c - see log.h.
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int g_rank = -1, g_world = 0;
static int g_level = -1;
static char g_host[64];

void ivl_log_set_rank(int rank, int world_size) { g_rank = rank; g_world = world_size; }
int ivl_log_rank(void) { return g_rank; }
int ivl_log_world_size(void) { return g_world; }

const char *ivl_log_hostname(void) {
    if (!g_host[0]) {
        if (gethostname(g_host, sizeof g_host - 1) != 0) strcpy(g_host, "?");
        g_host[sizeof g_host - 1] = 0;
    }
    return g_host;
}

void ivl_log_set_level(ivl_log_level level) { g_level = (int)level; }

ivl_log_level ivl_log_get_level(void) {
    if (g_level < 0) {
        const char *e = getenv("IVL_LOG_LEVEL");
        g_level = IVL_LOG_INFO;
        if (e) {
            if (!strcasecmp(e, "error")) g_level = IVL_LOG_ERROR;
            else if (!strcasecmp(e, "warn")) g_level = IVL_LOG_WARN;
            else if (!strcasecmp(e, "debug")) g_level = IVL_LOG_DEBUG;
        }
    }
    return (ivl_log_level)g_level;
}

void ivl_log(ivl_log_level level, const char *fmt, ...) {
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if ((int)level > (int)ivl_log_get_level()) return;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    // One fprintf per line so lines from several ranks do not interleave mid-line.
    if (g_rank >= 0)
        fprintf(stderr, "[internvl r%d/%d %s] %s: %s\n", g_rank, g_world, ivl_log_hostname(),
                names[level], msg);
    else
        fprintf(stderr, "[internvl %s] %s: %s\n", ivl_log_hostname(), names[level], msg);
}
