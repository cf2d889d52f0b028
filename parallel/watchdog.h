// watchdog.h - ends a job whose steps stop advancing (issue 18, item 9).
//
// Every rank of a tp x pp job waits in a blocking MPI call (an all-reduce, a broadcast, a
// pipeline receive) for the others. One rank that freezes (SIGSTOP, a hung GPU driver, a node
// that stops answering without closing its sockets) leaves every other rank waiting in MPI
// forever: Open MPI ends the job when a rank *exits*, not when it goes silent. The watchdog is
// a thread on each rank that the main thread feeds once per step (ivl_watchdog_beat); when no
// step has finished for timeout_s seconds it prints, on this rank, which step it waits in and
// where, waits a moment (so every live rank can print its line), and ends the process with
// _exit(IVL_WATCHDOG_EXIT). mpirun (and srun --kill-on-bad-exit=1) then kill the other ranks,
// the frozen one included.
//
// Why a thread and _exit, not nonblocking collectives with a timeout: the ranks also wait
// inside the model's own collectives (tensor-parallel all-reduces, pipeline sends), deep in
// code that does not poll, so only a thread that never enters MPI sees every hang; under
// MPI_THREAD_FUNNELED that thread must not call MPI (no MPI_Abort), and it cannot unwind the
// main thread, so it ends the process. Results not yet flushed (at most --flush-interval
// seconds of them) are redone by the next run, like after any crash.
//
// The thread only reads a clock and two fields written by the main thread (atomics); it uses
// write(2) on stderr, so it cannot deadlock on a lock the frozen main thread holds.
#ifndef IVL_PARALLEL_WATCHDOG_H
#define IVL_PARALLEL_WATCHDOG_H

#include <stdint.h>

#define IVL_WATCHDOG_EXIT 1

typedef struct ivl_watchdog ivl_watchdog;

// Starts the thread (timeout_s <= 0: returns NULL, and the other calls do nothing).
// rank/size name this rank in the message.
ivl_watchdog *ivl_watchdog_start(double timeout_s, int rank, int size);
// A step began (or ended): restarts the clock, with the step number for the message.
void ivl_watchdog_beat(ivl_watchdog *w, uint64_t step);
// Where this rank is now, for the message (a string that lives as long as the watchdog,
// e.g. a literal): "the plan broadcast from rank 0", "the model step (tp/pp collectives)".
void ivl_watchdog_phase(ivl_watchdog *w, const char *phase);
// Stops and joins the thread.
void ivl_watchdog_stop(ivl_watchdog *w);

#endif
