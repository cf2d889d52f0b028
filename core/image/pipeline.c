// pipeline.c - decode + preprocess images on worker threads, results in submission order.
//
// A ring of `capacity` slots. submit() fills slot (index % capacity) and waits while the
// ring is full (capacity images submitted but not pulled), which bounds memory. Workers
// take queued slots in index order, so the oldest image is always the next to start and
// the consumer never waits behind work that was started later. next() waits for the
// oldest slot to be done and moves its result out.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/check.h"
#include "core/image/image.h"

enum { SLOT_FREE = 0, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE };

typedef struct {
    int state;
    char *path;           // owned
    void *data;           // owned
    size_t size;
    char *name;           // owned
    ivl_image_result res;
} slot_t;

struct ivl_image_pipeline {
    pthread_mutex_t mu;
    pthread_cond_t cv_work;     // workers: a slot was queued, or stopping
    pthread_cond_t cv_done;     // consumer: a slot finished
    pthread_cond_t cv_space;    // producer: a slot was pulled
    pthread_t *threads;
    int nthreads, capacity;
    slot_t *slots;
    int64_t submitted, started, consumed;
    int closed, stopping;
    ivl_preprocess_opts opts;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void process(ivl_image_pipeline *p, slot_t *s) {
    ivl_image_result *r = &s->res;
    ivl_image img;
    double t0 = now_s();
    int st = s->path ? ivl_image_load_ex(s->path, p->opts.max_pixels, p->opts.max_file_bytes,
                                         p->opts.exif_transpose, &img)
                     : ivl_image_decode_oriented(s->data, s->size, s->name, p->opts.max_pixels,
                                                 p->opts.exif_transpose, &img);
    double t1 = now_s();
    r->decode_s = t1 - t0;
    r->dtype = p->opts.dtype;
    if (st != IVL_IMAGE_OK) {
        r->status = st;
        snprintf(r->error, sizeof r->error, "%s", ivl_last_error());
        return;
    }
    r->width = img.width;
    r->height = img.height;
    if (ivl_image_preprocess(&img, &p->opts, &r->grid, &r->pixels)) {
        r->status = -1;
        snprintf(r->error, sizeof r->error, "%s: %s", s->name, ivl_last_error());
    }
    r->preprocess_s = now_s() - t1;
    ivl_image_free(&img);
}

static void slot_release_input(slot_t *s) {
    free(s->path);
    free(s->data);
    free(s->name);
    s->path = s->name = NULL;
    s->data = NULL;
}

static void *worker(void *arg) {
    ivl_image_pipeline *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && p->started == p->submitted) pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->started == p->submitted) break;       // stopping and nothing queued
        slot_t *s = &p->slots[p->started % p->capacity];
        p->started++;
        s->state = SLOT_RUNNING;
        pthread_mutex_unlock(&p->mu);
        process(p, s);
        pthread_mutex_lock(&p->mu);
        slot_release_input(s);
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

ivl_image_pipeline *ivl_image_pipeline_create(int nthreads, int capacity,
                                              const ivl_preprocess_opts *opts) {
    if (nthreads < 1 || nthreads > 1024 || capacity < 1 || capacity > 1 << 20) {
        ivl_errorf("image pipeline: need 1 <= threads (%d) <= 1024 and capacity (%d) >= 1",
                   nthreads, capacity);
        return NULL;
    }
    ivl_preprocess_opts o = opts ? *opts : ivl_preprocess_defaults();
    if (o.max_pixels <= 0) o.max_pixels = IVL_IMAGE_DEFAULT_MAX_PIXELS;
    ivl_tile_grid g;
    if (ivl_tile_grid_select(1, 1, o.min_tiles, o.max_tiles, o.image_size, 0, &g)) return NULL;
    if (o.dtype != IVL_F32 && o.dtype != IVL_BF16 && o.dtype != IVL_U8) {
        ivl_errorf("image pipeline: output dtype must be f32, bf16 or u8");
        return NULL;
    }
    ivl_image_pipeline *p = ivl_calloc(1, sizeof *p);
    p->opts = o;
    p->nthreads = nthreads;
    p->capacity = capacity;
    p->slots = ivl_calloc((size_t)capacity, sizeof *p->slots);
    p->threads = ivl_calloc((size_t)nthreads, sizeof *p->threads);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    pthread_cond_init(&p->cv_space, NULL);
    for (int i = 0; i < nthreads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker, p);
        IVL_CHECK(rc == 0, "image pipeline: cannot start worker thread %d (error %d)", i, rc);
    }
    return p;
}

int64_t ivl_image_pipeline_submit(ivl_image_pipeline *p, const ivl_image_source *src,
                                  void *user) {
    if (!src || (!src->path && (!src->data && src->size))) {
        ivl_errorf("image pipeline: a source needs a path or data");
        return -1;
    }
    // Copy the input before taking the lock.
    char *path = src->path ? ivl_strdup(src->path) : NULL;
    char *name = ivl_strdup(src->name ? src->name : src->path ? src->path : "<memory>");
    void *data = NULL;
    if (!src->path) {
        if (src->take_data) {
            data = (void *)src->data;
        } else {
            data = ivl_malloc(src->size ? src->size : 1);
            if (src->size) memcpy(data, src->data, src->size);
        }
    }
    pthread_mutex_lock(&p->mu);
    while (!p->closed && p->submitted - p->consumed >= p->capacity)
        pthread_cond_wait(&p->cv_space, &p->mu);
    if (p->closed) {
        pthread_mutex_unlock(&p->mu);
        free(path);
        free(name);
        free(data);
        ivl_errorf("image pipeline: submit after close");
        return -1;
    }
    int64_t idx = p->submitted;
    slot_t *s = &p->slots[idx % p->capacity];
    memset(s, 0, sizeof *s);
    s->path = path;
    s->name = name;
    s->data = data;
    s->size = src->size;
    s->res.index = idx;
    s->res.user = user;
    s->state = SLOT_QUEUED;
    p->submitted++;
    pthread_cond_signal(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    return idx;
}

int ivl_image_pipeline_next(ivl_image_pipeline *p, ivl_image_result *out) {
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->consumed < p->submitted) {
            slot_t *s = &p->slots[p->consumed % p->capacity];
            if (s->state == SLOT_DONE) {
                *out = s->res;
                memset(&s->res, 0, sizeof s->res);
                s->state = SLOT_FREE;
                p->consumed++;
                pthread_cond_signal(&p->cv_space);
                pthread_mutex_unlock(&p->mu);
                return 0;
            }
        } else if (p->closed) {
            pthread_mutex_unlock(&p->mu);
            memset(out, 0, sizeof *out);
            return 1;
        }
        pthread_cond_wait(&p->cv_done, &p->mu);
    }
}

int ivl_image_pipeline_in_flight(ivl_image_pipeline *p) {
    pthread_mutex_lock(&p->mu);
    int n = (int)(p->submitted - p->consumed);
    pthread_mutex_unlock(&p->mu);
    return n;
}

int ivl_image_pipeline_capacity(const ivl_image_pipeline *p) { return p->capacity; }

void ivl_image_pipeline_close(ivl_image_pipeline *p) {
    pthread_mutex_lock(&p->mu);
    p->closed = 1;
    pthread_cond_broadcast(&p->cv_space);
    pthread_cond_broadcast(&p->cv_done);      // a consumer waiting on an empty ring
    pthread_mutex_unlock(&p->mu);
}

void ivl_image_pipeline_free(ivl_image_pipeline *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->closed = 1;
    p->stopping = 1;
    // Queued images that no worker has started are dropped, not decoded.
    p->submitted = p->started;
    pthread_cond_broadcast(&p->cv_work);
    pthread_cond_broadcast(&p->cv_space);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    for (int i = 0; i < p->capacity; i++) {
        slot_release_input(&p->slots[i]);
        ivl_image_result_free(&p->slots[i].res);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    pthread_cond_destroy(&p->cv_space);
    free(p->slots);
    free(p->threads);
    free(p);
}

void ivl_image_result_free(ivl_image_result *r) {
    if (!r) return;
    free(r->pixels);
    r->pixels = NULL;
}
