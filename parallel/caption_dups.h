// caption_dups.h - the keys seen by one run of `internvl caption` across all its outputs, to
// report a key that is in two outputs (issue 18; docs/caption.md "Duplicate keys"). Result
// files are per output unit and a key is unique within one; two shards may still share a
// WebDataset key (a shard packed twice, or keys that restart in every shard). Such a key is
// captioned in each output and reported, never dropped: the images may differ.
// Compact: a 64-bit hash of each key and the first unit that had it (16 bytes a slot, at
// most half full: ~32 bytes per key, 320 MB for 10 million keys). Two different keys with
// the same hash would be reported as one duplicate (odds about n^2 / 2^65).
#ifndef IVL_PARALLEL_CAPTION_DUPS_H
#define IVL_PARALLEL_CAPTION_DUPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *hash;   // 0 = empty slot
    int32_t *unit;
    size_t cap, count;
} ivl_cap_dups;

void ivl_cap_dups_init(ivl_cap_dups *d);
void ivl_cap_dups_free(ivl_cap_dups *d);
// Records key for unit. Returns -1 when the key is new (or was first seen in this same unit),
// else the unit that had it first.
int ivl_cap_dups_add(ivl_cap_dups *d, const char *key, int unit);

#endif
