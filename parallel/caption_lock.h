// caption_lock.h - one writer per output file of `internvl caption` (issue 18). Two jobs on
// the same --out and the same inputs (a double submit, a requeued Slurm task overlapping the
// one still running) would otherwise both caption every key and both append it. Array tasks
// of slurm/caption.sbatch share one --out with disjoint shards, so the unit of locking is the
// output unit, not the folder: rank 0 locks DIR/<unit>.lock before it reads or writes the
// unit's result file and holds the lock until the unit is closed (a unit whose .done marker
// exists needs no lock: the marker appears whole by rename and is never written again). A
// job that finds a unit locked stops with a message naming the file and the holder (pid,
// host, start time).
//
// The lock is an fcntl record lock on the whole file (Linux open file description lock,
// F_OFD_SETLK; plain F_SETLK where the kernel lacks it), never a lock *file* whose existence
// counts: the kernel (or the NFS server) drops it when the holder's process ends, however it
// ends, so a lock left by a killed job never blocks the next one. The lock file holds "pid P
// on host H since T" of its last holder; it is removed once the unit's .done marker is written
// (a job that opened it just before then finds the marker once it gets the lock). What is
// guaranteed on which file system: docs/limits.md ("Output locks"). IVL_CAPTION_NO_LOCK=1
// takes no locks (a file system without record locks): then nothing stops a second job.
#ifndef IVL_PARALLEL_CAPTION_LOCK_H
#define IVL_PARALLEL_CAPTION_LOCK_H

#include "parallel/caption_input.h"

typedef struct {
    int fd;          // -1: not held
    char *path;      // DIR/<unit>.lock
} ivl_cap_lock;

// Takes the lock of DIR/<name>, without waiting. Returns 0, or -1 + ivl_last_error(): held by
// another job (the message names the output and the holder), or the file system refuses
// record locks (the message says what to do).
int ivl_cap_lock_unit(const char *dir, const char *name, ivl_cap_lock *l);
// Drops the lock (closing the file). remove = 1 (only once the unit's .done marker exists)
// deletes the lock file first. Safe on a lock never taken.
void ivl_cap_lock_release(ivl_cap_lock *l, int remove);

// The check at start-up, before the model is loaded, so a second job stops at once: tries
// the lock of each unit in order, passing over units whose .done marker exists, up to the
// first unit not yet complete. Returns 0 (no lock is kept), or -1 + the message of
// ivl_cap_lock_unit for the first unit another job holds.
int ivl_cap_lock_precheck(const char *dir, const ivl_cap_inputs *in);

#endif
