// check.h - the three kinds of error handling in the engine.
//
// 1. IVL_CHECK(cond, fmt, ...): always on. Bad input, config or file problems that cannot be
//    recovered where they are found. Prints rank, host, file:line and the message, then ends
//    the WHOLE job (MPI_Abort through the hook comm/ installs; abort() before MPI is up).
//    Never use exit() on one rank: the others would hang in their next collective.
// 2. IVL_ASSERT(cond): internal invariants; compiled out with -DIVL_NO_ASSERT.
//    No side effects inside either macro.
// 3. Status returns at recoverable boundaries (a bad image in a captioning job, a bad
//    weight file in the converter): functions return 0 or -1 and put the message in a
//    thread-local buffer with ivl_errorf(); the caller reads ivl_last_error().
//
// Library call checks (CUDA_CHECK, CUBLAS_CHECK, NCCL_CHECK, MPI_CHECK, H5_CHECK) live next
// to the code that uses each library and all end in ivl_fatal_call().
#ifndef IVL_CHECK_H
#define IVL_CHECK_H

#include <stddef.h>

// Called with the exit code when the job must end; comm/ installs one that calls MPI_Abort.
typedef void (*ivl_abort_fn)(int code);
void ivl_set_abort_hook(ivl_abort_fn fn);

// A file to delete if the job ends through ivl_fatal/ivl_die (a partial output written under a
// temporary name); NULL clears it. One path per process.
void ivl_set_cleanup_path(const char *path);

_Noreturn void ivl_fatal(const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// For library checks: lib = "CUDA", call = the stringified statement, msg = library message.
_Noreturn void ivl_fatal_call(const char *lib, const char *call, const char *msg,
                              const char *file, int line, const char *func);
// Ends the job with a message but no file:line (for user-facing errors in the launcher).
_Noreturn void ivl_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define IVL_CHECK(cond, ...)                                                     \
    do {                                                                         \
        if (!(cond)) ivl_fatal(__FILE__, __LINE__, __func__, __VA_ARGS__);       \
    } while (0)

#ifdef IVL_NO_ASSERT
#define IVL_ASSERT(cond) ((void)0)
#else
#define IVL_ASSERT(cond)                                                         \
    do {                                                                         \
        if (!(cond)) ivl_fatal(__FILE__, __LINE__, __func__, "assertion failed: %s", #cond); \
    } while (0)
#endif

// Status-return helpers. ivl_errorf always returns -1 so it can be returned directly:
//     if (n < 8) return ivl_errorf("%s: file too short (%zu bytes)", path, n);
int ivl_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *ivl_last_error(void);
void ivl_clear_error(void);

// Fault injection for tests: with IVL_FAULT="<point>:<rank>" in the environment, the process
// of that rank (ivl_log_rank(), or 0 before MPI) kills itself with SIGKILL when it reaches
// ivl_fault_point("<point>"). Points: load, prefill, decode. No effect otherwise.
void ivl_fault_point(const char *point);

// malloc/calloc/realloc that end the job with the size on failure.
void *ivl_malloc(size_t n);
void *ivl_calloc(size_t n, size_t size);
void *ivl_realloc(void *p, size_t n);
char *ivl_strdup(const char *s);

#endif
