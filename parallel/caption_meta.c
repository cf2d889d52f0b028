// caption_meta.c - the "meta" object of `internvl caption --keep-meta` (caption_meta.h).
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "parallel/caption_meta.h"

// Length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is invalid
// (overlong forms, surrogates, code points above U+10FFFF and NUL are invalid here).
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (!len || len > n || c > 0xF4) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;          // overlong
    if (c == 0xED && s[1] >= 0xA0) return 0;         // surrogates
    if (c == 0xF0 && s[1] < 0x90) return 0;          // overlong
    if (c == 0xF4 && s[1] >= 0x90) return 0;         // above U+10FFFF
    return len;
}

char *ivl_cap_utf8_clean(const char *s, size_t n) {
    char *out = ivl_malloc(n * 3 + 1);   // each bad byte becomes 3 bytes at most
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(p + i, n - i);
        if (l) {
            memcpy(out + o, p + i, l);
            o += l;
            i += l;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = 0;
    return out;
}

static char *print_and_free(cJSON *m) {
    char *s = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    IVL_CHECK(s, "cannot format the metadata (out of memory)");
    return s;
}

static void set_error(cJSON *m, const char *fmt, const char *what, const char *detail) {
    char buf[512];
    snprintf(buf, sizeof buf, fmt, what, detail);
    cJSON_DeleteItemFromObjectCaseSensitive(m, "meta_error");
    cJSON_AddStringToObject(m, "meta_error", buf);
}

static void set_text(cJSON *m, const char *txt, size_t n) {
    char *t = ivl_cap_utf8_clean(txt, n);
    cJSON_DeleteItemFromObjectCaseSensitive(m, "source_text");
    cJSON_AddStringToObject(m, "source_text", t);
    free(t);
}

char *ivl_cap_meta_build(const char *json, size_t json_n, int64_t json_over, const char *txt,
                         size_t txt_n, int64_t txt_over, int64_t max_bytes, const char *what) {
    cJSON *m = NULL;
    char detail[128];
    if (json && json_n + (txt ? txt_n : 0) <= (size_t)max_bytes) {
        char *clean = ivl_cap_utf8_clean(json, json_n);
        cJSON *j = cJSON_Parse(clean);
        free(clean);
        if (j && cJSON_IsObject(j)) {
            m = j;
        } else {
            cJSON_Delete(j);
            m = cJSON_CreateObject();
            set_error(m, "%s.json is not a JSON object%s; its fields are not copied", what, "");
        }
    }
    if (!m) m = cJSON_CreateObject();
    if (json && json_n + (txt ? txt_n : 0) > (size_t)max_bytes) {
        snprintf(detail, sizeof detail, "%zu", json_n + (txt ? txt_n : 0));
        set_error(m, "%s: metadata of %s bytes is above the --keep-meta limit; not copied", what,
                  detail);
    } else if (txt && txt_n <= (size_t)max_bytes) {
        set_text(m, txt, txt_n);
    }
    if (json_over > 0 || txt_over > 0) {
        snprintf(detail, sizeof detail, "%lld", (long long)(json_over > 0 ? json_over : txt_over));
        set_error(m, json_over > 0 ? "%s.json has %s bytes, above the --keep-meta limit; not read"
                                   : "%s.txt has %s bytes, above the --keep-meta limit; not read",
                  what, detail);
    }
    return print_and_free(m);
}

char *ivl_cap_meta_from_column(const char *col, int64_t max_bytes, const char *what) {
    size_t n = strlen(col);
    cJSON *m = NULL;
    if (n > (size_t)max_bytes) {
        char detail[32];
        snprintf(detail, sizeof detail, "%zu", n);
        m = cJSON_CreateObject();
        set_error(m, "%s: metadata column of %s bytes is above the --keep-meta limit; not copied",
                  what, detail);
        return print_and_free(m);
    }
    const char *p = col;
    while (*p == ' ') p++;
    if (*p == '{') {
        char *clean = ivl_cap_utf8_clean(col, n);
        cJSON *j = cJSON_Parse(clean);
        free(clean);
        if (j && cJSON_IsObject(j)) return print_and_free(j);
        cJSON_Delete(j);
    }
    m = cJSON_CreateObject();
    set_text(m, col, n);
    return print_and_free(m);
}
