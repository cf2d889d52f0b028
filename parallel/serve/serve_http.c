// serve_http.c - see serve_http.h.
#define _GNU_SOURCE
#include "parallel/serve/serve_http.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/check.h"
#include "core/log.h"

struct ivl_serve_http {
    ivl_serve_http_opts o;
    const ivl_serve_model *m;
    ivl_serve_queue *q;
    ivl_serve_metrics *metrics;
    struct MHD_Daemon *d;
    atomic_int draining;
    atomic_int active;   // chat requests being handled (streams until their response is freed)
};

// Per-connection request state: the body as it arrives.
typedef struct {
    char *body;
    size_t len, cap;
    int too_large;
    int answered;
} conn_state;

// ---- answers ----------------------------------------------------------------------------

static enum MHD_Result send_text(ivl_serve_http *h, struct MHD_Connection *c, int status,
                                 const char *ctype, char *text, int close_conn) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", ctype);
    if (close_conn) MHD_add_response_header(r, "Connection", "close");
    if (status == 429) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", h->o.retry_after_s);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    ivl_serve_metrics_status(h->metrics, status);
    return ok;
}

static enum MHD_Result send_error(ivl_serve_http *h, struct MHD_Connection *c,
                                  const ivl_serve_error *e, int close_conn) {
    return send_text(h, c, e->status, "application/json", ivl_serve_error_json(e), close_conn);
}

static enum MHD_Result send_json(ivl_serve_http *h, struct MHD_Connection *c, int status,
                                 cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return send_text(h, c, status, "application/json", s, 0);
}

// 1 when the client has closed its end (EOF on a peek) or the socket failed.
static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLERR | POLLHUP | POLLRDHUP)) return 1;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static cJSON *usage_json(const ivl_serve_job *j) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", j->n_ids);
    cJSON_AddNumberToObject(u, "completion_tokens", j->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", j->n_ids + j->n_gen);
    // OpenAI's field for prompt tokens served from the prefix cache (an earlier turn's KV).
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", j->cached_tokens);
    return u;
}

// A finish reason the OpenAI API knows, for the answer body.
static const char *api_reason(const char *r) { return r && !strcmp(r, "length") ? "length" : "stop"; }

static int failed_reason(const char *r) {
    return r && (!strcmp(r, "timeout") || !strcmp(r, "shutdown") || !strcmp(r, "cancelled") ||
                 !strcmp(r, "error"));
}

static void reason_error(const ivl_serve_job *j, ivl_serve_error *e) {
    if (!strcmp(j->finish_reason, "timeout")) {
        ivl_serve_fail(e, 504, "", "the request did not finish within the server's per-request "
                       "timeout (server option --request-timeout; %d tokens were generated)",
                       j->n_gen);
        e->type = "timeout";
    } else if (!strcmp(j->finish_reason, "error")) {
        ivl_serve_fail(e, 500, "", "the engine could not run this request (the server log says "
                       "why; %d tokens were generated)", j->n_gen);
        e->type = "server_error";
    } else {
        ivl_serve_fail(e, 503, "", "the server is shutting down; retry on another instance");
    }
}

// ---- streaming (server-sent events) -----------------------------------------------------

typedef struct {
    ivl_serve_http *h;
    ivl_serve_job *j;
    struct MHD_Connection *c;
    size_t sent;        // bytes of j->text already sent
    int phase;          // 0 role chunk, 1 content, 2 usage, 3 [DONE], 4 end
    char *pend;         // an event being written out
    size_t pend_len, pend_off;
    double last_sent;   // monotonic seconds of the last event
} sse_state;

static char *chunk(const sse_state *s, const char *role, const char *content, size_t n,
                   const char *finish) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->j->id);
    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(o, "created", (double)s->j->created);
    cJSON_AddStringToObject(o, "model", s->h->o.model_name);
    cJSON *ch = cJSON_AddArrayToObject(o, "choices");
    if (role || content || finish) {
        cJSON *c0 = cJSON_CreateObject(), *d = cJSON_AddObjectToObject(c0, "delta");
        cJSON_AddNumberToObject(c0, "index", 0);
        if (role) cJSON_AddStringToObject(d, "role", role);
        if (content) {
            char *t = ivl_malloc(n + 1);
            memcpy(t, content, n);
            t[n] = 0;
            cJSON_AddStringToObject(d, "content", t);
            free(t);
        }
        if (finish) cJSON_AddStringToObject(c0, "finish_reason", finish);
        else cJSON_AddNullToObject(c0, "finish_reason");
        cJSON_AddItemToArray(ch, c0);
    } else {
        cJSON_AddItemToObject(o, "usage", usage_json(s->j));
    }
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    size_t L = strlen(js);
    char *ev = ivl_malloc(L + 9);
    memcpy(ev, "data: ", 6);
    memcpy(ev + 6, js, L);
    memcpy(ev + 6 + L, "\n\n", 3);
    free(js);
    return ev;
}

static void set_pending(sse_state *s, char *ev) {
    free(s->pend);
    s->pend = ev;
    s->pend_len = strlen(ev);
    s->pend_off = 0;
}

// The next event, blocking until there is one. 0 when the client went away.
static int next_event(sse_state *s) {
    ivl_serve_job *j = s->j;
    if (s->phase == 0) {
        set_pending(s, chunk(s, "assistant", "", 0, NULL));
        s->phase = 1;
        return 1;
    }
    if (s->phase == 1) {
        for (;;) {
            int done;
            size_t ready = ivl_serve_job_wait(j, s->sent, 0.25, &done);
            if (ready > s->sent) {
                pthread_mutex_lock(&j->mu);
                char *ev = chunk(s, NULL, j->text + s->sent, ready - s->sent, NULL);
                pthread_mutex_unlock(&j->mu);
                s->sent = ready;
                set_pending(s, ev);
                return 1;
            }
            if (done) break;
            if (client_gone(s->c)) return 0;
            // libmicrohttpd closes a connection silent for --read-timeout even while its
            // reader waits (queue, prefill): an SSE comment keeps it alive; clients skip it.
            double ka = s->h->o.read_timeout_s / 3.0;
            if (ivl_serve_now() - s->last_sent > (ka < 0.5 ? 0.5 : ka > 10 ? 10 : ka)) {
                set_pending(s, ivl_strdup(": keep-alive\n\n"));
                return 1;
            }
        }
        if (failed_reason(j->finish_reason)) {
            ivl_serve_error e;
            reason_error(j, &e);
            char *err = ivl_serve_error_json(&e), *ev = ivl_malloc(strlen(err) + 10);
            sprintf(ev, "data: %s\n\n", err);
            free(err);
            set_pending(s, ev);
            s->phase = 3;
            return 1;
        }
        set_pending(s, chunk(s, NULL, NULL, 0, api_reason(j->finish_reason)));
        s->phase = j->include_usage ? 2 : 3;
        return 1;
    }
    if (s->phase == 2) {
        set_pending(s, chunk(s, NULL, NULL, 0, NULL));
        s->phase = 3;
        return 1;
    }
    if (s->phase == 3) {
        set_pending(s, ivl_strdup("data: [DONE]\n\n"));
        s->phase = 4;
        return 1;
    }
    return -1;   // end of stream
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    sse_state *s = cls;
    (void)pos;
    while (s->pend_off == s->pend_len) {
        int r = next_event(s);
        s->last_sent = ivl_serve_now();
        if (r == 0) {
            atomic_store(&s->j->cancel, 1);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (r < 0) return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = s->pend_len - s->pend_off;
    if (n > max) n = max;
    memcpy(buf, s->pend + s->pend_off, n);
    s->pend_off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls) {
    sse_state *s = cls;
    if (!s->j->done) atomic_store(&s->j->cancel, 1);   // the connection ended first
    ivl_serve_job_unref(s->j);
    atomic_fetch_sub(&s->h->active, 1);
    free(s->pend);
    free(s);
}

// ---- POST /v1/chat/completions ----------------------------------------------------------

static enum MHD_Result answer_whole(ivl_serve_http *h, struct MHD_Connection *c, ivl_serve_job *j) {
    int done = 0;
    while (!done) {
        ivl_serve_job_wait(j, (size_t)-1, 0.25, &done);
        if (!done && client_gone(c)) {
            atomic_store(&j->cancel, 1);
            ivl_serve_metrics_status(h->metrics, 499);   // nginx's "client closed request"
            return MHD_NO;
        }
    }
    if (failed_reason(j->finish_reason)) {
        ivl_serve_error e;
        reason_error(j, &e);
        return send_error(h, c, &e, 0);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", h->o.model_name);
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c0 = cJSON_CreateObject();
    cJSON_AddNumberToObject(c0, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(c0, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", j->text ? j->text : "");
    cJSON_AddNullToObject(c0, "logprobs");
    cJSON_AddStringToObject(c0, "finish_reason", api_reason(j->finish_reason));
    cJSON_AddItemToArray(ch, c0);
    cJSON_AddItemToObject(o, "usage", usage_json(j));
    return send_json(h, c, 200, o);
}

static enum MHD_Result chat_completions_in(ivl_serve_http *h, struct MHD_Connection *c,
                                           const conn_state *cs, int *streaming) {
    ivl_serve_error e;
    if (atomic_load(&h->draining)) {
        ivl_serve_fail(&e, 503, "", "the server is shutting down");
        return send_error(h, c, &e, 1);
    }
    ivl_serve_request_limits lim = {h->o.model_name, h->o.max_images, h->o.max_tokens_limit};
    ivl_serve_request r;
    if (ivl_serve_request_parse(cs->body ? cs->body : "", cs->len, &lim, &r, &e))
        return send_error(h, c, &e, 0);
    ivl_serve_job *j = ivl_serve_job_new();
    int rc = ivl_serve_prepare(h->m, &r, j, &e);
    ivl_serve_request_free(&r);
    if (rc) {
        ivl_serve_job_unref(j);
        return send_error(h, c, &e, 0);
    }
    int q = ivl_serve_queue_push(h->q, j);
    if (q != 0) {
        ivl_serve_job_unref(j);
        if (q == -1)
            ivl_serve_fail(&e, 429, "", "the server's queue is full (%d requests waiting; server "
                           "option --max-queue): retry later", h->q->cap);
        else
            ivl_serve_fail(&e, 503, "", "the server is shutting down");
        return send_error(h, c, &e, q != -1);
    }
    if (!j->stream) {
        enum MHD_Result ok = answer_whole(h, c, j);
        ivl_serve_job_unref(j);
        return ok;
    }
    *streaming = 1;   // sse_free ends the request's count
    sse_state *s = ivl_calloc(1, sizeof *s);
    s->h = h;
    s->j = j;   // the stream owns the reference
    s->c = c;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    enum MHD_Result ok = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    ivl_serve_metrics_status(h->metrics, 200);
    return ok;
}

// Counted in h->active from the first byte of handling to the last byte sent, so that a
// shutdown can wait for every answer to be written before it closes the connections.
static enum MHD_Result chat_completions(ivl_serve_http *h, struct MHD_Connection *c,
                                        const conn_state *cs) {
    atomic_fetch_add(&h->active, 1);
    int streaming = 0;
    enum MHD_Result r = chat_completions_in(h, c, cs, &streaming);
    if (!streaming) atomic_fetch_sub(&h->active, 1);
    return r;
}

// ---- GET endpoints ----------------------------------------------------------------------

static enum MHD_Result models(ivl_serve_http *h, struct MHD_Connection *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data"), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", h->o.model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "internvl");
    cJSON_AddNumberToObject(m, "max_model_len", h->m->cfg->llm.max_position);
    cJSON_AddItemToArray(data, m);
    return send_json(h, c, 200, o);
}

static enum MHD_Result route(ivl_serve_http *h, struct MHD_Connection *c, const char *url,
                             const char *method, const conn_state *cs) {
    ivl_serve_error e;
    const int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!strcmp(url, "/v1/chat/completions")) {
        if (!strcmp(method, "POST")) return chat_completions(h, c, cs);
    } else if (!strcmp(url, "/v1/models")) {
        if (get) return models(h, c);
    } else if (!strcmp(url, "/health")) {
        if (get) {
            int d = atomic_load(&h->draining);
            return send_text(h, c, d ? 503 : 200, "application/json",
                             ivl_strdup(d ? "{\"status\":\"shutting down\"}" : "{\"status\":\"ok\"}"), 0);
        }
    } else if (!strcmp(url, "/metrics")) {
        if (get) {
            ivl_serve_metrics_queue(h->metrics, ivl_serve_queue_len(h->q));   // live
            return send_text(h, c, 200, "text/plain; version=0.0.4; charset=utf-8",
                             ivl_serve_metrics_render(h->metrics), 0);
        }
    } else {
        ivl_serve_fail(&e, 404, "", "no such endpoint: %s %.200s (POST /v1/chat/completions, "
                       "GET /v1/models, /health, /metrics)", method, url);
        return send_error(h, c, &e, 0);
    }
    ivl_serve_fail(&e, 405, "", "method %s is not allowed on %.200s", method, url);
    return send_error(h, c, &e, 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls) {
    ivl_serve_http *h = cls;
    (void)version;
    conn_state *cs = *con_cls;
    if (!cs) {   // first call: headers only
        cs = ivl_calloc(1, sizeof *cs);
        *con_cls = cs;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > h->o.max_body) cs->too_large = 1;
        if (!cs->too_large) return MHD_YES;
    }
    if (*upload_size) {
        if (!cs->too_large && cs->len + *upload_size <= h->o.max_body) {
            if (cs->len + *upload_size + 1 > cs->cap) {
                cs->cap = (cs->len + *upload_size + 1) * 2;
                if (cs->cap > h->o.max_body + 1) cs->cap = h->o.max_body + 1;
                cs->body = ivl_realloc(cs->body, cs->cap);
            }
            memcpy(cs->body + cs->len, upload, *upload_size);
            cs->len += *upload_size;
            cs->body[cs->len] = 0;
        } else {
            cs->too_large = 1;
        }
        *upload_size = 0;
        if (!cs->too_large) return MHD_YES;
    }
    if (cs->answered) return MHD_YES;
    cs->answered = 1;
    if (cs->too_large) {
        ivl_serve_error e;
        ivl_serve_fail(&e, 413, "", "the request body is larger than %zu bytes (server option "
                       "--max-body)", h->o.max_body);
        return send_error(h, c, &e, 1);
    }
    return route(h, c, url, method, cs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn_state *cs = *con_cls;
    if (cs) {
        free(cs->body);
        free(cs);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    LOG_INFO("http: %s", msg);
}

ivl_serve_http *ivl_serve_http_start(const ivl_serve_http_opts *o, const ivl_serve_model *m,
                                     ivl_serve_queue *q, ivl_serve_metrics *metrics) {
    ivl_serve_http *h = ivl_calloc(1, sizeof *h);
    h->o = *o;
    h->m = m;
    h->q = q;
    h->metrics = metrics;
    atomic_init(&h->draining, 0);
    atomic_init(&h->active, 0);
    struct sockaddr_in a4 = {0};
    struct sockaddr_in6 a6 = {0};
    const char *host = !strcmp(o->host, "localhost") ? "127.0.0.1" : o->host;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct sockaddr *sa;
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)o->port);
        sa = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)o->port);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        free(h);
        ivl_errorf("--host %s: not a numeric IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1)",
                   o->host);
        return NULL;
    }
    h->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
                            MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, o->read_timeout_s,
                            MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_END);
    if (!h->d) {
        free(h);
        ivl_errorf("cannot listen on %s port %d: %s (is the port in use? --port 0 picks a free "
                   "one)", o->host, o->port, strerror(errno));
        return NULL;
    }
    return h;
}

int ivl_serve_http_port(const ivl_serve_http *h) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : -1;
}

void ivl_serve_http_quiesce(ivl_serve_http *h) {
    atomic_store(&h->draining, 1);
    MHD_socket fd = MHD_quiesce_daemon(h->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void ivl_serve_http_stop(ivl_serve_http *h) {
    if (!h) return;
    // Every job is finished; let the connection threads write their last bytes (answers,
    // the final events of streams, 503s of requests that came during the drain) first.
    double until = ivl_serve_now() + 10;
    while (atomic_load(&h->active) > 0 && ivl_serve_now() < until) usleep(10000);
    if (atomic_load(&h->active) > 0)
        LOG_WARN("serve: %d answers still being written at exit", atomic_load(&h->active));
    MHD_stop_daemon(h->d);
    free(h);
}
