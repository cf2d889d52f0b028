// kv.h - the paged KV cache's bookkeeping (the tensors are core/models/llm.h ivl_kv_cache):
// which blocks are free, who references each block, and which full blocks hold a known
// prefix so that a later sequence with the same prefix takes them instead of recomputing.
//
// Blocks have three states: referenced (refs > 0, by one sequence or several sharing a
// prefix), cached (refs == 0 but holding a published prefix: reusable until evicted, least
// recently released first), free. An allocation takes a free block, else evicts the oldest
// cached one. Host-side only, no backend and no MPI: every rank keeps an identical copy by
// making the same calls in the same order (parallel/scheduler.h).
#ifndef IVL_PARALLEL_KV_H
#define IVL_PARALLEL_KV_H

#include <stdint.h>

typedef struct ivl_kv_blocks ivl_kv_blocks;

ivl_kv_blocks *ivl_kv_blocks_new(int64_t n_blocks, int block_size);
void ivl_kv_blocks_free(ivl_kv_blocks *kb);

int64_t ivl_kv_blocks_total(const ivl_kv_blocks *kb);
int ivl_kv_blocks_size(const ivl_kv_blocks *kb);            // positions per block
// Blocks an allocation can get now: free + cached (evictable).
int64_t ivl_kv_blocks_available(const ivl_kv_blocks *kb);
// Blocks referenced by at least one sequence.
int64_t ivl_kv_blocks_used(const ivl_kv_blocks *kb);
// Blocks held only by the prefix cache (refs 0, reusable).
int64_t ivl_kv_blocks_cached(const ivl_kv_blocks *kb);

// A block with one reference, or -1 when none is available.
int32_t ivl_kv_block_alloc(ivl_kv_blocks *kb);
// Drops one reference; at zero the block becomes cached (if published) or free.
void ivl_kv_block_release(ivl_kv_blocks *kb, int32_t b);
int ivl_kv_block_refs(const ivl_kv_blocks *kb, int32_t b);

// The block published under `key` with one more reference (taken out of the cache if it was
// there), or -1.
int32_t ivl_kv_block_lookup(ivl_kv_blocks *kb, uint64_t key);
// Publishes a full, referenced block under `key` (the hash of its whole prefix). No-op when
// the key is already published (by another block) or the block already has a key.
void ivl_kv_block_publish(ivl_kv_blocks *kb, int32_t b, uint64_t key);
// Forgets every published key (cached blocks become free).
void ivl_kv_blocks_drop_cache(ivl_kv_blocks *kb);

// splitmix64's finaliser (after adding the golden-ratio step): the mixer of every key here.
static inline uint64_t ivl_hash64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// The key of a block: the previous block's key chained with the block's token keys.
uint64_t ivl_kv_chain_key(uint64_t prev, const uint64_t *tok_keys, int n);

#endif
