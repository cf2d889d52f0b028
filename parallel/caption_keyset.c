// caption_keyset.c - see caption_keyset.h.
#include "parallel/caption_keyset.h"

#include <stdlib.h>
#include <string.h>

#include "core/check.h"

uint64_t ivl_keyset_hash(const char *key) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 1099511628211ull;
    return h;
}

void ivl_keyset_init(ivl_keyset *s) {
    s->cap = 64;
    s->count = 0;
    s->slots = ivl_calloc(s->cap, sizeof *s->slots);
}

void ivl_keyset_free(ivl_keyset *s) {
    for (size_t i = 0; i < s->cap; i++) free(s->slots[i]);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

static size_t find(char **slots, size_t cap, const char *key) {
    size_t i = (size_t)ivl_keyset_hash(key) & (cap - 1);
    while (slots[i] && strcmp(slots[i], key) != 0) i = (i + 1) & (cap - 1);
    return i;
}

int ivl_keyset_has(const ivl_keyset *s, const char *key) {
    return s->slots[find(s->slots, s->cap, key)] != NULL;
}

int ivl_keyset_add(ivl_keyset *s, const char *key) {
    size_t i = find(s->slots, s->cap, key);
    if (s->slots[i]) return 0;
    s->slots[i] = ivl_strdup(key);
    if (++s->count * 2 > s->cap) {
        size_t ncap = s->cap * 2;
        char **n = ivl_calloc(ncap, sizeof *n);
        for (size_t j = 0; j < s->cap; j++)
            if (s->slots[j]) n[find(n, ncap, s->slots[j])] = s->slots[j];
        free(s->slots);
        s->slots = n;
        s->cap = ncap;
    }
    return 1;
}
