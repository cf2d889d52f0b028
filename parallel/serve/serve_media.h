// serve_media.h - an image_url of a chat request -> the image file's bytes. Accepted:
//   data:[image/jpeg|image/png|...];base64,<data>    inline (what clients send)
//   file:///abs/path                                 only under --allowed-local-media DIR:
//                                                    the real path (symlinks and ".." resolved)
//                                                    must lie inside the real DIR
// Refused with a message saying what to send instead: http(s) URLs (the engine fetches
// nothing), other schemes, bad base64, files outside the root or over the size limit.
// The format is sniffed from the bytes later (core/image), never trusted from the media type.
#ifndef IVL_SERVE_MEDIA_H
#define IVL_SERVE_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "parallel/serve/serve_request.h"

typedef struct {
    const char *allowed_root;   // NULL: file:// refused
    size_t max_bytes;           // one image's encoded size
} ivl_serve_media_opts;

// 0 with *data (malloc'ed) and *len, or -1 with *e (400). `param` names the field in errors.
int ivl_serve_media_fetch(const char *url, const ivl_serve_media_opts *o, const char *param,
                          uint8_t **data, size_t *len, ivl_serve_error *e);

// Standard base64 (RFC 4648 alphabet, '=' padding optional, no whitespace) of s[0..n).
// 0 with *out (malloc'ed), *out_len; -1 on a bad character or length. Pure.
int ivl_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len);

#endif
