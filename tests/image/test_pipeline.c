// test_pipeline.c - the threaded image pipeline gives, in submission order, exactly what
// the sequential ivl_image_load + ivl_image_preprocess give, for files and memory buffers,
// with bad inputs mixed in; f32 and bf16; one thread interleaving submit/next and a
// separate producer thread blocking on a full ring; freeing with results never pulled.
// usage: test_pipeline IMAGE...
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/image/image.h"

static int failures;
#define EXPECT(cond, ...)                                                   \
    do {                                                                    \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                     \
            printf(__VA_ARGS__);                                            \
            printf("\n");                                                   \
        }                                                                   \
    } while (0)

typedef struct {
    const char *path;       // NULL for an in-memory bad input
    const char *bad_data;   // bytes of a bad input
    size_t bad_size;
    int expect_status;      // for bad inputs
    ivl_tile_grid grid;     // reference, for good ones
    float *ref;
} item;

static void *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    IVL_CHECK(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = ivl_malloc(*n);
    IVL_CHECK(fread(b, 1, *n, f) == *n, "cannot read %s", path);
    fclose(f);
    return b;
}

// Source for item k of round r: good items alternate path / copied buffer / owned buffer.
static ivl_image_source source_of(const item *it, int k) {
    ivl_image_source s = {0};
    if (!it->path) {
        s.data = it->bad_data;
        s.size = it->bad_size;
        s.name = "bad-buffer";
        return s;
    }
    switch (k % 3) {
    case 0: s.path = it->path; break;
    case 1: s.data = read_all(it->path, &s.size); s.name = it->path; s.take_data = 1; break;
    default: s.path = it->path; s.name = "renamed-for-messages"; break;
    }
    return s;
}

static void check_result(const item *items, int n, const ivl_image_result *r, int64_t want_index,
                         ivl_dtype dt) {
    EXPECT(r->index == want_index, "result index %lld, expected %lld", (long long)r->index,
           (long long)want_index);
    const item *it = &items[r->index % n];
    EXPECT(r->user == (void *)it, "user pointer of %lld lost", (long long)r->index);
    if (!it->path) {
        EXPECT(r->status == it->expect_status && r->pixels == NULL && r->error[0],
               "bad input %lld: status %d (%s), want %d", (long long)r->index, r->status,
               r->error, it->expect_status);
        return;
    }
    EXPECT(r->status == 0, "%s: status %d: %s", it->path, r->status, r->error);
    if (r->status) return;
    EXPECT(r->grid.cols == it->grid.cols && r->grid.rows == it->grid.rows &&
               r->grid.ntiles == it->grid.ntiles, "%s: grid differs", it->path);
    size_t numel = (size_t)it->grid.ntiles * 3 * 448 * 448;
    if (dt == IVL_F32) {
        EXPECT(!memcmp(r->pixels, it->ref, numel * 4), "%s: f32 pixels differ", it->path);
    } else {
        const uint16_t *b = r->pixels;
        size_t bad = 0;
        for (size_t i = 0; i < numel; i++) bad += b[i] != ivl_f32_to_bf16(it->ref[i]);
        EXPECT(bad == 0, "%s: %zu bf16 values differ", it->path, bad);
    }
}

// One thread: keep the ring full, pull when it is.
static void run_interleaved(item *items, int n, int rounds, int threads, int cap, ivl_dtype dt) {
    ivl_preprocess_opts o = ivl_preprocess_defaults();
    o.dtype = dt;
    ivl_image_pipeline *p = ivl_image_pipeline_create(threads, cap, &o);
    IVL_CHECK(p, "%s", ivl_last_error());
    int total = n * rounds, sub = 0;
    int64_t want = 0;
    ivl_image_result r;
    while (want < total) {
        if (sub < total && ivl_image_pipeline_in_flight(p) < cap) {
            ivl_image_source s = source_of(&items[sub % n], sub);
            int64_t idx = ivl_image_pipeline_submit(p, &s, &items[sub % n]);
            EXPECT(idx == sub, "submit returned %lld for %d", (long long)idx, sub);
            sub++;
            if (sub == total) ivl_image_pipeline_close(p);
            continue;
        }
        IVL_CHECK(ivl_image_pipeline_next(p, &r) == 0, "pipeline ended early");
        check_result(items, n, &r, want++, dt);
        ivl_image_result_free(&r);
    }
    EXPECT(ivl_image_pipeline_next(p, &r) == 1, "next() after the last result must return 1");
    ivl_image_source s = {.path = items[0].path};
    EXPECT(ivl_image_pipeline_submit(p, &s, NULL) == -1, "submit after close must fail");
    ivl_image_pipeline_free(p);
}

typedef struct {
    ivl_image_pipeline *p;
    item *items;
    int n, total;
} producer_arg;

static void *producer(void *v) {
    producer_arg *a = v;
    for (int k = 0; k < a->total; k++) {
        ivl_image_source s = source_of(&a->items[k % a->n], k);
        ivl_image_pipeline_submit(a->p, &s, &a->items[k % a->n]);   // blocks when full
    }
    ivl_image_pipeline_close(a->p);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_pipeline IMAGE...\n");
        return 2;
    }
    int ngood = argc - 1, n = ngood + 3;
    item *items = ivl_calloc((size_t)n, sizeof *items);
    for (int i = 0; i < ngood; i++) {
        items[i].path = argv[i + 1];
        ivl_image img;
        IVL_CHECK(ivl_image_load(argv[i + 1], 0, &img) == 0, "%s", ivl_last_error());
        void *px;
        IVL_CHECK(ivl_image_preprocess(&img, NULL, &items[i].grid, &px) == 0, "%s", ivl_last_error());
        items[i].ref = px;
        ivl_image_free(&img);
    }
    // bad inputs in between the good ones (order matters: errors must not shift results)
    items[ngood] = (item){.bad_data = "not an image at all", .bad_size = 19,
                          .expect_status = IVL_IMAGE_E_NOT_IMAGE};
    items[ngood + 1] = (item){.bad_data = "", .bad_size = 0, .expect_status = IVL_IMAGE_E_EMPTY};
    items[ngood + 2] = (item){.bad_data = "\xff\xd8\xff\xe0\x00\x10JFIF", .bad_size = 10,
                              .expect_status = IVL_IMAGE_E_TRUNCATED};

    run_interleaved(items, n, 2, 3, 2, IVL_F32);
    run_interleaved(items, n, 1, 1, 1, IVL_F32);
    run_interleaved(items, n, 1, 2, 5, IVL_BF16);

    // separate producer thread, capacity 1: submit blocks until the consumer pulls
    ivl_image_pipeline *p = ivl_image_pipeline_create(2, 1, NULL);
    producer_arg a = {p, items, n, 2 * n};
    pthread_t th;
    pthread_create(&th, NULL, producer, &a);
    ivl_image_result r;
    int64_t want = 0;
    while (ivl_image_pipeline_next(p, &r) == 0) {
        check_result(items, n, &r, want++, IVL_F32);
        ivl_image_result_free(&r);
    }
    pthread_join(th, NULL);
    EXPECT(want == 2 * n, "producer/consumer: %lld results for %d images", (long long)want, 2 * n);
    ivl_image_pipeline_free(p);

    // free with results still inside (leaks show under ASan/valgrind)
    p = ivl_image_pipeline_create(2, 4, NULL);
    for (int k = 0; k < 4; k++) {
        ivl_image_source s = source_of(&items[k % n], k);
        ivl_image_pipeline_submit(p, &s, NULL);
    }
    ivl_image_pipeline_free(p);

    // bad options
    ivl_preprocess_opts bad = ivl_preprocess_defaults();
    bad.max_tiles = 0;
    EXPECT(ivl_image_pipeline_create(1, 1, &bad) == NULL, "max_tiles 0 must be refused");
    EXPECT(ivl_image_pipeline_create(0, 1, NULL) == NULL, "0 threads must be refused");

    for (int i = 0; i < n; i++) free(items[i].ref);
    free(items);
    printf("%s: %d images x several runs\n", failures ? "FAILED" : "OK", n);
    return failures ? 1 : 0;
}
