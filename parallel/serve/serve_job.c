// serve_job.c - see serve_job.h.
#include "parallel/serve/serve_job.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/check.h"

double ivl_serve_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void deadline_in(struct timespec *ts, double s) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    double t = (double)ts->tv_sec + 1e-9 * (double)ts->tv_nsec + (s > 0 ? s : 0);
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - floor(t)) * 1e9);
}

static void cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

ivl_serve_job *ivl_serve_job_new(void) {
    ivl_serve_job *j = ivl_calloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    cond_init_monotonic(&j->cv);
    atomic_init(&j->cancel, 0);
    j->refs = 1;
    return j;
}

void ivl_serve_job_ref(ivl_serve_job *j) {
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
}

void ivl_serve_job_unref(ivl_serve_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    free(j->ids);
    free(j->pixels);
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->text);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

// Bytes from the end of text that could still be the start of a stop string; the ready
// boundary is then moved back to a UTF-8 character start.
static size_t ready_len(const ivl_serve_job *j) {
    size_t hold = 0;
    for (int s = 0; s < j->n_stop; s++) {
        size_t sl = strlen(j->stop[s]);
        for (size_t k = sl - 1; k > hold; k--)   // longest proper prefix that ends the text
            if (k <= j->len && !memcmp(j->text + j->len - k, j->stop[s], k)) {
                hold = k;
                break;
            }
    }
    size_t r = j->len - hold;
    while (r > 0 && r < j->len && ((unsigned char)j->text[r] & 0xC0) == 0x80) r--;
    return r;
}

int ivl_serve_job_append(ivl_serve_job *j, const char *piece, size_t n) {
    pthread_mutex_lock(&j->mu);
    if (j->len + n + 1 > j->cap) {
        j->cap = (j->len + n + 1) * 2;
        j->text = ivl_realloc(j->text, j->cap);
    }
    memcpy(j->text + j->len, piece, n);
    j->len += n;
    j->text[j->len] = 0;
    int stopped = 0;
    for (int s = 0; s < j->n_stop; s++) {
        // Only where the new piece could have completed it.
        size_t sl = strlen(j->stop[s]);
        size_t from = j->len >= n + sl ? j->len - n - sl + 1 : 0;
        char *hit = strstr(j->text + from, j->stop[s]);
        if (hit && (!stopped || (size_t)(hit - j->text) < j->len)) {
            j->len = (size_t)(hit - j->text);
            j->text[j->len] = 0;
            stopped = 1;
        }
    }
    j->ready = stopped ? j->len : ready_len(j);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return stopped;
}

void ivl_serve_job_token(ivl_serve_job *j, double now) {
    pthread_mutex_lock(&j->mu);
    if (!j->n_gen) j->t_first = now;
    j->n_gen++;
    pthread_mutex_unlock(&j->mu);
}

void ivl_serve_job_finish(ivl_serve_job *j, const char *reason) {
    pthread_mutex_lock(&j->mu);
    j->ready = j->len;
    j->done = 1;
    j->finish_reason = reason;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

size_t ivl_serve_job_wait(ivl_serve_job *j, size_t have, double timeout_s, int *done) {
    struct timespec ts;
    deadline_in(&ts, timeout_s);
    pthread_mutex_lock(&j->mu);
    while (!j->done && j->ready <= have)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) == ETIMEDOUT) break;
    size_t r = j->ready;
    *done = j->done;
    pthread_mutex_unlock(&j->mu);
    return r;
}

void ivl_serve_queue_init(ivl_serve_queue *q, int cap) {
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    cond_init_monotonic(&q->cv);
    q->cap = cap > 0 ? cap : 1;
    q->items = ivl_calloc((size_t)q->cap, sizeof *q->items);
}

void ivl_serve_queue_free(ivl_serve_queue *q) {
    for (int i = 0; i < q->n; i++) ivl_serve_job_unref(q->items[(q->head + i) % q->cap]);
    free(q->items);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

int ivl_serve_queue_push(ivl_serve_queue *q, ivl_serve_job *j) {
    pthread_mutex_lock(&q->mu);
    int rc = q->closed ? -2 : q->n == q->cap ? -1 : 0;
    if (rc == 0) {
        ivl_serve_job_ref(j);
        q->items[(q->head + q->n) % q->cap] = j;
        q->n++;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

ivl_serve_job *ivl_serve_queue_pop(ivl_serve_queue *q, double timeout_s) {
    struct timespec ts;
    deadline_in(&ts, timeout_s);
    pthread_mutex_lock(&q->mu);
    while (q->n == 0)
        if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT) break;
    ivl_serve_job *j = NULL;
    if (q->n) {
        j = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
    }
    pthread_mutex_unlock(&q->mu);
    return j;
}

ivl_serve_job *ivl_serve_queue_peek(ivl_serve_queue *q, double timeout_s) {
    struct timespec ts;
    deadline_in(&ts, timeout_s);
    pthread_mutex_lock(&q->mu);
    while (q->n == 0)
        if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT) break;
    ivl_serve_job *j = q->n ? q->items[q->head] : NULL;
    pthread_mutex_unlock(&q->mu);
    return j;
}

int ivl_serve_queue_take_if(ivl_serve_queue *q, int (*match)(void *ctx, ivl_serve_job *j),
                            void *ctx, ivl_serve_job **out, int max) {
    pthread_mutex_lock(&q->mu);
    int taken = 0, kept = 0;
    for (int i = 0; i < q->n; i++) {
        ivl_serve_job *j = q->items[(q->head + i) % q->cap];
        if (taken < max && match(ctx, j)) out[taken++] = j;
        else q->items[(q->head + kept++) % q->cap] = j;
    }
    q->n = kept;
    pthread_mutex_unlock(&q->mu);
    return taken;
}

int ivl_serve_queue_len(ivl_serve_queue *q) {
    pthread_mutex_lock(&q->mu);
    int n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void ivl_serve_queue_close(ivl_serve_queue *q) {
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}
