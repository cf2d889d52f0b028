// serve_request.c - see serve_request.h.
#include "parallel/serve/serve_request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

int ivl_serve_fail(ivl_serve_error *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = status == 404 ? "not_found_error"
              : status == 413 ? "request_too_large"
              : status == 429 ? "rate_limit_exceeded"
              : status >= 500 ? "server_error" : "invalid_request_error";
    e->code = NULL;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

char *ivl_serve_error_json(const ivl_serve_error *e) {
    cJSON *root = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(o, "message", e->message);
    cJSON_AddStringToObject(o, "type", e->type ? e->type : "invalid_request_error");
    if (e->param[0]) cJSON_AddStringToObject(o, "param", e->param);
    else cJSON_AddNullToObject(o, "param");
    if (e->code) cJSON_AddStringToObject(o, "code", e->code);
    else cJSON_AddNullToObject(o, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

void ivl_serve_request_free(ivl_serve_request *r) {
    free(r->model);
    free(r->system);
    for (int i = 0; i < r->n_history; i++) {
        free((char *)r->history[i].user);
        free((char *)r->history[i].assistant);
    }
    free(r->history);
    free(r->question);
    for (int i = 0; i < r->n_images; i++) free(r->image_urls[i]);
    free(r->image_urls);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

// A JSON number that is an integer in [lo, hi].
static int get_int(const cJSON *v, const char *name, long lo, long hi, long *out,
                   ivl_serve_error *e) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return ivl_serve_fail(e, 400, name, "'%s' must be an integer", name);
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return ivl_serve_fail(e, 400, name, "'%s' must be between %ld and %ld (got %.0f)", name,
                              lo, hi, v->valuedouble);
    *out = (long)v->valuedouble;
    return 0;
}

static int get_num(const cJSON *v, const char *name, double lo, double hi, double *out,
                   ivl_serve_error *e) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return ivl_serve_fail(e, 400, name, "'%s' must be a number", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return ivl_serve_fail(e, 400, name, "'%s' must be between %g and %g (got %g)", name, lo,
                              hi, v->valuedouble);
    *out = v->valuedouble;
    return 0;
}

static void text_append(char **acc, const char *s) {
    size_t a = *acc ? strlen(*acc) : 0, b = strlen(s);
    *acc = ivl_realloc(*acc, a + b + 2);
    if (a) (*acc)[a++] = '\n';
    memcpy(*acc + a, s, b + 1);
}

// One message's content: a string, or an array of text / image_url parts. Images are
// collected when `images` is not NULL, refused otherwise.
static int parse_content(const cJSON *content, int idx, char ***images, int *n_images,
                         int max_images, char **text, ivl_serve_error *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%d].content", idx);
    if (cJSON_IsString(content)) {
        *text = ivl_strdup(content->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(content))
        return ivl_serve_fail(e, 400, param, "%s must be a string or an array of content parts",
                              param);
    const cJSON *part;
    int k = 0;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type))
            return ivl_serve_fail(e, 400, param, "%s[%d] must be an object with a 'type'", param, k);
        if (!strcmp(type->valuestring, "text")) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(t))
                return ivl_serve_fail(e, 400, param, "%s[%d].text must be a string", param, k);
            text_append(text, t->valuestring);
        } else if (!strcmp(type->valuestring, "image_url")) {
            const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
            const cJSON *url = cJSON_IsObject(iu) ? cJSON_GetObjectItemCaseSensitive(iu, "url") : iu;
            if (!cJSON_IsString(url))
                return ivl_serve_fail(e, 400, param, "%s[%d].image_url.url must be a string", param, k);
            if (!images)
                return ivl_serve_fail(e, 400, param,
                                      "%s[%d]: images may only be in the first user message (the "
                                      "InternVL template puts every image in the first turn)",
                                      param, k);
            if (*n_images >= max_images)
                return ivl_serve_fail(e, 400, param,
                                      "too many images: at most %d per request (server option "
                                      "--max-images)", max_images);
            *images = ivl_realloc(*images, (size_t)(*n_images + 1) * sizeof **images);
            (*images)[(*n_images)++] = ivl_strdup(url->valuestring);
        } else {
            return ivl_serve_fail(e, 400, param,
                                  "%s[%d]: content part type '%s' is not supported (use 'text' or "
                                  "'image_url')", param, k, type->valuestring);
        }
        k++;
    }
    if (!*text) *text = ivl_strdup("");
    return 0;
}

static int parse_messages(const cJSON *msgs, const ivl_serve_request_limits *lim,
                          ivl_serve_request *r, ivl_serve_error *e) {
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return ivl_serve_fail(e, 400, "messages", "'messages' must be a non-empty array");
    int n = cJSON_GetArraySize(msgs), i = 0, user_seen = 0;
    char *pending_user = NULL;   // a user message waiting for its assistant answer
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        char param[64];
        snprintf(param, sizeof param, "messages[%d].role", i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            free(pending_user);
            return ivl_serve_fail(e, 400, param, "messages[%d] must be an object with a 'role'", i);
        }
        const char *rs = role->valuestring;
        char *text = NULL;
        int rc = 0;
        if (!strcmp(rs, "system") || !strcmp(rs, "developer")) {
            if (i != 0)
                rc = ivl_serve_fail(e, 400, param, "a system message may only come first (message %d)", i);
            else if ((rc = parse_content(content, i, NULL, NULL, 0, &text, e)) == 0)
                r->system = text, text = NULL;
        } else if (!strcmp(rs, "user")) {
            if (pending_user)
                rc = ivl_serve_fail(e, 400, param, "messages[%d]: two user messages in a row; "
                                    "user and assistant messages must alternate", i);
            else
                rc = parse_content(content, i, user_seen ? NULL : &r->image_urls, &r->n_images,
                                   lim->max_images, &text, e);
            if (rc == 0) pending_user = text, text = NULL, user_seen = 1;
        } else if (!strcmp(rs, "assistant")) {
            if (!pending_user)
                rc = ivl_serve_fail(e, 400, param, "messages[%d]: an assistant message must follow "
                                    "a user message", i);
            else if ((rc = parse_content(content, i, NULL, NULL, 0, &text, e)) == 0) {
                r->history = ivl_realloc(r->history, (size_t)(r->n_history + 1) * sizeof *r->history);
                r->history[r->n_history].user = pending_user;
                r->history[r->n_history].assistant = text;
                r->n_history++;
                pending_user = NULL;
                text = NULL;
            }
        } else {
            rc = ivl_serve_fail(e, 400, param, "messages[%d]: role '%s' is not supported (system, "
                                "user, assistant)", i, rs);
        }
        free(text);
        if (rc) {
            free(pending_user);
            return -1;
        }
        i++;
    }
    if (!pending_user)
        return ivl_serve_fail(e, 400, "messages", "the last of the %d messages must be a user "
                              "message", n);
    r->question = pending_user;
    return 0;
}

static int parse_stop(const cJSON *v, ivl_serve_request *r, ivl_serve_error *e) {
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) {
        if (!v->valuestring[0]) return ivl_serve_fail(e, 400, "stop", "'stop' must not be empty");
        r->stop[r->n_stop++] = ivl_strdup(v->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > IVL_SERVE_MAX_STOP)
        return ivl_serve_fail(e, 400, "stop", "'stop' must be a string or an array of up to %d "
                              "strings", IVL_SERVE_MAX_STOP);
    const cJSON *s;
    cJSON_ArrayForEach(s, v) {
        if (!cJSON_IsString(s) || !s->valuestring[0])
            return ivl_serve_fail(e, 400, "stop", "every 'stop' entry must be a non-empty string");
        r->stop[r->n_stop++] = ivl_strdup(s->valuestring);
    }
    return 0;
}

// Fields we do not implement: refused when they ask for something, so no answer is silently
// different from what the client asked for.
static int refuse_unsupported(const cJSON *root, ivl_serve_error *e) {
    static const char *zero_ok[] = {"presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < sizeof zero_ok / sizeof *zero_ok; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, zero_ok[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0))
            return ivl_serve_fail(e, 400, zero_ok[i], "'%s' is not supported (leave it out or 0)",
                                  zero_ok[i]);
    }
    static const char *off[] = {"logprobs", "tools", "functions", "logit_bias", "response_format"};
    for (size_t i = 0; i < sizeof off / sizeof *off; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, off[i]);
        if (v && !cJSON_IsNull(v) && !cJSON_IsFalse(v))
            return ivl_serve_fail(e, 400, off[i], "'%s' is not supported by this server", off[i]);
    }
    return 0;
}

static int parse_root(const cJSON *root, const ivl_serve_request_limits *lim,
                      ivl_serve_request *r, ivl_serve_error *e) {
    if (!cJSON_IsObject(root))
        return ivl_serve_fail(e, 400, "", "the request body must be a JSON object");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v)) return ivl_serve_fail(e, 400, "model", "'model' must be a string");
        r->model = ivl_strdup(v->valuestring);
        if (lim->model_name && strcmp(v->valuestring, lim->model_name)) {
            ivl_serve_fail(e, 404, "model", "The model '%.200s' does not exist: this server serves "
                           "'%.200s' (GET /v1/models)", v->valuestring, lim->model_name);
            e->code = "model_not_found";
            return -1;
        }
    }
    if (parse_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), lim, r, e)) return -1;
    if (refuse_unsupported(root, e)) return -1;
    long l = 0;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "n")) && !cJSON_IsNull(v)) {
        if (get_int(v, "n", 1, 1 << 30, &l, e)) return -1;
        if (l != 1) return ivl_serve_fail(e, 400, "n", "only n = 1 is supported (got %ld)", l);
    }
    const char *mt = "max_tokens";
    v = cJSON_GetObjectItemCaseSensitive(root, mt);
    if (!v || cJSON_IsNull(v)) v = cJSON_GetObjectItemCaseSensitive(root, mt = "max_completion_tokens");
    if (v && !cJSON_IsNull(v)) {
        if (get_int(v, mt, 1, lim->max_tokens_limit, &l, e)) return -1;
        r->max_tokens = (int)l;
    }
    double d = 0;
    r->greedy = 1;
    r->temperature = 1.0f;
    r->top_p = 1.0f;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "temperature")) && !cJSON_IsNull(v)) {
        if (get_num(v, "temperature", 0, 2, &d, e)) return -1;
        r->greedy = d == 0;
        r->temperature = d > 0 ? (float)d : 1.0f;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "top_p")) && !cJSON_IsNull(v)) {
        if (get_num(v, "top_p", 0, 1, &d, e)) return -1;
        if (d <= 0) return ivl_serve_fail(e, 400, "top_p", "'top_p' must be above 0");
        r->top_p = (float)d;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "seed")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
            fabs(v->valuedouble) > 9007199254740992.0)
            return ivl_serve_fail(e, 400, "seed", "'seed' must be an integer");
        r->has_seed = 1;
        r->seed = (uint64_t)(int64_t)v->valuedouble;
    }
    if (parse_stop(cJSON_GetObjectItemCaseSensitive(root, "stop"), r, e)) return -1;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "stream")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v)) return ivl_serve_fail(e, 400, "stream", "'stream' must be true or false");
        r->stream = cJSON_IsTrue(v);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "stream_options")) && !cJSON_IsNull(v)) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(v, "include_usage");
        if (!cJSON_IsObject(v) || (u && !cJSON_IsBool(u)))
            return ivl_serve_fail(e, 400, "stream_options", "'stream_options' must be an object "
                                  "like {\"include_usage\": true}");
        r->include_usage = cJSON_IsTrue(u);
    }
    const char *mx = "max_tiles";
    v = cJSON_GetObjectItemCaseSensitive(root, mx);
    if (!v || cJSON_IsNull(v)) v = cJSON_GetObjectItemCaseSensitive(root, mx = "max_dynamic_patch");
    if (v && !cJSON_IsNull(v)) {
        if (get_int(v, mx, 1, 40, &l, e)) return -1;
        r->max_tiles = (int)l;
    }
    return 0;
}

int ivl_serve_request_parse(const char *body, size_t len, const ivl_serve_request_limits *lim,
                            ivl_serve_request *out, ivl_serve_error *err) {
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        long at = end ? (long)(end - body) : -1;
        return ivl_serve_fail(err, 400, "", "the request body is not valid JSON (error near byte "
                              "%ld)", at);
    }
    int rc = parse_root(root, lim, out, err);
    cJSON_Delete(root);
    if (rc) ivl_serve_request_free(out);
    return rc;
}
