// serve_http.h - the HTTP front end of `internvl serve` (rank 0 only): libmicrohttpd with
// a thread per connection. It parses and checks requests (serve_request.h), prepares them
// (serve_prepare.h), queues them for the engine and answers: JSON, or server-sent events
// for stream = true. It never calls MPI.
//
//   POST /v1/chat/completions   GET /v1/models   GET /health   GET /metrics
//
// A client that disconnects (seen between tokens) cancels its job. A full queue answers 429
// with Retry-After; a body over the limit 413; while shutting down new requests get 503.
#ifndef IVL_SERVE_HTTP_H
#define IVL_SERVE_HTTP_H

#include <stddef.h>

#include "parallel/serve/serve_job.h"
#include "parallel/serve/serve_metrics.h"
#include "parallel/serve/serve_prepare.h"

typedef struct {
    const char *host;            // "127.0.0.1", "0.0.0.0", "::1", ...
    int port;                    // 0: any free port (see ivl_serve_http_port)
    const char *model_name;      // the id of GET /v1/models; requests must name it
    size_t max_body;             // bytes of a request body
    int max_images;
    int max_tokens_limit;
    unsigned read_timeout_s;     // a connection idle this long (a stalled upload) is closed
    unsigned max_connections;
    int retry_after_s;           // Retry-After of a 429
} ivl_serve_http_opts;

typedef struct ivl_serve_http ivl_serve_http;

// Starts listening. NULL + ivl_last_error() when the address cannot be bound.
ivl_serve_http *ivl_serve_http_start(const ivl_serve_http_opts *o, const ivl_serve_model *m,
                                     ivl_serve_queue *q, ivl_serve_metrics *metrics);
int ivl_serve_http_port(const ivl_serve_http *h);
// Stops accepting new connections (graceful shutdown); requests already read are answered.
void ivl_serve_http_quiesce(ivl_serve_http *h);
// Closes every connection and frees h (after the engine has finished every job).
void ivl_serve_http_stop(ivl_serve_http *h);

#endif
