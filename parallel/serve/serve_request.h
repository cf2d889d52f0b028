// serve_request.h - an OpenAI chat-completions request body (JSON) -> a checked request
// struct. Pure: no I/O, no model, no globals, so it can be fuzzed on its own
// (tests/fuzz/fuzz_serve_request.c). Images stay URLs here; serve_media.h turns them into
// bytes and serve_prepare.h into tiles and prompt ids.
//
// Mapping onto the InternVL chat template (core/text/chat.h), as `internvl chat` builds it:
//   [system]  optional, first message only, text      -> the template's system message
//   user / assistant / ... / user  alternating         -> history pairs + the new question
//   image_url parts                                    -> images, first user message only
// Text parts of one message are joined with "\n".
#ifndef IVL_SERVE_REQUEST_H
#define IVL_SERVE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/text/chat.h"

#define IVL_SERVE_MAX_STOP 4

// An OpenAI-style error: HTTP status, error.type, error.param (may be ""), error.code (may be
// NULL) and a message that names the field and the fix.
typedef struct {
    int status;
    const char *type;      // "invalid_request_error", "not_found_error", ...
    const char *code;      // "model_not_found", ... or NULL
    char param[64];
    char message[512];
} ivl_serve_error;

// Sets *e and returns -1.
int ivl_serve_fail(ivl_serve_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

typedef struct {
    const char *model_name;   // the served model's id; a request naming another is refused
    int max_images;           // images per request
    int max_tokens_limit;     // largest max_tokens accepted
} ivl_serve_request_limits;

typedef struct {
    char *model;              // as sent (NULL when absent: the served model)
    char *system;             // NULL: the model's default system message
    ivl_chat_turn *history;   // earlier user/assistant pairs (strings owned)
    int n_history;
    char *question;           // the last user message's text
    char **image_urls;        // image_url parts of the first user message, in order
    int n_images;
    int max_tokens;           // 0: not given (the server's default)
    int greedy;               // temperature absent or 0: greedy, as `internvl chat`
    float temperature;
    float top_p;              // 1: off
    int has_seed;
    uint64_t seed;
    char *stop[IVL_SERVE_MAX_STOP];
    int n_stop;
    int stream;
    int include_usage;        // stream_options.include_usage
    int max_tiles;            // extension (LMDeploy's max_dynamic_patch); 0: the model's
} ivl_serve_request;

// Parses and checks body[0..len). 0, or -1 with *err filled (4xx). On failure *out is freed.
int ivl_serve_request_parse(const char *body, size_t len, const ivl_serve_request_limits *lim,
                            ivl_serve_request *out, ivl_serve_error *err);
void ivl_serve_request_free(ivl_serve_request *r);

// {"error": {"message", "type", "param", "code"}} (malloc'ed).
char *ivl_serve_error_json(const ivl_serve_error *e);

#endif
