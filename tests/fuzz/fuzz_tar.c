// fuzz_tar.c - the caption command's input readers on untrusted bytes (parallel/caption_input.h):
// byte 0 even: the rest is a WebDataset tar shard, read member by member with
// ivl_cap_reader_next (members of at most 64 KiB, so size limits are hit too); byte 0 odd:
// the rest is a list file ("PATH" or "KEY<TAB>PATH" lines) given to ivl_cap_inputs_build,
// and its text (up to the first newline) also goes through ivl_cap_expand_braces. Every member
// key also goes through the result lines' escaping (parallel/caption_utf8.h): the text must be
// valid UTF-8 and give the raw bytes back.
// Byte 0 bit 1: --keep-meta (4 KiB limit): KEY.json / KEY.txt members are read ahead and
// every item must carry a "meta" text that parses as a JSON object and is valid UTF-8; list
// files' third columns go through ivl_cap_meta_from_column with the same oracle.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "fuzz_util.h"
#include "parallel/caption_input.h"
#include "parallel/caption_utf8.h"
#include "parallel/caption_meta.h"

#include <cjson/cJSON.h>

// The oracle for --keep-meta: a JSON object, valid UTF-8 (cleaning changes nothing).
static void check_meta(const char *m) {
    if (!m) __builtin_trap();
    cJSON *j = cJSON_Parse(m);
    if (!j || !cJSON_IsObject(j)) __builtin_trap();
    cJSON_Delete(j);
    char *c = ivl_cap_utf8_clean(m, strlen(m));
    if (strcmp(c, m)) __builtin_trap();
    free(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_common();
    return 0;
}

// Undoes ivl_cap_key_json's escaping: \\ -> \, \xHH -> the byte.
static char *unescape(const char *t) {
    char *out = malloc(strlen(t) + 1), *o = out;
    for (const char *p = t; *p;) {
        if (p[0] == '\\' && p[1] == '\\') {
            *o++ = '\\';
            p += 2;
        } else if (p[0] == '\\' && p[1] == 'x') {
            unsigned v = 0;
            if (sscanf(p + 2, "%2x", &v) != 1) __builtin_trap();
            *o++ = (char)v;
            p += 4;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

static void check_key_escape(const char *key) {
    int esc = 0;
    char *t = ivl_cap_key_json(key, &esc);
    if (!ivl_cap_utf8_valid(t)) __builtin_trap();
    if (esc == ivl_cap_utf8_valid(key)) __builtin_trap();   // escaped exactly when not UTF-8
    char *back = esc ? unescape(t) : strdup(t);
    if (strcmp(back, key) != 0) __builtin_trap();
    free(back);
    free(t);
}

static void read_tar(const uint8_t *data, size_t size, int keep_meta) {
    char *path = strdup(fuzz_write_file("shard.tar", data, size));
    ivl_cap_unit u = {IVL_CAP_TAR, "shard", path, NULL, 0, keep_meta ? 4096 : 0};
    ivl_cap_reader *r = NULL;
    if (ivl_cap_reader_open(&u, 64 << 10, &r) == 0) {
        ivl_cap_item it;
        for (int i = 0; i < 10000; i++) {
            memset(&it, 0, sizeof it);
            int rc = ivl_cap_reader_next(r, &it, NULL, NULL);
            if (rc < 0 && !ivl_last_error()[0]) __builtin_trap();
            if (rc <= 0) break;
            if (!it.key || !it.source) __builtin_trap();
            check_key_escape(it.key);
            if (it.retry && !it.error) __builtin_trap();
            if (!it.error && !it.path && it.size > (64 << 10)) __builtin_trap();
            if (keep_meta) check_meta(it.meta);
            else if (it.meta) __builtin_trap();
            ivl_cap_item_free(&it);
        }
        ivl_cap_reader_close(r);
    }
    free(path);
}

static void read_list(const uint8_t *data, size_t size, int keep_meta) {
    // An image the list may name by a relative path.
    fuzz_write_file("a.jpg", "\xff\xd8\xff", 3);
    char *path = strdup(fuzz_write_file("list.txt", data, size));
    char *srcs[1] = {path};
    ivl_cap_inputs in = {0};
    if (ivl_cap_inputs_build(srcs, 1, 1 + (size % 7), &in) == 0 && keep_meta)
        for (int l = 0; l < in.n_lists; l++)
            for (int64_t i = 0; i < in.file_counts[l]; i++)
                if (in.file_lists[l][i].meta) {
                    char *m = ivl_cap_meta_from_column(in.file_lists[l][i].meta, 4096, "list");
                    check_meta(m);
                    free(m);
                }
    ivl_cap_inputs_free(&in);   // also after a failure (what cmd_caption does)
    free(path);
    size_t n = 0;
    while (n < size && n < 256 && data[n] != '\n' && data[n]) n++;
    char *pat = malloc(n + 1);
    memcpy(pat, data, n);
    pat[n] = 0;
    char **out = NULL;
    int cnt = ivl_cap_expand_braces(pat, &out);
    for (int i = 0; i < cnt; i++) free(out[i]);
    free(out);
    free(pat);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int keep_meta = (data[0] >> 1) & 1;
    if (data[0] & 1) read_list(data + 1, size - 1, keep_meta);
    else read_tar(data + 1, size - 1, keep_meta);
    return 0;
}
