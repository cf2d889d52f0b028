// fuzz_util.c - see fuzz_util.h.
#include "fuzz_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

static char g_dir[512];
static char g_path[1024];

static void remove_scratch(void) {
    if (!g_dir[0]) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd)) fprintf(stderr, "fuzz: could not remove %s\n", g_dir);
}

const char *fuzz_scratch_dir(void) {
    if (g_dir[0]) return g_dir;
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/ivl-fuzz-XXXXXX", tmp);
    if (!mkdtemp(g_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(remove_scratch);
    return g_dir;
}

const char *fuzz_write_file(const char *name, const void *data, size_t size) {
    snprintf(g_path, sizeof g_path, "%s/%s", fuzz_scratch_dir(), name);
    int fd = open(g_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(g_path);
        abort();
    }
    const char *p = data;
    while (size > 0) {
        ssize_t w = write(fd, p, size);
        if (w <= 0) {
            perror(g_path);
            abort();
        }
        p += w;
        size -= (size_t)w;
    }
    close(fd);
    return g_path;
}

void fuzz_remove_file(const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", fuzz_scratch_dir(), name);
    unlink(p);
}

void fuzz_init_common(void) {
    ivl_log_set_level(IVL_LOG_ERROR);
    setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
}

uint8_t fuzz_u8(fuzz_reader *r) {
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

uint32_t fuzz_u32(fuzz_reader *r) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fuzz_u8(r) << (8 * i);
    return v;
}

char *fuzz_str(fuzz_reader *r) {
    const uint8_t *z = memchr(r->p, 0, r->n);
    size_t len = z ? (size_t)(z - r->p) : r->n;
    char *s = malloc(len + 1);
    if (!s) abort();
    memcpy(s, r->p, len);
    s[len] = 0;
    size_t used = z ? len + 1 : len;
    r->p += used;
    r->n -= used;
    return s;
}

const char *fuzz_data_path(const char *name) {
    static char buf[1024];
    const char *root = getenv("IVL_FUZZ_DATA");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : IVL_FUZZ_DATA_DIR, name);
    return buf;
}
