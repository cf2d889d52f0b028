// caption_input.c - see caption_input.h.
#define _GNU_SOURCE
#include "parallel/caption_input.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/check.h"
#include "core/log.h"
#include "parallel/caption_meta.h"

static const char *k_exts[] = {"jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff"};

int ivl_cap_is_image_name(const char *name) {
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash + 1 : name, '.');
    if (!dot) return 0;
    for (size_t i = 0; i < sizeof k_exts / sizeof k_exts[0]; i++)
        if (!strcasecmp(dot + 1, k_exts[i])) return 1;
    return 0;
}

void ivl_cap_item_free(ivl_cap_item *it) {
    free(it->key);
    free(it->source);
    free(it->path);
    free(it->data);
    free(it->error);
    free(it->meta);
    memset(it, 0, sizeof *it);
}

// ---- brace ranges ----

#define IVL_CAP_MAX_BRACE_RANGE 1000000   // shards named by one brace pattern

int ivl_cap_expand_braces(const char *pat, char ***out) {
    const char *lb = strchr(pat, '{');
    const char *rb = lb ? strchr(lb, '}') : NULL;
    const char *dots = lb && rb ? strstr(lb, "..") : NULL;
    if (!lb || !rb || !dots || dots > rb) {
        if (lb && rb) return ivl_errorf("%s: only numeric ranges {A..B} are supported in braces", pat);
        *out = ivl_malloc(sizeof **out);
        (*out)[0] = ivl_strdup(pat);
        return 1;
    }
    char *end;
    errno = 0;
    long a = strtol(lb + 1, &end, 10);
    if (end != dots || !isdigit((unsigned char)lb[1]) || errno == ERANGE)
        return ivl_errorf("%s: bad brace range (expected {00000..00999})", pat);
    long b = strtol(dots + 2, &end, 10);
    if (end != rb || !isdigit((unsigned char)dots[2]) || errno == ERANGE)
        return ivl_errorf("%s: bad brace range (expected {00000..00999})", pat);
    if (b < a) return ivl_errorf("%s: empty brace range (%ld > %ld)", pat, a, b);
    // Each shard becomes a string here: bound the count (and b - a + 1 cannot overflow).
    if (b - a >= IVL_CAP_MAX_BRACE_RANGE)
        return ivl_errorf("%s: a brace range of %ld shards is above the limit of %d; split the "
                          "job", pat, b - a + 1, IVL_CAP_MAX_BRACE_RANGE);
    int width = (int)(dots - lb - 1);
    long n = b - a + 1;
    char **v = ivl_malloc((size_t)n * sizeof *v);
    for (long i = 0; i < n; i++) {
        size_t len = strlen(pat) + 32;
        v[i] = ivl_malloc(len);
        snprintf(v[i], len, "%.*s%0*ld%s", (int)(lb - pat), pat, width, a + i, rb + 1);
    }
    *out = v;
    return (int)n;
}

// ---- directories and lists ----

typedef struct {
    ivl_cap_file *v;
    int64_t n, cap;
} file_vec;

static void fv_push(file_vec *f, char *key, char *path) {
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 256;
        f->v = ivl_realloc(f->v, (size_t)f->cap * sizeof *f->v);
    }
    f->v[f->n].key = key;
    f->v[f->n].path = path;
    f->v[f->n].meta = NULL;
    f->n++;
}

static char *strip_ext(const char *name) {
    char *k = ivl_strdup(name);
    char *slash = strrchr(k, '/');
    char *dot = strrchr(slash ? slash + 1 : k, '.');
    if (dot && dot != (slash ? slash + 1 : k)) *dot = 0;
    return k;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// The folders from the root down to the one being walked, by identity: a folder reached
// again through a symlink (to a parent, to itself) would make the walk endless and caption
// the same images under ever longer keys. Such a symlink is not followed (with a warning);
// symlinks to folders off the current path are followed (their images get those keys too).
typedef struct walk_dir {
    dev_t dev;
    ino_t ino;
    const char *path;
    const struct walk_dir *up;
} walk_dir;

// Recursive walk; rel is the path below the root ("" at the top), here is its folder.
static int walk(const char *root, const char *rel, const walk_dir *here, file_vec *f) {
    char dir[8192];
    snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) return ivl_errorf("cannot read the folder %s: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;   // ., .., hidden files
        if (n == cap) names = ivl_realloc(names, (size_t)(cap = cap ? cap * 2 : 64) * sizeof *names);
        names[n++] = ivl_strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);   // names is NULL when empty
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char sub[4096], full[8192];
        int l1 = snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", names[i]);
        int l2 = snprintf(full, sizeof full, "%s/%s", root, sub);
        if (rc == 0 && (l1 >= (int)sizeof sub || l2 >= (int)sizeof full))
            rc = ivl_errorf("path too long under %s: %s/...", root, rel);
        struct stat st;
        if (rc == 0 && stat(full, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                const walk_dir *a = here;
                while (a && !(a->dev == st.st_dev && a->ino == st.st_ino)) a = a->up;
                if (a) {
                    LOG_WARN("symlink loop: %s leads back to %s, a folder of the walk's own path; "
                             "not followed", full, a->path);
                } else {
                    walk_dir next = {st.st_dev, st.st_ino, full, here};
                    rc = walk(root, sub, &next, f);
                }
            } else if (S_ISREG(st.st_mode) && ivl_cap_is_image_name(names[i])) {
                fv_push(f, strip_ext(sub), ivl_strdup(full));
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int read_list(const char *path, file_vec *f) {
    FILE *fp = fopen(path, "r");
    if (!fp) return ivl_errorf("cannot open the list file %s: %s", path, strerror(errno));
    char *base = ivl_strdup(path);
    char *slash = strrchr(base, '/');
    if (slash) slash[1] = 0; else base[0] = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0 || line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        char *p = tab ? tab + 1 : line;
        char *tab2 = tab ? strchr(p, '\t') : NULL;     // KEY<TAB>PATH<TAB>META
        if (tab2) *tab2 = 0;
        char full[4096];
        if (snprintf(full, sizeof full, "%s%s", p[0] == '/' ? "" : base, p) >= (int)sizeof full) {
            int rc = ivl_errorf("list file %s: a path is longer than %zu bytes (%.60s...)", path,
                                sizeof full - 1, p);
            free(line);
            free(base);
            fclose(fp);
            return rc;
        }
        char *key;
        if (tab) {
            *tab = 0;
            key = ivl_strdup(line);
        } else {
            const char *s = strrchr(p, '/');
            key = strip_ext(s ? s + 1 : p);
        }
        fv_push(f, key, ivl_strdup(full));
        if (tab2) f->v[f->n - 1].meta = ivl_strdup(tab2 + 1);
    }
    free(line);
    free(base);
    fclose(fp);
    return 0;
}

static char *stem_of(const char *path) {
    char *p = ivl_strdup(path);
    size_t l = strlen(p);
    while (l > 1 && p[l - 1] == '/') p[--l] = 0;
    const char *s = strrchr(p, '/');
    char *k = strip_ext(s ? s + 1 : p);
    free(p);
    return k;
}

static void add_unit(ivl_cap_inputs *in, ivl_cap_unit u) {
    in->units = ivl_realloc(in->units, (size_t)(in->n + 1) * sizeof *in->units);
    in->units[in->n++] = u;
}

// A folder's or list file's images as output units of `chunk` images each, named
// <stem>-000000, <stem>-000001, ...; the inputs keep the list (freed with them). chunk 0
// (the folder or list could not be read) only hands the list over, for freeing.
static void add_file_units(ivl_cap_inputs *in, const char *path, file_vec *f, int64_t chunk) {
    char *stem = stem_of(path);
    for (int64_t c = 0; chunk > 0 && c * chunk < f->n; c++) {
        ivl_cap_unit u = {IVL_CAP_FILES, NULL, NULL, f->v + c * chunk,
                          f->n - c * chunk < chunk ? f->n - c * chunk : chunk, 0};
        size_t l = strlen(stem) + 16;
        u.name = ivl_malloc(l);
        snprintf(u.name, l, "%s-%06lld", stem, (long long)c);
        add_unit(in, u);
    }
    free(stem);
    in->file_lists = ivl_realloc(in->file_lists, (size_t)(in->n_lists + 1) * sizeof(void *));
    in->file_counts = ivl_realloc(in->file_counts, (size_t)(in->n_lists + 1) * sizeof(int64_t));
    in->file_lists[in->n_lists] = f->v;
    in->file_counts[in->n_lists++] = f->n;
    in->known_images += f->n;
}

int ivl_cap_inputs_build(char *const *srcs, int nsrc, int64_t chunk, ivl_cap_inputs *in) {
    memset(in, 0, sizeof *in);
    if (chunk < 1) chunk = 1;
    for (int s = 0; s < nsrc; s++) {
        char **paths;
        int np = ivl_cap_expand_braces(srcs[s], &paths);
        if (np < 0) return -1;
        int rc = 0;
        for (int i = 0; i < np; i++) {
            struct stat st;
            if (rc == 0 && stat(paths[i], &st) != 0)
                rc = ivl_errorf("input %s: %s", paths[i], strerror(errno));
            if (rc == 0 && S_ISDIR(st.st_mode)) {
                file_vec f = {0};
                walk_dir top = {st.st_dev, st.st_ino, paths[i], NULL};
                rc = walk(paths[i], "", &top, &f);
                if (rc == 0 && f.n == 0)
                    LOG_WARN("input folder %s holds no image files (by extension)", paths[i]);
                add_file_units(in, paths[i], &f, rc == 0 ? chunk : 0);
            } else if (rc == 0) {
                size_t l = strlen(paths[i]);
                int is_tar = l > 4 && !strcasecmp(paths[i] + l - 4, ".tar");
                if (is_tar) {
                    ivl_cap_unit u = {IVL_CAP_TAR, stem_of(paths[i]), ivl_strdup(paths[i]), NULL, 0, 0};
                    add_unit(in, u);
                } else {
                    file_vec f = {0};
                    rc = read_list(paths[i], &f);
                    add_file_units(in, paths[i], &f, rc == 0 ? chunk : 0);
                }
            }
            free(paths[i]);
        }
        free(paths);
        if (rc) return -1;
    }
    if (in->n == 0) return ivl_errorf("no input images: the sources are empty (pass a folder of images, a list file or .tar shards)");
    for (int i = 0; i < in->n; i++)
        for (int j = i + 1; j < in->n; j++)
            if (!strcmp(in->units[i].name, in->units[j].name))
                return ivl_errorf("two inputs give the same output name '%s' (%s): rename one, or "
                                  "caption them into different --out folders", in->units[i].name,
                                  in->units[i].tar ? in->units[i].tar : "a folder or list");
    return 0;
}

void ivl_cap_inputs_free(ivl_cap_inputs *in) {
    for (int i = 0; i < in->n; i++) {
        free(in->units[i].name);
        free(in->units[i].tar);
    }
    for (int l = 0; l < in->n_lists; l++) {
        for (int64_t i = 0; i < in->file_counts[l]; i++) {
            free(in->file_lists[l][i].key);
            free(in->file_lists[l][i].path);
            free(in->file_lists[l][i].meta);
        }
        free(in->file_lists[l]);
    }
    free(in->file_lists);
    free(in->file_counts);
    free(in->units);
    memset(in, 0, sizeof *in);
}

// ---- readers ----

struct ivl_cap_reader {
    const ivl_cap_unit *u;
    int64_t next;              // FILES: next file index
    struct archive *a;         // TAR
    int64_t max_bytes;
    int64_t members;
    // --keep-meta (TAR): a header read ahead (the member after an image), and the metadata
    // members read so far for the sample pre_key
    int pending, pend_rc;
    struct archive_entry *pend_e;
    char *pre_key, *pre_json, *pre_txt;
    size_t pre_json_n, pre_txt_n;
    int64_t pre_json_over, pre_txt_over;
};

int ivl_cap_reader_open(const ivl_cap_unit *u, int64_t max_member_bytes, ivl_cap_reader **out) {
    ivl_cap_reader *r = ivl_calloc(1, sizeof *r);
    r->u = u;
    r->max_bytes = max_member_bytes > 0 ? max_member_bytes : ((int64_t)256 << 20);
    if (u->kind == IVL_CAP_TAR) {
        r->a = archive_read_new();
        archive_read_support_format_tar(r->a);
        archive_read_support_format_gnutar(r->a);
        if (archive_read_open_filename(r->a, u->tar, 1 << 20) != ARCHIVE_OK) {
            int rc = ivl_errorf("cannot open the tar shard %s: %s", u->tar, archive_error_string(r->a));
            archive_read_free(r->a);
            free(r);
            return rc;
        }
    }
    *out = r;
    return 0;
}

static int escapes(const char *name) {
    if (name[0] == '/') return 1;
    for (const char *p = name; *p;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 2 && p[0] == '.' && p[1] == '.') return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

// WebDataset key: the member path up to the first '.' of its last component.
static char *wds_key(const char *name) {
    char *k = ivl_strdup(name);
    char *slash = strrchr(k, '/');
    char *dot = strchr(slash ? slash + 1 : k, '.');
    if (dot) *dot = 0;
    return k;
}

static char *fmt_source(const char *tar, const char *member) {
    size_t l = strlen(tar) + strlen(member) + 2;
    char *s = ivl_malloc(l);
    snprintf(s, l, "%s:%s", tar, member);
    return s;
}

// ---- --keep-meta for tar shards ----

static void pre_reset(ivl_cap_reader *r) {
    free(r->pre_key);
    free(r->pre_json);
    free(r->pre_txt);
    r->pre_key = r->pre_json = r->pre_txt = NULL;
    r->pre_json_n = r->pre_txt_n = 0;
    r->pre_json_over = r->pre_txt_over = 0;
}

// 1 for KEY.json, 2 for KEY.txt (the metadata members --keep-meta copies).
static int meta_kind(const char *name) {
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash + 1 : name, '.');
    if (!dot) return 0;
    return !strcasecmp(dot + 1, "json") ? 1 : !strcasecmp(dot + 1, "txt") ? 2 : 0;
}

static int next_header(ivl_cap_reader *r, struct archive_entry **e) {
    if (r->pending) {
        r->pending = 0;
        *e = r->pend_e;
        return r->pend_rc;
    }
    int rc = archive_read_next_header(r->a, e);
    if (rc >= ARCHIVE_WARN) r->members++;
    return rc;
}

// Reads the current member (a KEY.json / KEY.txt) into the sample's metadata.
static void take_meta(ivl_cap_reader *r, struct archive_entry *e, const char *name) {
    char *key = wds_key(name);
    if (!r->pre_key || strcmp(r->pre_key, key)) {
        pre_reset(r);
        r->pre_key = key;
    } else {
        free(key);
    }
    int kind = meta_kind(name);
    int64_t size = archive_entry_size(e);
    char **dst = kind == 1 ? &r->pre_json : &r->pre_txt;
    size_t *dn = kind == 1 ? &r->pre_json_n : &r->pre_txt_n;
    int64_t *over = kind == 1 ? &r->pre_json_over : &r->pre_txt_over;
    free(*dst);
    *dst = NULL;
    *dn = 0;
    *over = 0;
    if (size > r->u->meta_max_bytes) {
        *over = size;
        return;
    }
    char *buf = ivl_malloc((size_t)size + 1);
    int64_t got = 0;
    while (got < size) {
        la_ssize_t n = archive_read_data(r->a, buf + got, (size_t)(size - got));
        if (n <= 0) break;
        got += n;
    }
    buf[got] = 0;
    *dst = buf;
    *dn = (size_t)got;
}

// After an image member: reads the members that follow while they are this sample's
// KEY.json / KEY.txt; the first other header is kept for the next call.
static void read_meta_after(ivl_cap_reader *r, const char *key) {
    for (;;) {
        struct archive_entry *e;
        int rc = archive_read_next_header(r->a, &e);
        if (rc >= ARCHIVE_WARN) r->members++;
        const char *name = rc >= ARCHIVE_WARN && archive_entry_filetype(e) == AE_IFREG
                               ? archive_entry_pathname(e) : NULL;
        if (name && meta_kind(name) && !escapes(name)) {
            char *k = wds_key(name);
            int same = !strcmp(k, key);
            free(k);
            if (same) {
                take_meta(r, e, name);
                continue;
            }
        }
        r->pending = 1;
        r->pend_rc = rc;
        r->pend_e = e;
        return;
    }
}

static void attach_meta(ivl_cap_reader *r, ivl_cap_item *it) {
    char *what = fmt_source(r->u->tar, it->key);     // "shard.tar:KEY" for messages
    int have = r->pre_key && !strcmp(r->pre_key, it->key);
    it->meta = ivl_cap_meta_build(have ? r->pre_json : NULL, have ? r->pre_json_n : 0,
                                  have ? r->pre_json_over : 0, have ? r->pre_txt : NULL,
                                  have ? r->pre_txt_n : 0, have ? r->pre_txt_over : 0,
                                  r->u->meta_max_bytes, what);
    free(what);
    pre_reset(r);
}

int ivl_cap_reader_next(ivl_cap_reader *r, ivl_cap_item *it,
                        int (*skip)(void *ctx, const char *key), void *ctx) {
    memset(it, 0, sizeof *it);
    const int keep_meta = r->u->meta_max_bytes > 0;
    if (r->u->kind == IVL_CAP_FILES) {
        while (r->next < r->u->nfiles) {
            const ivl_cap_file *f = &r->u->files[r->next++];
            if (skip && skip(ctx, f->key)) continue;
            it->key = ivl_strdup(f->key);
            it->source = ivl_strdup(f->path);
            it->path = ivl_strdup(f->path);
            if (keep_meta)
                it->meta = f->meta ? ivl_cap_meta_from_column(f->meta, r->u->meta_max_bytes, f->path)
                                   : ivl_strdup("{}");
            return 1;
        }
        return 0;
    }
    for (;;) {
        struct archive_entry *e;
        int rc = keep_meta ? next_header(r, &e) : archive_read_next_header(r->a, &e);
        if (rc == ARCHIVE_EOF) return 0;
        if (rc < ARCHIVE_WARN)
            return ivl_errorf("tar shard %s is corrupt or truncated after %lld members: %s", r->u->tar,
                              (long long)r->members, archive_error_string(r->a));
        if (!keep_meta) r->members++;
        if (archive_entry_filetype(e) != AE_IFREG) continue;
        const char *name = archive_entry_pathname(e);
        if (keep_meta && name && meta_kind(name) && !escapes(name)) {
            take_meta(r, e, name);
            continue;
        }
        if (!name || !ivl_cap_is_image_name(name)) continue;   // sample metadata (txt, json, ...)
        char *key = wds_key(name);
        if (skip && skip(ctx, key)) {
            free(key);
            continue;
        }
        it->key = key;
        it->source = fmt_source(r->u->tar, name);
        if (escapes(name)) {
            it->error = ivl_strdup("tar member name is absolute or contains '..' (it would escape "
                                   "the shard); not read");
            if (keep_meta) attach_meta(r, it);
            return 1;
        }
        int64_t size = archive_entry_size(e);
        if (size > r->max_bytes) {
            size_t l = 128;
            it->error = ivl_malloc(l);
            snprintf(it->error, l, "member of %lld bytes is above the limit (%lld)", (long long)size,
                     (long long)r->max_bytes);
            if (keep_meta) attach_meta(r, it);
            return 1;
        }
        it->data = ivl_malloc(size > 0 ? (size_t)size : 1);
        int64_t got = 0;
        while (got < size) {
            la_ssize_t n = archive_read_data(r->a, (char *)it->data + got, (size_t)(size - got));
            if (n <= 0) {
                size_t l = 512;
                it->error = ivl_malloc(l);
                snprintf(it->error, l, "cannot read the tar member (%lld of %lld bytes): %s",
                         (long long)got, (long long)size,
                         n < 0 ? archive_error_string(r->a) : "unexpected end of the shard");
                free(it->data);
                it->data = NULL;
                it->retry = 1;   // the shard's fault, not the image's: retried once it is whole
                if (keep_meta) attach_meta(r, it);
                return 1;
            }
            got += n;
        }
        it->size = (size_t)size;
        if (keep_meta) {
            read_meta_after(r, it->key);
            attach_meta(r, it);
        }
        return 1;
    }
}

void ivl_cap_reader_close(ivl_cap_reader *r) {
    if (!r) return;
    if (r->a) archive_read_free(r->a);
    pre_reset(r);
    free(r);
}
