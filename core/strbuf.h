// strbuf.h - a growable NUL-terminated byte string (prompt text, decoded text).
// Zero-initialise ({0}) before use; s is malloc'ed (free it, or keep it as the result).
#ifndef IVL_STRBUF_H
#define IVL_STRBUF_H

#include <string.h>

#include "core/check.h"

typedef struct {
    char *s;
    size_t n, cap;
} ivl_strbuf;

static inline void ivl_strbuf_add(ivl_strbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = ivl_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static inline void ivl_strbuf_str(ivl_strbuf *b, const char *s) { ivl_strbuf_add(b, s, strlen(s)); }

#endif
