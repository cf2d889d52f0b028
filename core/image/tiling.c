// tiling.c - the tile grid of InternVL's dynamic_preprocess (spec 7.1).
//
// The reference builds its candidate grids as a Python set of (i, j) tuples and sorts them
// by i*j with a stable sort, so grids with the same product keep the set's iteration order,
// which is the order of CPython's hash table slots. That order decides exact aspect-ratio
// ties (e.g. (1,2) vs (2,1) are never tied, but (2,4) vs (1,2) are, and which one is
// tried later matters through the area rule). Rather than embed lists for a few max_num
// values, we replay CPython's algorithm: the tuple hash (xxHash-style, CPython >= 3.8,
// Objects/tupleobject.c) over small-int hashes (hash(n) == n), and set insertion (open
// addressing: 9 linear probes, then perturbed jumps i = 5i + 1 + perturb; the table grows
// to the next power of two above 4*used when fill*5 >= mask*3, re-inserting in slot order;
// Objects/setobject.c). tests/image checks the result against real CPython interpreters
// for every 1 <= min_num <= max_num <= 40.
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/image/image.h"

#define XXPRIME_1 11400714785074694791ULL
#define XXPRIME_2 14029467366897019727ULL
#define XXPRIME_5 2870177450012600261ULL
#define SET_MINSIZE 8
#define LINEAR_PROBES 9
#define PERTURB_SHIFT 5

// hash((a, b)) for small non-negative ints, as a 64-bit CPython Py_hash_t.
static uint64_t py_pair_hash(uint64_t a, uint64_t b) {
    uint64_t acc = XXPRIME_5, lanes[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        acc += lanes[k] * XXPRIME_2;
        acc = (acc << 31) | (acc >> 33);
        acc *= XXPRIME_1;
    }
    acc += 2 ^ (XXPRIME_5 ^ 3527539UL);
    if (acc == (uint64_t)-1) return 1546275796;
    return acc;
}

typedef struct {
    uint64_t hash;
    int used;
    ivl_tile_ratio key;
} py_slot;

typedef struct {
    py_slot *table;
    size_t mask, fill;
} py_set;

// set_insert_clean: placement of a key known to be absent, into a table without dummies.
static void set_insert_clean(py_slot *table, size_t mask, py_slot e) {
    size_t perturb = e.hash, i = e.hash & mask;
    for (;;) {
        if (!table[i].used) goto found;
        if (i + LINEAR_PROBES <= mask) {
            for (size_t j = 1; j <= LINEAR_PROBES; j++)
                if (!table[i + j].used) { i += j; goto found; }
        }
        perturb >>= PERTURB_SHIFT;
        i = (i * 5 + 1 + perturb) & mask;
    }
found:
    table[i] = e;
}

static void set_resize(py_set *s, size_t minused) {
    size_t newsize = SET_MINSIZE;
    while (newsize <= minused) newsize <<= 1;
    py_slot *nt = ivl_calloc(newsize, sizeof *nt);
    for (size_t k = 0; k <= s->mask; k++)
        if (s->table[k].used) set_insert_clean(nt, newsize - 1, s->table[k]);
    free(s->table);
    s->table = nt;
    s->mask = newsize - 1;
}

// set_add_entry (no deletions ever happen, so there are no dummy slots).
static void set_add(py_set *s, int i, int j) {
    uint64_t hash = py_pair_hash((uint64_t)i, (uint64_t)j);
    size_t perturb = hash, idx = hash & s->mask;
    py_slot *slot;
    for (;;) {
        size_t probes = (idx + LINEAR_PROBES <= s->mask) ? LINEAR_PROBES : 0;
        slot = &s->table[idx];
        for (;;) {
            if (!slot->used) goto unused;
            if (slot->hash == hash && slot->key.cols == i && slot->key.rows == j) return;
            if (probes-- == 0) break;
            slot++;
        }
        perturb >>= PERTURB_SHIFT;
        idx = (idx * 5 + 1 + perturb) & s->mask;
    }
unused:
    slot->used = 1;
    slot->hash = hash;
    slot->key.cols = i;
    slot->key.rows = j;
    s->fill++;
    if (s->fill * 5 < s->mask * 3) return;
    set_resize(s, s->fill > 50000 ? s->fill * 2 : s->fill * 4);
}

int ivl_tile_candidates(int min_num, int max_num, ivl_tile_ratio *out, int cap) {
    if (min_num < 1 || max_num < min_num || max_num > IVL_TILE_MAX_NUM)
        return ivl_errorf("tile candidates: need 1 <= min_num (%d) <= max_num (%d) <= %d",
                          min_num, max_num, IVL_TILE_MAX_NUM);
    py_set s = {ivl_calloc(SET_MINSIZE, sizeof(py_slot)), SET_MINSIZE - 1, 0};
    // The reference's generator, in its order (duplicates are no-ops in a set).
    for (int n = min_num; n <= max_num; n++)
        for (int i = 1; i <= n; i++)
            for (int j = 1; j <= n; j++)
                if (i * j <= max_num && i * j >= min_num) set_add(&s, i, j);
    // Iterate slots, then a stable sort by i*j (insertion sort: n is a few hundred at most).
    int n = 0;
    ivl_tile_ratio *list = ivl_malloc(sizeof *list * (s.fill ? s.fill : 1));
    for (size_t k = 0; k <= s.mask; k++)
        if (s.table[k].used) list[n++] = s.table[k].key;
    for (int a = 1; a < n; a++) {
        ivl_tile_ratio e = list[a];
        int key = e.cols * e.rows, b = a - 1;
        while (b >= 0 && list[b].cols * list[b].rows > key) {
            list[b + 1] = list[b];
            b--;
        }
        list[b + 1] = e;
    }
    for (int k = 0; k < n && k < cap; k++) out[k] = list[k];
    free(list);
    free(s.table);
    return n;
}

int ivl_tile_grid_select(int width, int height, int min_num, int max_num, int image_size,
                         int use_thumbnail, ivl_tile_grid *out) {
    if (width < 1 || height < 1 || image_size < 1 || !out)
        return ivl_errorf("tile grid: bad image size %dx%d or tile size %d", width, height,
                          image_size);
    ivl_tile_ratio cand[4096];
    int n = ivl_tile_candidates(min_num, max_num, cand, 4096);
    if (n < 0) return -1;
    if (n > 4096) return ivl_errorf("tile grid: too many candidates (%d)", n);
    // find_closest_aspect_ratio, operation for operation (Python floats are doubles; the
    // int area compared with a float is exact in both languages for these magnitudes).
    double aspect = (double)width / (double)height;
    double best_diff = __builtin_inf();
    ivl_tile_ratio best = {1, 1};
    double area = (double)width * (double)height;
    for (int k = 0; k < n; k++) {
        double target = (double)cand[k].cols / (double)cand[k].rows;
        double diff = __builtin_fabs(aspect - target);
        if (diff < best_diff) {
            best_diff = diff;
            best = cand[k];
        } else if (diff == best_diff) {
            if (area > 0.5 * image_size * image_size * cand[k].cols * cand[k].rows) best = cand[k];
        }
    }
    out->cols = best.cols;
    out->rows = best.rows;
    out->thumbnail = (use_thumbnail && best.cols * best.rows != 1) ? 1 : 0;
    out->ntiles = best.cols * best.rows + out->thumbnail;
    return 0;
}
