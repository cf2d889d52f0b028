// caption_out.c - see caption_out.h.
#include "parallel/caption_out.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/check.h"
#include "core/log.h"

static char *join(const char *dir, const char *name, const char *ext) {
    size_t n = strlen(dir) + strlen(name) + strlen(ext) + 2;
    char *p = ivl_malloc(n);
    snprintf(p, n, "%s/%s%s", dir, name, ext);
    return p;
}

size_t ivl_cap_scan_lines(const char *buf, size_t len, ivl_keyset *keys, int64_t *nlines) {
    size_t pos = 0;
    int64_t n = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl) break;   // torn: no newline at the end
        size_t ll = (size_t)(nl - (buf + pos));
        cJSON *j = cJSON_ParseWithLength(buf + pos, ll);
        const cJSON *k = j ? cJSON_GetObjectItemCaseSensitive(j, "key") : NULL;
        int ok = cJSON_IsObject(j) && cJSON_IsString(k);
        if (ok && keys) ivl_keyset_add(keys, k->valuestring);
        cJSON_Delete(j);
        if (!ok) break;
        n++;
        pos += ll + 1;
    }
    *nlines = n;
    return pos;
}

static int read_all(int fd, const char *path, char **out, size_t *len) {
    struct stat st;
    if (fstat(fd, &st) != 0) return ivl_errorf("%s: cannot stat: %s", path, strerror(errno));
    char *buf = ivl_malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            return ivl_errorf("%s: cannot read: %s", path, r < 0 ? strerror(errno) : "file shrank");
        }
        got += (size_t)r;
    }
    *out = buf;
    *len = got;
    return 0;
}

// 1 when the unit's .done marker exists (o->lines = its count).
static int read_done(ivl_cap_out *o, int *complete) {
    FILE *df = fopen(o->done_path, "r");
    if (!df) return 0;
    long long n = 0;
    if (fscanf(df, "%lld", &n) != 1) n = 0;
    fclose(df);
    o->lines = n;
    o->marked = 1;
    *complete = 1;
    return 1;
}

int ivl_cap_out_open(const char *dir, const char *name, ivl_cap_out *o, int *complete) {
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->path = join(dir, name, ".jsonl");
    o->done_path = join(dir, name, ".done");
    o->dir = ivl_strdup(dir);
    ivl_keyset_init(&o->keys);
    o->lock.fd = -1;
    *complete = 0;
    // A marker appears whole (rename) and is never written again: a complete unit is seen
    // without its lock. Anything else is read and written only under the lock, and the marker
    // is looked for again once it is held (another job may have just finished the unit).
    if (read_done(o, complete)) return 0;
    if (ivl_cap_lock_unit(dir, name, &o->lock) != 0) return -1;
    if (read_done(o, complete)) return 0;
    o->fd = open(o->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (o->fd < 0)
        return ivl_errorf("cannot open the result file %s: %s (is the --out folder writable?)",
                          o->path, strerror(errno));
    char *buf = NULL;
    size_t len = 0;
    if (read_all(o->fd, o->path, &buf, &len) != 0) return -1;
    size_t good = ivl_cap_scan_lines(buf, len, &o->keys, &o->lines);
    free(buf);
    if (good < len) {
        LOG_WARN("%s: dropping %zu bytes after the last whole result line (a torn write from a "
                 "crash); their images are captioned again", o->path, len - good);
        if (ftruncate(o->fd, (off_t)good) != 0 || fsync(o->fd) != 0)
            return ivl_errorf("%s: cannot truncate the torn tail: %s", o->path, strerror(errno));
    }
    o->size = (int64_t)good;
    return 0;
}

int ivl_cap_out_append(ivl_cap_out *o, const char *buf, size_t len, int64_t nlines) {
    size_t done = 0;
    int err = 0;
    while (done < len) {
        ssize_t w = write(o->fd, buf + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            err = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    if (!err && fsync(o->fd) != 0) err = errno;
    if (err) {
        // Cut the partial batch away so no reader ever sees half a line.
        if (ftruncate(o->fd, (off_t)o->size) != 0 || fsync(o->fd) != 0)
            LOG_ERROR("%s: could not cut back a failed write to %lld bytes: %s; the next run "
                      "drops the torn tail", o->path, (long long)o->size, strerror(errno));
        return ivl_errorf("cannot write results to %s: %s%s", o->path, strerror(err),
                          err == ENOSPC || err == EFBIG || err == EDQUOT
                              ? " (disk full, quota or file size limit: free space and rerun; "
                                "finished results are kept)"
                              : "");
    }
    o->size += (int64_t)len;
    o->lines += nlines;
    return 0;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

int ivl_cap_out_mark_done(ivl_cap_out *o) {
    size_t n = strlen(o->done_path) + 8;
    char *tmp = ivl_malloc(n);
    snprintf(tmp, n, "%s.tmp", o->done_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = 0;
    if (fd < 0) {
        err = errno;
    } else {
        char line[32];
        int l = snprintf(line, sizeof line, "%lld\n", (long long)o->lines);
        if (write(fd, line, (size_t)l) != l || fsync(fd) != 0) err = errno ? errno : EIO;
        close(fd);
        // rename: the marker appears whole or not at all
        if (!err && rename(tmp, o->done_path) != 0) err = errno;
    }
    if (err) {
        unlink(tmp);
        free(tmp);
        return ivl_errorf("cannot write the completion marker %s: %s", o->done_path, strerror(err));
    }
    free(tmp);
    fsync_dir(o->dir);
    o->marked = 1;
    return 0;
}

void ivl_cap_out_close(ivl_cap_out *o) {
    if (o->fd >= 0) close(o->fd);
    ivl_cap_lock_release(&o->lock, o->marked);
    free(o->path);
    free(o->done_path);
    free(o->dir);
    if (o->keys.slots) ivl_keyset_free(&o->keys);
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->lock.fd = -1;
}

int ivl_cap_out_check_dir(const char *dir) {
    char *p = ivl_strdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            return ivl_errorf("cannot create the output folder %s: %s", dir, strerror(e));
        }
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        free(p);
        return ivl_errorf("cannot create the output folder %s: %s", dir, strerror(e));
    }
    free(p);
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/.write-test-%d", dir, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return ivl_errorf("the output folder %s is not writable: %s (pass a writable --out)", dir,
                          strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}
