// log.h - levelled logging to stderr with a rank prefix: "[internvl r1/4 host] WARN: ...".
// The level comes from IVL_LOG_LEVEL (error, warn, info, debug; default info).
// comm/ sets the rank once MPI is up; before that the prefix has no rank.
#ifndef IVL_LOG_H
#define IVL_LOG_H

typedef enum {
    IVL_LOG_ERROR = 0,
    IVL_LOG_WARN  = 1,
    IVL_LOG_INFO  = 2,
    IVL_LOG_DEBUG = 3,
} ivl_log_level;

void ivl_log_set_rank(int rank, int world_size);
int  ivl_log_rank(void);            // -1 before MPI is up
int  ivl_log_world_size(void);
const char *ivl_log_hostname(void);
void ivl_log_set_level(ivl_log_level level);
ivl_log_level ivl_log_get_level(void);
void ivl_log(ivl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_ERROR(...) ivl_log(IVL_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...)  ivl_log(IVL_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...)  ivl_log(IVL_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) ivl_log(IVL_LOG_DEBUG, __VA_ARGS__)

#endif
