// caption_utf8.c - see caption_utf8.h.
#include "parallel/caption_utf8.h"

#include <stdio.h>
#include <string.h>

#include "core/check.h"

// Length of the valid UTF-8 sequence at p (1..4), or 0 when the byte at p starts none.
static size_t seq_len(const unsigned char *p) {
    unsigned char c = p[0];
    if (c < 0x80) return 1;
#define CONT(x) ((x) >= 0x80 && (x) <= 0xBF)
    if (c >= 0xC2 && c <= 0xDF) return CONT(p[1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return p[1] >= lo && p[1] <= hi && CONT(p[2]) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return p[1] >= lo && p[1] <= hi && CONT(p[2]) && CONT(p[3]) ? 4 : 0;
    }
#undef CONT
    return 0;
}

int ivl_cap_utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t l = seq_len(p);
        if (!l) return 0;
        p += l;
    }
    return 1;
}

char *ivl_cap_key_json(const char *s, int *escaped) {
    if (escaped) *escaped = 0;
    if (ivl_cap_utf8_valid(s)) return ivl_strdup(s);
    if (escaped) *escaped = 1;
    const unsigned char *p = (const unsigned char *)s;
    char *out = ivl_malloc(strlen(s) * 4 + 1), *o = out;
    while (*p) {
        size_t l = seq_len(p);
        if (!l) {
            o += sprintf(o, "\\x%02x", *p++);
        } else if (*p == '\\') {
            *o++ = '\\';
            *o++ = '\\';
            p++;
        } else {
            memcpy(o, p, l);
            o += l;
            p += l;
        }
    }
    *o = 0;
    return out;
}

char *ivl_cap_hex(const char *s) {
    size_t n = strlen(s);
    char *out = ivl_malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", (unsigned char)s[i]);
    out[2 * n] = 0;
    return out;
}
