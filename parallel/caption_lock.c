// caption_lock.c - see caption_lock.h.
#define _GNU_SOURCE
#include "parallel/caption_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/check.h"
#include "core/log.h"

static int locks_off(void) {
    const char *off = getenv("IVL_CAPTION_NO_LOCK");
    return off && *off && strcmp(off, "0") != 0;
}

// Exclusive lock on the whole file without waiting. OFD locks belong to the open file, not to
// the process, so no other open/close of the file in this process can drop them by accident.
// *pid_out: the holder's pid when the kernel knows it (POSIX locks on a local file system).
static int try_lock(int fd, int *pid_out) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
#ifdef F_OFD_SETLK
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return 0;
    if (errno != EINVAL) return -1;
#endif
    if (fcntl(fd, F_SETLK, &fl) == 0) return 0;
    int err = errno;
    if (err == EAGAIN || err == EACCES) {
        struct flock q;
        memset(&q, 0, sizeof q);
        q.l_type = F_WRLCK;
        q.l_whence = SEEK_SET;
        if (fcntl(fd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK && q.l_pid > 0) *pid_out = q.l_pid;
    }
    errno = err;
    return -1;
}

// The holder's note ("pid P on host H since T"), or "".
static void read_note(int fd, char *buf, size_t n) {
    ssize_t r = pread(fd, buf, n - 1, 0);
    buf[r > 0 ? r : 0] = 0;
    buf[strcspn(buf, "\n")] = 0;
}

// note = 0: a probe (the start-up check), which leaves the holder's note of the file alone.
static int lock_unit(const char *dir, const char *name, ivl_cap_lock *l, int note_it) {
    l->fd = -1;
    size_t n = strlen(dir) + strlen(name) + 8;
    l->path = ivl_malloc(n);
    snprintf(l->path, n, "%s/%s.lock", dir, name);
    if (locks_off()) return 0;
    // O_CLOEXEC: a child (MPI's orted) must not inherit the open file and keep the lock alive.
    int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return ivl_errorf("cannot open the lock file %s: %s (is the --out folder writable?)",
                          l->path, strerror(errno));
    int holder_pid = 0;
    if (try_lock(fd, &holder_pid) != 0) {
        int err = errno;
        if (err == EAGAIN || err == EACCES) {
            char note[256];
            read_note(fd, note, sizeof note);
            close(fd);
            if (!note[0] && holder_pid > 0) snprintf(note, sizeof note, "pid %d", holder_pid);
            return ivl_errorf("the output %s/%s.jsonl is in use by another caption job (%s; lock "
                              "file %s): two jobs on the same inputs and --out would caption "
                              "every key twice. Wait for that job to end (or cancel it), or use "
                              "another --out", dir, name, note[0] ? note : "holder not known yet",
                              l->path);
        }
        close(fd);
        return ivl_errorf("cannot lock %s: %s: the file system of --out %s does not support "
                          "record locks (NFS without a lock manager, Lustre mounted without "
                          "-o flock). Use a folder on a file system with locks, or set "
                          "IVL_CAPTION_NO_LOCK=1 if you are sure no other job writes there "
                          "(docs/limits.md)", l->path, strerror(err), dir);
    }
    l->fd = fd;
    if (!note_it) return 0;
    // Ours: leave a note for the message a second job prints.
    char note[256], when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    int len = snprintf(note, sizeof note, "pid %ld on host %s since %s\n", (long)getpid(),
                       ivl_log_hostname(), when);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, note, (size_t)len, 0) != len)
        LOG_WARN("%s: cannot write the holder's note: %s (the lock is held all the same)",
                 l->path, strerror(errno));
    return 0;
}

int ivl_cap_lock_unit(const char *dir, const char *name, ivl_cap_lock *l) {
    return lock_unit(dir, name, l, 1);
}

void ivl_cap_lock_release(ivl_cap_lock *l, int remove) {
    if (remove && l->fd >= 0) unlink(l->path);
    if (l->fd >= 0) close(l->fd);   // closing the file drops the lock
    l->fd = -1;
    free(l->path);
    l->path = NULL;
}

int ivl_cap_lock_precheck(const char *dir, const ivl_cap_inputs *in) {
    if (locks_off()) {
        LOG_WARN("IVL_CAPTION_NO_LOCK is set: the outputs under %s are not locked; nothing stops "
                 "a second job on the same inputs from captioning every key again", dir);
        return 0;
    }
    for (int u = 0; u < in->n; u++) {
        size_t n = strlen(dir) + strlen(in->units[u].name) + 8;
        char *done = ivl_malloc(n);
        snprintf(done, n, "%s/%s.done", dir, in->units[u].name);
        struct stat st;
        int complete = stat(done, &st) == 0;
        free(done);
        if (complete) continue;
        ivl_cap_lock l;
        int rc = lock_unit(dir, in->units[u].name, &l, 0);
        ivl_cap_lock_release(&l, 0);
        return rc;
    }
    return 0;
}
