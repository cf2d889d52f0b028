// caption_dups.c - see caption_dups.h.
#include "parallel/caption_dups.h"

#include <stdlib.h>
#include <string.h>

#include "core/check.h"

// FNV-1a 64, then a murmur3 finaliser so that similar keys spread over the table.
static uint64_t key_hash(const char *key) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1;
}

void ivl_cap_dups_init(ivl_cap_dups *d) {
    d->cap = 1024;
    d->count = 0;
    d->hash = ivl_calloc(d->cap, sizeof *d->hash);
    d->unit = ivl_calloc(d->cap, sizeof *d->unit);
}

void ivl_cap_dups_free(ivl_cap_dups *d) {
    free(d->hash);
    free(d->unit);
    memset(d, 0, sizeof *d);
}

static size_t slot_of(const uint64_t *hash, size_t cap, uint64_t h) {
    size_t i = (size_t)h & (cap - 1);
    while (hash[i] && hash[i] != h) i = (i + 1) & (cap - 1);
    return i;
}

int ivl_cap_dups_add(ivl_cap_dups *d, const char *key, int unit) {
    uint64_t h = key_hash(key);
    size_t i = slot_of(d->hash, d->cap, h);
    if (d->hash[i]) return d->unit[i] == unit ? -1 : d->unit[i];
    d->hash[i] = h;
    d->unit[i] = unit;
    if (++d->count * 2 > d->cap) {
        size_t ncap = d->cap * 2;
        uint64_t *nh = ivl_calloc(ncap, sizeof *nh);
        int32_t *nu = ivl_calloc(ncap, sizeof *nu);
        for (size_t j = 0; j < d->cap; j++)
            if (d->hash[j]) {
                size_t k = slot_of(nh, ncap, d->hash[j]);
                nh[k] = d->hash[j];
                nu[k] = d->unit[j];
            }
        free(d->hash);
        free(d->unit);
        d->hash = nh;
        d->unit = nu;
        d->cap = ncap;
    }
    return -1;
}
