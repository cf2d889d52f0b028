// watchdog.c - see watchdog.h.
#include "parallel/watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/check.h"

struct ivl_watchdog {
    pthread_t thread;
    pthread_mutex_t mu;           // only for the stop condition
    pthread_cond_t cv;
    int stopping;
    double timeout_s;
    int rank, size;
    _Atomic uint64_t step;
    _Atomic int64_t beat_ns;      // CLOCK_MONOTONIC of the last beat
    _Atomic(const char *) phase;
};

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void fire(ivl_watchdog *w, double silent_s) {
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    const char *phase = atomic_load(&w->phase);
    char msg[1536];
    int n = snprintf(msg, sizeof msg,
        "[watchdog] rank %d/%d (host %s, pid %d): no step finished for %.0f s (--step-timeout "
        "%g): step %llu, waiting in %s. A rank of the job is frozen or gone (stopped, a hung "
        "device, a node that stopped answering): every rank that is alive prints this line, so "
        "the silent rank is one of those that do not. Ending the job (exit %d) so it can be run "
        "again; finished results are on disk. If steps are really this slow, raise "
        "--step-timeout.\n",
        w->rank, w->size, host, (int)getpid(), silent_s, w->timeout_s,
        (unsigned long long)atomic_load(&w->step), phase ? phase : "(unknown)",
        IVL_WATCHDOG_EXIT);
    if (n > (int)sizeof msg - 1) n = (int)sizeof msg - 1;
    ssize_t r = write(STDERR_FILENO, msg, (size_t)n);
    (void)r;
    // Let the other live ranks print their line before mpirun takes them down.
    struct timespec grace = {2, 0};
    while (nanosleep(&grace, &grace) != 0 && errno == EINTR) {}
    _exit(IVL_WATCHDOG_EXIT);
}

// The silence is counted by this thread's own polls, not as "now - last beat": a process that
// was itself stopped (SIGSTOP, Slurm's gang scheduling or `scontrol suspend`, a suspended VM)
// sees a wake-up far later than asked for, and that gap does not count. So a job suspended and
// resumed as a whole does not end, and a frozen rank that is resumed (mpirun sends SIGCONT
// before it kills) does not claim to be the live one.
static void *run(void *arg) {
    ivl_watchdog *w = arg;
    const double poll_s = w->timeout_s / 10 < 1 ? w->timeout_s / 10 : 1;
    const int64_t poll_ns = (int64_t)(poll_s * 1e9), late_ns = poll_ns + 2000000000;
    int64_t last_poll = now_ns(), seen_beat = atomic_load(&w->beat_ns), silent_ns = 0;
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        int64_t ns = t.tv_nsec + (int64_t)(poll_s * 1e9);
        t.tv_sec += ns / 1000000000;
        t.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&w->cv, &w->mu, &t);
        if (w->stopping) break;
        const int64_t now = now_ns(), beat = atomic_load(&w->beat_ns);
        int64_t dt = now - last_poll;
        last_poll = now;
        if (dt > late_ns) dt = poll_ns;   // this process was stopped: that time does not count
        if (beat != seen_beat) {
            seen_beat = beat;
            silent_ns = now - beat < dt ? now - beat : dt;
        } else {
            silent_ns += dt;
        }
        if ((double)silent_ns / 1e9 >= w->timeout_s) fire(w, (double)silent_ns / 1e9);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

ivl_watchdog *ivl_watchdog_start(double timeout_s, int rank, int size) {
    if (!(timeout_s > 0)) return NULL;
    ivl_watchdog *w = ivl_calloc(1, sizeof *w);
    w->timeout_s = timeout_s;
    w->rank = rank;
    w->size = size;
    atomic_store(&w->beat_ns, now_ns());
    atomic_store(&w->phase, "the start of the caption loop");
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int rc = pthread_create(&w->thread, NULL, run, w);
    IVL_CHECK(rc == 0, "cannot start the step watchdog thread: %s", strerror(rc));
    return w;
}

void ivl_watchdog_beat(ivl_watchdog *w, uint64_t step) {
    if (!w) return;
    atomic_store(&w->step, step);
    atomic_store(&w->beat_ns, now_ns());
}

void ivl_watchdog_phase(ivl_watchdog *w, const char *phase) {
    if (w) atomic_store(&w->phase, phase);
}

void ivl_watchdog_stop(ivl_watchdog *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
