// caption_feed.c - see caption_feed.h.
#include "parallel/caption_feed.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/check.h"
#include "core/log.h"
#include "parallel/caption_dups.h"
#include "parallel/caption_utf8.h"

struct ivl_cap_feed {
    const ivl_cap_inputs *in;
    ivl_cap_unit_state *states;
    char *out_dir;
    ivl_preprocess_opts popt;
    int threads;
    int64_t max_member_bytes;
    ivl_image_pipeline *pipe;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_put, cv_get;
    ivl_cap_event *q;         // ring of cap events
    int cap, head, count;
    int stop;
    ivl_cap_event front;      // an unpopped event (front_set)
    int front_set;
    ivl_cap_dups keys;        // every key this run read, with its first unit (feeder thread)
    int64_t warned_across;    // warnings given for keys in two outputs (at most 20 a job)
};

void ivl_cap_event_free(ivl_cap_event *ev) {
    ivl_cap_item_free(&ev->item);
    ivl_image_result_free(&ev->img);
    free(ev->message);
    memset(ev, 0, sizeof *ev);
}

// Blocks while the queue is full. Returns 0, or -1 when stopping (the event is freed).
static int push(ivl_cap_feed *f, ivl_cap_event *ev) {
    pthread_mutex_lock(&f->mu);
    while (f->count == f->cap && !f->stop) pthread_cond_wait(&f->cv_put, &f->mu);
    if (f->stop) {
        pthread_mutex_unlock(&f->mu);
        ivl_cap_event_free(ev);
        return -1;
    }
    f->q[(f->head + f->count++) % f->cap] = *ev;
    pthread_cond_signal(&f->cv_get);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int stopping(ivl_cap_feed *f) {
    pthread_mutex_lock(&f->mu);
    int s = f->stop;
    pthread_mutex_unlock(&f->mu);
    return s;
}

// Moves the oldest decoded image out of the pipeline into the queue.
static int pull_one(ivl_cap_feed *f) {
    ivl_image_result r;
    if (ivl_image_pipeline_next(f->pipe, &r) != 0) return 0;
    ivl_cap_event *user = r.user;
    ivl_cap_event ev = *user;
    free(user);
    r.user = NULL;
    ev.img = r;
    return push(f, &ev);
}

typedef struct {
    ivl_keyset *done;
    ivl_keyset seen;
    int64_t skipped, dups, dups_across;
    const char *unit;
    int unit_idx;
    ivl_cap_dups *all;
    const ivl_cap_inputs *in;
    int64_t *warned_across;
} skip_ctx;

// Keys are compared as they are written (caption_utf8.h: escaped when not UTF-8).
static int skip_fn(void *vctx, const char *raw) {
    skip_ctx *c = vctx;
    int esc;
    char *key = ivl_cap_key_json(raw, &esc);
    int skip = 0;
    int first = ivl_cap_dups_add(c->all, key, c->unit_idx);   // another output had it first
    // A result file from before the escaping holds such a key as raw bytes: done as well.
    if (ivl_keyset_has(c->done, key) || (esc && ivl_keyset_has(c->done, raw))) {
        c->skipped++;
        skip = 1;
    } else if (!ivl_keyset_add(&c->seen, key)) {
        // One output file cannot hold a key twice: the first image is the key's result.
        if (c->dups++ < 5)
            LOG_WARN("%s: key '%s' appears twice in the input; only the first image is captioned",
                     c->unit, key);
        skip = 1;
    } else if (first >= 0) {
        // Two outputs may: the images may differ (keys that restart in every shard), so both
        // are captioned, each into its own output; the user learns of it here.
        c->dups_across++;
        if ((*c->warned_across)++ < 20)
            LOG_WARN("%s: key '%s' is also in output %s; it is captioned in both (keys are unique "
                     "per output file; join results on output and key)%s", c->unit, key,
                     c->in->units[first].name,
                     *c->warned_across == 20 ? "; more such keys are only counted in the summary" : "");
    }
    free(key);
    return skip;
}

static void *feed_main(void *arg) {
    ivl_cap_feed *f = arg;
    for (int u = 0; u < f->in->n && !stopping(f); u++) {
        const ivl_cap_unit *unit = &f->in->units[u];
        ivl_cap_unit_state *st = &f->states[u];
        int complete = 0;
        ivl_cap_event ev = {0};
        ev.unit = u;
        if (ivl_cap_out_open(f->out_dir, unit->name, &st->out, &complete) != 0) {
            ev.kind = IVL_CAP_EV_FATAL;
            ev.message = ivl_strdup(ivl_last_error());
            ivl_cap_out_close(&st->out);   // drops the unit's lock if it was taken
            push(f, &ev);
            break;
        }
        st->opened = 1;
        st->expected = -1;
        if (complete) {
            ev.kind = IVL_CAP_EV_UNIT_DONE;
            ev.count = st->out.lines;
            if (push(f, &ev) != 0) break;
            continue;
        }
        ivl_cap_reader *rd;
        if (ivl_cap_reader_open(unit, f->max_member_bytes, &rd) != 0) {
            ev.kind = IVL_CAP_EV_UNIT_FAILED;
            ev.message = ivl_strdup(ivl_last_error());
            if (push(f, &ev) != 0) break;
            continue;
        }
        skip_ctx sc = {&st->out.keys, {0}, 0, 0, 0, unit->name, u, &f->keys, f->in, &f->warned_across};
        ivl_keyset_init(&sc.seen);
        int64_t handed = 0;
        int rc = 0, stopped = 0;
        for (;;) {
            if (stopping(f)) { stopped = 1; break; }
            ivl_cap_event *iev = ivl_calloc(1, sizeof *iev);
            iev->kind = IVL_CAP_EV_IMAGE;
            iev->unit = u;
            rc = ivl_cap_reader_next(rd, &iev->item, skip_fn, &sc);
            if (rc <= 0) {
                free(iev);
                break;
            }
            handed++;
            if (iev->item.error) {
                ivl_cap_event e = *iev;
                free(iev);
                if (push(f, &e) != 0) { stopped = 1; break; }
                continue;
            }
            // Keep the pipeline full but never submit into a full one from this thread.
            while (ivl_image_pipeline_in_flight(f->pipe) >= ivl_image_pipeline_capacity(f->pipe))
                if (pull_one(f) != 0) { stopped = 1; break; }
            if (stopped) {
                ivl_cap_event_free(iev);
                free(iev);
                break;
            }
            ivl_image_source src = {iev->item.path, iev->item.data, iev->item.size,
                                    iev->item.source, iev->item.data != NULL};
            iev->item.data = NULL;   // the pipeline owns the bytes now
            if (ivl_image_pipeline_submit(f->pipe, &src, iev) < 0) {
                iev->item.error = ivl_strdup(ivl_last_error());
                ivl_cap_event e = *iev;
                free(iev);
                if (push(f, &e) != 0) { stopped = 1; break; }
            }
        }
        ivl_cap_reader_close(rd);
        ivl_keyset_free(&sc.seen);
        if (stopped) break;
        ev.skipped = sc.skipped;
        ev.dups = sc.dups;
        ev.dups_across = sc.dups_across;
        if (rc < 0) {
            ev.kind = IVL_CAP_EV_UNIT_FAILED;
            ev.message = ivl_strdup(ivl_last_error());
            ev.count = handed;
        } else {
            ev.kind = IVL_CAP_EV_SEALED;
            ev.count = handed;
        }
        if (push(f, &ev) != 0) break;
    }
    // Drain what is still decoding, then say there is nothing more.
    ivl_image_pipeline_close(f->pipe);
    while (!stopping(f) && ivl_image_pipeline_in_flight(f->pipe) > 0)
        if (pull_one(f) != 0) break;
    ivl_cap_event end = {0};
    end.kind = IVL_CAP_EV_END;
    push(f, &end);
    return NULL;
}

ivl_cap_feed *ivl_cap_feed_start(const ivl_cap_inputs *in, ivl_cap_unit_state *states,
                                 const char *out_dir, const ivl_preprocess_opts *popt,
                                 int threads, int queue, int64_t max_member_bytes) {
    ivl_cap_feed *f = ivl_calloc(1, sizeof *f);
    f->in = in;
    f->states = states;
    f->out_dir = ivl_strdup(out_dir);
    f->popt = *popt;
    f->threads = threads < 1 ? 1 : threads;
    f->max_member_bytes = max_member_bytes;
    f->cap = queue < 2 ? 2 : queue;
    f->q = ivl_calloc((size_t)f->cap, sizeof *f->q);
    ivl_cap_dups_init(&f->keys);
    f->pipe = ivl_image_pipeline_create(f->threads, 2 * f->threads, &f->popt);
    IVL_CHECK(f->pipe, "image pipeline: %s", ivl_last_error());
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv_put, NULL);
    pthread_cond_init(&f->cv_get, NULL);
    IVL_CHECK(pthread_create(&f->thread, NULL, feed_main, f) == 0, "cannot start the input thread");
    return f;
}

int ivl_cap_feed_pop(ivl_cap_feed *f, ivl_cap_event *ev, int timeout_ms) {
    pthread_mutex_lock(&f->mu);
    if (f->front_set) {
        *ev = f->front;
        f->front_set = 0;
        pthread_mutex_unlock(&f->mu);
        return 1;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ms > 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
    }
    while (f->count == 0) {
        if (timeout_ms == 0) break;
        if (timeout_ms < 0) pthread_cond_wait(&f->cv_get, &f->mu);
        else if (pthread_cond_timedwait(&f->cv_get, &f->mu, &until) == ETIMEDOUT) break;
    }
    if (f->count == 0) {
        pthread_mutex_unlock(&f->mu);
        return 0;
    }
    *ev = f->q[f->head];
    f->head = (f->head + 1) % f->cap;
    f->count--;
    pthread_cond_signal(&f->cv_put);
    pthread_mutex_unlock(&f->mu);
    return 1;
}

void ivl_cap_feed_unpop(ivl_cap_feed *f, ivl_cap_event *ev) {
    pthread_mutex_lock(&f->mu);
    IVL_ASSERT(!f->front_set);
    f->front = *ev;
    f->front_set = 1;
    pthread_mutex_unlock(&f->mu);
}

void ivl_cap_feed_stop(ivl_cap_feed *f) {
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_broadcast(&f->cv_put);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    while (f->count > 0) {
        ivl_cap_event_free(&f->q[f->head]);
        f->head = (f->head + 1) % f->cap;
        f->count--;
    }
    if (f->front_set) ivl_cap_event_free(&f->front);
    // Images still in the pipeline carry their event as `user`: free those too.
    ivl_image_pipeline_close(f->pipe);
    ivl_image_result r;
    while (ivl_image_pipeline_in_flight(f->pipe) > 0 && ivl_image_pipeline_next(f->pipe, &r) == 0) {
        ivl_cap_event *u = r.user;
        if (u) { ivl_cap_event_free(u); free(u); }
        ivl_image_result_free(&r);
    }
    ivl_image_pipeline_free(f->pipe);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv_put);
    pthread_cond_destroy(&f->cv_get);
    free(f->q);
    ivl_cap_dups_free(&f->keys);
    free(f->out_dir);
    free(f);
}
