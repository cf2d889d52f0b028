// kv.c - see kv.h.
#include "parallel/kv.h"
#include "core/check.h"

#include <stdlib.h>
#include <string.h>

struct ivl_kv_blocks {
    int64_t n;
    int bs;
    int32_t *refs;
    uint64_t *key;
    uint8_t *keyed;
    int32_t *free_stack;       // LIFO: a block just released is reused first (warm memory)
    int64_t nfree;
    int32_t *prev, *next;      // LRU list of cached blocks (head = oldest)
    int32_t lru_head, lru_tail;
    int64_t ncached, nused;
    // Open addressing (linear probing) key -> block; -1 empty.
    int32_t *tab;
    uint64_t mask;
};

uint64_t ivl_kv_chain_key(uint64_t prev, const uint64_t *tok_keys, int n) {
    uint64_t h = ivl_hash64(prev);
    for (int i = 0; i < n; i++) h = ivl_hash64(h ^ (tok_keys[i] + 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)));
    return h ? h : 1;
}

ivl_kv_blocks *ivl_kv_blocks_new(int64_t n_blocks, int block_size) {
    IVL_CHECK(n_blocks >= 1 && n_blocks < INT32_MAX && block_size >= 1,
              "KV pool of %lld blocks of %d positions", (long long)n_blocks, block_size);
    ivl_kv_blocks *kb = ivl_calloc(1, sizeof *kb);
    kb->n = n_blocks;
    kb->bs = block_size;
    kb->refs = ivl_calloc((size_t)n_blocks, sizeof *kb->refs);
    kb->key = ivl_calloc((size_t)n_blocks, sizeof *kb->key);
    kb->keyed = ivl_calloc((size_t)n_blocks, 1);
    kb->free_stack = ivl_malloc((size_t)n_blocks * sizeof *kb->free_stack);
    kb->prev = ivl_malloc((size_t)n_blocks * sizeof *kb->prev);
    kb->next = ivl_malloc((size_t)n_blocks * sizeof *kb->next);
    // Block 0 on top of the stack: allocations walk the pool from its start.
    for (int64_t i = 0; i < n_blocks; i++) kb->free_stack[i] = (int32_t)(n_blocks - 1 - i);
    kb->nfree = n_blocks;
    kb->lru_head = kb->lru_tail = -1;
    uint64_t cap = 16;
    while (cap < (uint64_t)n_blocks * 2) cap <<= 1;
    kb->tab = ivl_malloc((size_t)cap * sizeof *kb->tab);
    memset(kb->tab, 0xff, (size_t)cap * sizeof *kb->tab);
    kb->mask = cap - 1;
    return kb;
}

void ivl_kv_blocks_free(ivl_kv_blocks *kb) {
    if (!kb) return;
    free(kb->refs); free(kb->key); free(kb->keyed); free(kb->free_stack);
    free(kb->prev); free(kb->next); free(kb->tab);
    free(kb);
}

int64_t ivl_kv_blocks_total(const ivl_kv_blocks *kb) { return kb->n; }
int ivl_kv_blocks_size(const ivl_kv_blocks *kb) { return kb->bs; }
int64_t ivl_kv_blocks_available(const ivl_kv_blocks *kb) { return kb->nfree + kb->ncached; }
int64_t ivl_kv_blocks_used(const ivl_kv_blocks *kb) { return kb->nused; }
int64_t ivl_kv_blocks_cached(const ivl_kv_blocks *kb) { return kb->ncached; }
int ivl_kv_block_refs(const ivl_kv_blocks *kb, int32_t b) { return kb->refs[b]; }

// ---- key table ----

static uint64_t slot_of(const ivl_kv_blocks *kb, uint64_t key) { return ivl_hash64(key) & kb->mask; }

static int32_t tab_find(const ivl_kv_blocks *kb, uint64_t key) {
    for (uint64_t i = slot_of(kb, key);; i = (i + 1) & kb->mask) {
        int32_t b = kb->tab[i];
        if (b < 0) return -1;
        if (kb->key[b] == key) return b;
    }
}

static void tab_insert(ivl_kv_blocks *kb, int32_t b) {
    uint64_t i = slot_of(kb, kb->key[b]);
    while (kb->tab[i] >= 0) i = (i + 1) & kb->mask;
    kb->tab[i] = b;
}

// Removal with backward shift (no tombstones), Knuth 6.4 algorithm R.
static void tab_remove(ivl_kv_blocks *kb, int32_t b) {
    uint64_t i = slot_of(kb, kb->key[b]);
    while (kb->tab[i] != b) {
        IVL_ASSERT(kb->tab[i] >= 0);
        i = (i + 1) & kb->mask;
    }
    kb->tab[i] = -1;
    for (uint64_t j = (i + 1) & kb->mask; kb->tab[j] >= 0; j = (j + 1) & kb->mask) {
        uint64_t home = slot_of(kb, kb->key[kb->tab[j]]);
        // Move tab[j] into the hole at i unless its home lies cyclically in (i, j].
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            kb->tab[i] = kb->tab[j];
            kb->tab[j] = -1;
            i = j;
        }
    }
}

// ---- LRU of cached blocks ----

static void lru_unlink(ivl_kv_blocks *kb, int32_t b) {
    if (kb->prev[b] >= 0) kb->next[kb->prev[b]] = kb->next[b];
    else kb->lru_head = kb->next[b];
    if (kb->next[b] >= 0) kb->prev[kb->next[b]] = kb->prev[b];
    else kb->lru_tail = kb->prev[b];
    kb->ncached--;
}

static void lru_push(ivl_kv_blocks *kb, int32_t b) {
    kb->prev[b] = kb->lru_tail;
    kb->next[b] = -1;
    if (kb->lru_tail >= 0) kb->next[kb->lru_tail] = b;
    else kb->lru_head = b;
    kb->lru_tail = b;
    kb->ncached++;
}

static void unkey(ivl_kv_blocks *kb, int32_t b) {
    if (!kb->keyed[b]) return;
    tab_remove(kb, b);
    kb->keyed[b] = 0;
    kb->key[b] = 0;
}

int32_t ivl_kv_block_alloc(ivl_kv_blocks *kb) {
    int32_t b;
    if (kb->nfree > 0) {
        b = kb->free_stack[--kb->nfree];
    } else if (kb->lru_head >= 0) {   // evict the least recently released cached block
        b = kb->lru_head;
        lru_unlink(kb, b);
        unkey(kb, b);
    } else {
        return -1;
    }
    kb->refs[b] = 1;
    kb->nused++;
    return b;
}

void ivl_kv_block_release(ivl_kv_blocks *kb, int32_t b) {
    IVL_CHECK(b >= 0 && b < kb->n && kb->refs[b] > 0, "KV block %d released without a reference", b);
    if (--kb->refs[b] > 0) return;
    kb->nused--;
    if (kb->keyed[b]) lru_push(kb, b);
    else kb->free_stack[kb->nfree++] = b;
}

int32_t ivl_kv_block_lookup(ivl_kv_blocks *kb, uint64_t key) {
    int32_t b = tab_find(kb, key);
    if (b < 0) return -1;
    if (kb->refs[b] == 0) {
        lru_unlink(kb, b);
        kb->nused++;
    }
    kb->refs[b]++;
    return b;
}

void ivl_kv_block_publish(ivl_kv_blocks *kb, int32_t b, uint64_t key) {
    IVL_CHECK(b >= 0 && b < kb->n && kb->refs[b] > 0, "KV block %d published without a reference", b);
    if (kb->keyed[b] || tab_find(kb, key) >= 0) return;
    kb->key[b] = key;
    kb->keyed[b] = 1;
    tab_insert(kb, b);
}

void ivl_kv_blocks_drop_cache(ivl_kv_blocks *kb) {
    while (kb->lru_head >= 0) {
        int32_t b = kb->lru_head;
        lru_unlink(kb, b);
        unkey(kb, b);
        kb->free_stack[kb->nfree++] = b;
    }
    for (int64_t b = 0; b < kb->n; b++) unkey(kb, (int32_t)b);
}
