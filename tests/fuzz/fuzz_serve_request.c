// fuzz_serve_request.c - an HTTP request body from any client -> ivl_serve_request_parse, and
// the first image URL of an accepted request -> the data: URL / base64 decoder. A refusal must
// come with a 4xx status and a message; an accepted request must have a question and obey
// the limits (n_images <= max_images, max_tokens in range, at most 4 stop strings).
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "parallel/serve/serve_media.h"
#include "parallel/serve/serve_request.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_init_common();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ivl_serve_request_limits lim = {"mini2b-tiny", 3, 4096};
    ivl_serve_request r;
    ivl_serve_error e;
    if (ivl_serve_request_parse((const char *)data, size, &lim, &r, &e) != 0) {
        if (e.status < 400 || e.status > 499 || !e.message[0]) __builtin_trap();
        char *j = ivl_serve_error_json(&e);
        if (!j) __builtin_trap();
        free(j);
        return 0;
    }
    if (!r.question || r.n_images > lim.max_images || r.max_tokens < 0 ||
        r.max_tokens > lim.max_tokens_limit || r.n_stop > IVL_SERVE_MAX_STOP)
        __builtin_trap();
    if (r.n_images) {   // data: URLs only (file:// is refused without a root; no I/O here)
        ivl_serve_media_opts mo = {NULL, 1 << 20};
        uint8_t *bytes;
        size_t n;
        if (ivl_serve_media_fetch(r.image_urls[0], &mo, "fuzz", &bytes, &n, &e) == 0) {
            if (!bytes || !n) __builtin_trap();
            free(bytes);
        } else if (e.status != 400 || !e.message[0]) {
            __builtin_trap();
        }
    }
    ivl_serve_request_free(&r);
    return 0;
}
