// caption_keyset.h - a set of strings (result keys) for the captioning job: which keys an
// output file already holds (resume) and which keys this run has seen (duplicates in the
// input). Open addressing with FNV-1a; grows at 50% load; strings are copied.
#ifndef IVL_PARALLEL_CAPTION_KEYSET_H
#define IVL_PARALLEL_CAPTION_KEYSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char **slots;     // NULL = empty
    size_t cap;       // power of two
    size_t count;
} ivl_keyset;

void ivl_keyset_init(ivl_keyset *s);
void ivl_keyset_free(ivl_keyset *s);
int ivl_keyset_has(const ivl_keyset *s, const char *key);
// Adds key; returns 1 if it was new, 0 if it was already there.
int ivl_keyset_add(ivl_keyset *s, const char *key);
uint64_t ivl_keyset_hash(const char *key);

#endif
