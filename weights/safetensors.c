// safetensors.c - see safetensors.h. Format: 8-byte little-endian header length N, N bytes of
// JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the
// data; offsets are relative to the first byte after the header.
#include "weights/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/check.h"

// A header larger than this is not a real checkpoint (the 26B's largest is about 100 KB).
#define ST_MAX_HEADER (100u << 20)

typedef struct {
    char *path;
    int fd;
    uint64_t size;
} st_file;

struct ivl_st_checkpoint {
    st_file *files;
    int nfiles;
    ivl_st_tensor *t;
    int n, cap;
    uint64_t total;
};

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = ivl_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

// Reads a whole small file (config, index) into a NUL-terminated buffer.
static int slurp(const char *path, char **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return ivl_errorf("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = ivl_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) buf = ivl_realloc(buf, cap *= 2);
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); return ivl_errorf("%s: read error", path); }
    buf[n] = 0;
    *out = buf;
    return 0;
}

static int pread_full(int fd, void *dst, uint64_t n, uint64_t off) {
    char *p = dst;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t r = pread(fd, p, chunk, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? -errno : -EIO;   // 0: the file shrank under us
        p += r;
        off += (uint64_t)r;
        n -= (uint64_t)r;
    }
    return 0;
}

static int parse_dtype(const char *s, ivl_dtype *dt) {
    if (!strcmp(s, "BF16")) *dt = IVL_BF16;
    else if (!strcmp(s, "F16")) *dt = IVL_F16;
    else if (!strcmp(s, "F32")) *dt = IVL_F32;
    else if (!strcmp(s, "I32")) *dt = IVL_I32;   // AWQ qweight / qzeros
    else return -1;
    return 0;
}

// Non-negative integer JSON number that fits in 2^53 (exact in a double).
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (d < 0 || d > 9007199254740992.0 || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int cmp_offset(const void *a, const void *b) {
    const ivl_st_tensor *x = *(ivl_st_tensor *const *)a, *y = *(ivl_st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

// Parses one entry of the header of file fi (data starts at base, data_len bytes).
static int parse_entry(ivl_st_checkpoint *ck, int fi, const cJSON *e, uint64_t base,
                       uint64_t data_len) {
    const char *path = ck->files[fi].path, *name = e->string;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) ||
        cJSON_GetArraySize(off) != 2)
        return ivl_errorf("%s: tensor %s: header entry needs dtype, shape and data_offsets "
                          "[begin, end]", path, name);
    ivl_st_tensor t = {0};
    if (parse_dtype(dt->valuestring, &t.dtype))
        return ivl_errorf("%s: tensor %s: dtype %s is not supported (BF16, F16, F32; I32 for AWQ qweight/qzeros)", path,
                          name, dt->valuestring);
    t.ndim = cJSON_GetArraySize(sh);
    if (t.ndim > IVL_MAX_DIMS)
        return ivl_errorf("%s: tensor %s: %d dimensions (at most %d)", path, name, t.ndim,
                          IVL_MAX_DIMS);
    uint64_t numel = 1;
    for (int d = 0; d < t.ndim; d++) {
        uint64_t v;
        if (json_u64(cJSON_GetArrayItem(sh, d), &v) || v > (1ull << 40))
            return ivl_errorf("%s: tensor %s: shape[%d] is not a valid size", path, name, d);
        t.shape[d] = (int64_t)v;
        numel *= v;
        if (numel > (1ull << 40))
            return ivl_errorf("%s: tensor %s: shape too large", path, name);
    }
    uint64_t b, en;
    if (json_u64(cJSON_GetArrayItem(off, 0), &b) || json_u64(cJSON_GetArrayItem(off, 1), &en) ||
        en < b)
        return ivl_errorf("%s: tensor %s: data_offsets are not [begin, end] with begin <= end",
                          path, name);
    if (en - b != numel * ivl_dtype_size(t.dtype))
        return ivl_errorf("%s: tensor %s: data_offsets [%llu, %llu] hold %llu bytes but shape x "
                          "%s needs %llu", path, name, (unsigned long long)b,
                          (unsigned long long)en, (unsigned long long)(en - b),
                          ivl_dtype_name(t.dtype),
                          (unsigned long long)(numel * ivl_dtype_size(t.dtype)));
    if (en > data_len)
        return ivl_errorf("%s: tensor %s: data_offsets [%llu, %llu] run past the end of the data "
                          "(%llu bytes): file truncated or header corrupt", path, name,
                          (unsigned long long)b, (unsigned long long)en,
                          (unsigned long long)data_len);
    t.file = fi;
    t.offset = base + b;
    t.nbytes = en - b;
    t.name = ivl_strdup(name);
    if (ck->n == ck->cap) {
        ck->cap = ck->cap ? 2 * ck->cap : 256;
        ck->t = ivl_realloc(ck->t, (size_t)ck->cap * sizeof *ck->t);
    }
    ck->t[ck->n++] = t;
    return 0;
}

static int open_file(ivl_st_checkpoint *ck, const char *path) {
    int fi = ck->nfiles++;
    ck->files = ivl_realloc(ck->files, (size_t)ck->nfiles * sizeof *ck->files);
    st_file *f = &ck->files[fi];
    f->path = ivl_strdup(path);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) return ivl_errorf("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(f->fd, &st)) return ivl_errorf("%s: cannot stat: %s", path, strerror(errno));
    f->size = (uint64_t)st.st_size;
    unsigned char len8[8];
    if (f->size < 8 || pread_full(f->fd, len8, 8, 0))
        return ivl_errorf("%s: too short for a safetensors file (%llu bytes)", path,
                          (unsigned long long)f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | len8[i];
    if (hlen > f->size - 8)
        return ivl_errorf("%s: header length %llu runs past the end of the file (%llu bytes): "
                          "file truncated or not a safetensors file", path,
                          (unsigned long long)hlen, (unsigned long long)f->size);
    if (hlen > ST_MAX_HEADER)
        return ivl_errorf("%s: header length %llu is implausibly large", path,
                          (unsigned long long)hlen);
    char *hdr = ivl_malloc(hlen + 1);
    if (pread_full(f->fd, hdr, hlen, 8)) {
        free(hdr);
        return ivl_errorf("%s: cannot read the header", path);
    }
    hdr[hlen] = 0;
    cJSON *root = cJSON_ParseWithLength(hdr, hlen);
    free(hdr);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ivl_errorf("%s: header is not a JSON object", path);
    }
    int first = ck->n, rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) continue;
        if ((rc = parse_entry(ck, fi, e, 8 + hlen, f->size - 8 - hlen))) break;
    }
    cJSON_Delete(root);
    if (rc) return rc;
    // Tensors of one file must not share bytes.
    int cnt = ck->n - first;
    ivl_st_tensor **by_off = ivl_malloc((size_t)(cnt ? cnt : 1) * sizeof *by_off);
    for (int i = 0; i < cnt; i++) by_off[i] = &ck->t[first + i];
    qsort(by_off, (size_t)cnt, sizeof *by_off, cmp_offset);
    for (int i = 1; i < cnt; i++) {
        const ivl_st_tensor *a = by_off[i - 1], *b = by_off[i];
        if (b->offset < a->offset + a->nbytes) {
            rc = ivl_errorf("%s: tensors %s and %s overlap in the file (bytes %llu..%llu and "
                            "%llu..%llu)", path, a->name, b->name,
                            (unsigned long long)a->offset, (unsigned long long)(a->offset + a->nbytes),
                            (unsigned long long)b->offset, (unsigned long long)(b->offset + b->nbytes));
            break;
        }
    }
    free(by_off);
    return rc;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const ivl_st_tensor *)a)->name, ((const ivl_st_tensor *)b)->name);
}

// Shards: every file the weight_map names is opened, and every mapped tensor must be in the
// file it is mapped to.
static int open_index(ivl_st_checkpoint *ck, const char *dir, const char *index_path) {
    char *text = NULL;
    if (slurp(index_path, &text)) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    int rc = 0;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map"), *e;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return ivl_errorf("%s: no weight_map object (not valid JSON or not an index)", index_path);
    }
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !e->valuestring[0]) {
            rc = ivl_errorf("%s: weight_map entry %s is not a file name in the folder",
                            index_path, e->string);
            goto done;
        }
        int known = 0;
        for (int i = 0; i < ck->nfiles && !known; i++) {
            const char *base = strrchr(ck->files[i].path, '/') + 1;
            known = !strcmp(base, e->valuestring);
        }
        if (!known) {
            char *p = join(dir, e->valuestring);
            rc = open_file(ck, p);
            free(p);
            if (rc) goto done;
        }
    }
    if (ck->n) qsort(ck->t, (size_t)ck->n, sizeof *ck->t, cmp_name);   // t is NULL when empty
    cJSON_ArrayForEach(e, wm) {
        const ivl_st_tensor *t = ivl_st_find(ck, e->string);
        const char *in = t ? strrchr(ck->files[t->file].path, '/') + 1 : NULL;
        if (!t || strcmp(in, e->valuestring)) {
            rc = ivl_errorf("%s: weight_map puts tensor %s in %s, but %s", index_path, e->string,
                            e->valuestring, t ? "it is in another shard" : "no shard has it");
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return rc;
}

int ivl_st_open_dir(const char *dir, ivl_st_checkpoint **out) {
    ivl_st_checkpoint *ck = ivl_calloc(1, sizeof *ck);
    char *index = join(dir, "model.safetensors.index.json");
    char *single = join(dir, "model.safetensors");
    int rc;
    if (access(index, F_OK) == 0) rc = open_index(ck, dir, index);
    else if (access(single, F_OK) == 0) rc = open_file(ck, single);
    else rc = ivl_errorf("%s: no model.safetensors or model.safetensors.index.json", dir);
    free(index);
    free(single);
    if (!rc) {
        if (ck->n) qsort(ck->t, (size_t)ck->n, sizeof *ck->t, cmp_name);   // t is NULL when empty
        for (int i = 1; i < ck->n; i++)
            if (!strcmp(ck->t[i - 1].name, ck->t[i].name)) {
                rc = ivl_errorf("tensor %s is in both %s and %s", ck->t[i].name,
                                ck->files[ck->t[i - 1].file].path, ck->files[ck->t[i].file].path);
                break;
            }
        for (int i = 0; i < ck->n; i++) ck->total += ck->t[i].nbytes;
    }
    if (rc) {
        ivl_st_close(ck);
        return -1;
    }
    *out = ck;
    return 0;
}

void ivl_st_close(ivl_st_checkpoint *ck) {
    if (!ck) return;
    for (int i = 0; i < ck->nfiles; i++) {
        if (ck->files[i].fd >= 0) close(ck->files[i].fd);
        free(ck->files[i].path);
    }
    for (int i = 0; i < ck->n; i++) free((char *)ck->t[i].name);
    free(ck->files);
    free(ck->t);
    free(ck);
}

int ivl_st_count(const ivl_st_checkpoint *ck) { return ck->n; }
const ivl_st_tensor *ivl_st_at(const ivl_st_checkpoint *ck, int i) { return &ck->t[i]; }
const char *ivl_st_file_path(const ivl_st_checkpoint *ck, int file) { return ck->files[file].path; }
uint64_t ivl_st_total_bytes(const ivl_st_checkpoint *ck) { return ck->total; }

const ivl_st_tensor *ivl_st_find(const ivl_st_checkpoint *ck, const char *name) {
    ivl_st_tensor key = {.name = name};
    return bsearch(&key, ck->t, (size_t)ck->n, sizeof *ck->t, cmp_name);
}

int ivl_st_read(const ivl_st_checkpoint *ck, const ivl_st_tensor *t, uint64_t byte0, uint64_t n,
                void *dst) {
    if (byte0 > t->nbytes || n > t->nbytes - byte0)
        return ivl_errorf("%s: tensor %s: read of bytes %llu..%llu outside its %llu bytes",
                          ck->files[t->file].path, t->name, (unsigned long long)byte0,
                          (unsigned long long)(byte0 + n), (unsigned long long)t->nbytes);
    int e = pread_full(ck->files[t->file].fd, dst, n, t->offset + byte0);
    if (e)
        return ivl_errorf("%s: tensor %s: read failed: %s", ck->files[t->file].path, t->name,
                          e == -EIO ? "file shorter than its header says" : strerror(-e));
    return 0;
}
