// serve_media.c - see serve_media.h.
#define _GNU_SOURCE
#include "parallel/serve/serve_media.h"

#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/check.h"

// Base64 digit values (-1: not a digit), one table lookup a character: a data: URL holds
// megabytes, and a branch per character range costs several times more on random data.
static int8_t k_b64[256];
static pthread_once_t k_b64_once = PTHREAD_ONCE_INIT;

static void b64_table_init(void) {
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    memset(k_b64, -1, sizeof k_b64);
    for (int i = 0; i < 64; i++) k_b64[(unsigned char)digits[i]] = (int8_t)i;
}

int ivl_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len) {
    pthread_once(&k_b64_once, b64_table_init);
    *out = NULL;
    *out_len = 0;
    size_t pad = 0;
    while (n > 0 && s[n - 1] == '=' && pad < 2) n--, pad++;
    if (n % 4 == 1 || (pad && (n + pad) % 4)) return -1;
    uint8_t *o = malloc(n / 4 * 3 + 3);
    if (!o) return -1;
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0, i = 0;
    int bad = 0;
    for (; i + 4 <= n; i += 4) {   // whole groups: 4 digits -> 3 bytes
        const int a = k_b64[u[i]], b = k_b64[u[i + 1]], c = k_b64[u[i + 2]], d = k_b64[u[i + 3]];
        bad |= a | b | c | d;      // any -1 sets the sign bit
        const uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        o[k++] = (uint8_t)(v >> 16);
        o[k++] = (uint8_t)(v >> 8);
        o[k++] = (uint8_t)v;
    }
    uint32_t acc = 0;
    int bits = 0;
    for (; i < n; i++) {           // the last 2 or 3 digits
        const int v = k_b64[u[i]];
        bad |= v;
        acc = (acc << 6) | (uint32_t)(v & 63);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (uint8_t)(acc >> bits);
        }
    }
    if (bad < 0) {
        free(o);
        return -1;
    }
    *out = o;
    *out_len = k;
    return 0;
}

static int from_data_url(const char *url, const ivl_serve_media_opts *o, const char *param,
                         uint8_t **data, size_t *len, ivl_serve_error *e) {
    const char *comma = strchr(url, ',');
    if (!comma)
        return ivl_serve_fail(e, 400, param, "%s: a data: URL needs a ',' before its data", param);
    const char *meta = url + 5;
    size_t mlen = (size_t)(comma - meta);
    if (mlen < 7 || strncmp(comma - 7, ";base64", 7))
        return ivl_serve_fail(e, 400, param, "%s: only base64 data: URLs are accepted "
                              "(data:image/jpeg;base64,...)", param);
    if (mlen > 7 && strncasecmp(meta, "image/", 6))
        return ivl_serve_fail(e, 400, param, "%s: the data: URL's media type is '%.*s', not an "
                              "image/ type", param, (int)(mlen - 7 > 40 ? 40 : mlen - 7), meta);
    size_t n = strlen(comma + 1);
    if (n / 4 * 3 > o->max_bytes)
        return ivl_serve_fail(e, 400, param, "%s: the image is larger than %zu bytes (server "
                              "option --max-image-bytes)", param, o->max_bytes);
    if (ivl_base64_decode(comma + 1, n, data, len) != 0)
        return ivl_serve_fail(e, 400, param, "%s: the data: URL is not valid base64", param);
    if (*len == 0) {
        free(*data);
        *data = NULL;
        return ivl_serve_fail(e, 400, param, "%s: the image is empty", param);
    }
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int from_file_url(const char *url, const ivl_serve_media_opts *o, const char *param,
                         uint8_t **data, size_t *len, ivl_serve_error *e) {
    if (!o->allowed_root)
        return ivl_serve_fail(e, 400, param, "%s: file:// URLs are refused (the server was not "
                              "started with --allowed-local-media DIR); send the image as a "
                              "data: URL", param);
    const char *p = url + 7;
    if (!strncmp(p, "localhost/", 10)) p += 9;
    if (*p != '/')
        return ivl_serve_fail(e, 400, param, "%s: a file:// URL needs an absolute path "
                              "(file:///dir/image.jpg)", param);
    char path[PATH_MAX];
    size_t k = 0;
    for (; *p && k + 1 < sizeof path; p++) {   // percent-decoding
        if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            path[k++] = (char)(hexval(p[1]) * 16 + hexval(p[2]));
            p += 2;
        } else {
            path[k++] = *p;
        }
    }
    path[k] = 0;
    if (*p || strlen(path) != k)
        return ivl_serve_fail(e, 400, param, "%s: bad file:// path", param);
    char real[PATH_MAX], root[PATH_MAX];
    if (!realpath(o->allowed_root, root))
        return ivl_serve_fail(e, 500, param, "the --allowed-local-media root %s cannot be resolved: "
                              "%s", o->allowed_root, strerror(errno));
    size_t rl = strlen(root);
    if (!realpath(path, real) || strncmp(real, root, rl) || (real[rl] != '/' && rl > 1))
        return ivl_serve_fail(e, 400, param, "%s: file:// paths must name an existing file under "
                              "the allowed local media root", param);
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        return ivl_serve_fail(e, 400, param, "%s: not a regular file", param);
    if ((size_t)st.st_size > o->max_bytes)
        return ivl_serve_fail(e, 400, param, "%s: the image is larger than %zu bytes (server "
                              "option --max-image-bytes)", param, o->max_bytes);
    FILE *f = fopen(real, "rb");
    if (!f) return ivl_serve_fail(e, 400, param, "%s: cannot be read: %s", param, strerror(errno));
    *len = (size_t)st.st_size;
    *data = ivl_malloc(*len ? *len : 1);
    size_t got = fread(*data, 1, *len, f);
    fclose(f);
    if (got != *len || *len == 0) {
        free(*data);
        *data = NULL;
        return ivl_serve_fail(e, 400, param, "%s: the file is empty or could not be read", param);
    }
    return 0;
}

int ivl_serve_media_fetch(const char *url, const ivl_serve_media_opts *o, const char *param,
                          uint8_t **data, size_t *len, ivl_serve_error *e) {
    *data = NULL;
    *len = 0;
    if (!strncasecmp(url, "data:", 5)) return from_data_url(url, o, param, data, len, e);
    if (!strncasecmp(url, "file://", 7)) return from_file_url(url, o, param, data, len, e);
    if (!strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8))
        return ivl_serve_fail(e, 400, param, "%s: http(s) image URLs are refused: the server does "
                              "not fetch from the network; send the image inline as a data: URL "
                              "(data:image/jpeg;base64,...)", param);
    return ivl_serve_fail(e, 400, param, "%s: unsupported image URL (use a data: URL, or file:// "
                          "under --allowed-local-media)", param);
}
