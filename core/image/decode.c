// decode.c - format sniffing, reading files, dispatch to the JPEG/PNG decoders.
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/check.h"
#include "core/image/image_internal.h"

int ivl_image_fail(ivl_image_status st, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ivl_errorf("%s", buf);
    return st;
}

ivl_image_format ivl_image_sniff(const void *data, size_t n) {
    const uint8_t *p = data;
    if (!p) return IVL_IMAGE_FMT_UNKNOWN;
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return IVL_IMAGE_FMT_JPEG;
    if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return IVL_IMAGE_FMT_PNG;
    if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) return IVL_IMAGE_FMT_GIF;
    if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) return IVL_IMAGE_FMT_WEBP;
    if (n >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4))) return IVL_IMAGE_FMT_TIFF;
    if (n >= 2 && p[0] == 'B' && p[1] == 'M') return IVL_IMAGE_FMT_BMP;
    return IVL_IMAGE_FMT_UNKNOWN;
}

const char *ivl_image_format_name(ivl_image_format f) {
    switch (f) {
    case IVL_IMAGE_FMT_JPEG: return "JPEG";
    case IVL_IMAGE_FMT_PNG: return "PNG";
    case IVL_IMAGE_FMT_GIF: return "GIF";
    case IVL_IMAGE_FMT_BMP: return "BMP";
    case IVL_IMAGE_FMT_WEBP: return "WebP";
    case IVL_IMAGE_FMT_TIFF: return "TIFF";
    default: return "unknown";
    }
}

const char *ivl_image_status_name(ivl_image_status st) {
    switch (st) {
    case IVL_IMAGE_OK: return "ok";
    case IVL_IMAGE_E_IO: return "io";
    case IVL_IMAGE_E_EMPTY: return "empty";
    case IVL_IMAGE_E_NOT_IMAGE: return "not_image";
    case IVL_IMAGE_E_UNSUPPORTED: return "unsupported";
    case IVL_IMAGE_E_CORRUPT: return "corrupt";
    case IVL_IMAGE_E_TRUNCATED: return "truncated";
    case IVL_IMAGE_E_TOO_LARGE: return "too_large";
    case IVL_IMAGE_E_NOMEM: return "nomem";
    case IVL_IMAGE_E_ARG: return "arg";
    }
    return "?";
}

int ivl_image_decode(const void *data, size_t size, const char *name, int64_t max_pixels,
                     ivl_image *out) {
    if (!name) name = "<memory>";
    if (!out) return ivl_image_fail(IVL_IMAGE_E_ARG, "%s: no output image given", name);
    memset(out, 0, sizeof *out);
    if (max_pixels <= 0) max_pixels = IVL_IMAGE_DEFAULT_MAX_PIXELS;
    if (size == 0) return ivl_image_fail(IVL_IMAGE_E_EMPTY, "%s: empty file (0 bytes), not an image", name);
    if (!data) return ivl_image_fail(IVL_IMAGE_E_ARG, "%s: NULL data", name);
    ivl_image_format fmt = ivl_image_sniff(data, size);
    switch (fmt) {
    case IVL_IMAGE_FMT_JPEG: return ivl_image_decode_jpeg(data, size, name, max_pixels, out);
    case IVL_IMAGE_FMT_PNG: return ivl_image_decode_png(data, size, name, max_pixels, out);
    case IVL_IMAGE_FMT_UNKNOWN:
        return ivl_image_fail(IVL_IMAGE_E_NOT_IMAGE,
                              "%s: not an image (no JPEG or PNG signature in the first bytes; "
                              "%zu bytes)", name, size);
    default:
        return ivl_image_fail(IVL_IMAGE_E_UNSUPPORTED,
                              "%s: %s images are not supported (only JPEG and PNG); convert it "
                              "first", name, ivl_image_format_name(fmt));
    }
}

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a plain file";
}

int ivl_image_load_bounded(const char *path, int64_t max_pixels, int64_t max_bytes, ivl_image *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!path) return ivl_image_fail(IVL_IMAGE_E_ARG, "ivl_image_load: NULL path");
    if (max_bytes <= 0) max_bytes = IVL_IMAGE_DEFAULT_MAX_FILE_BYTES;
    // O_NONBLOCK: opening a FIFO without a writer must not wait; the type is checked on the
    // open file (fstat), so what is read is what was checked.
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return ivl_image_fail(IVL_IMAGE_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ivl_image_fail(IVL_IMAGE_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ivl_image_fail(IVL_IMAGE_E_NOT_IMAGE, "%s: is %s, not a regular file; not read",
                              path, file_kind(st.st_mode));
    }
    if (st.st_size > max_bytes) {
        close(fd);
        return ivl_image_fail(IVL_IMAGE_E_TOO_LARGE, "%s: file of %lld bytes, above the limit of "
                              "%lld bytes; not read", path, (long long)st.st_size,
                              (long long)max_bytes);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return ivl_image_fail(IVL_IMAGE_E_NOMEM, "%s: out of memory reading the file", path);
    }
    size_t n = 0;
    while (n < size) {   // at most the size seen by fstat: a file that grows is not followed
        ssize_t got = read(fd, buf + n, size - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return ivl_image_fail(IVL_IMAGE_E_IO, "%s: read error: %s", path, strerror(e));
        }
        if (got == 0) break;   // it shrank: decode what is there (truncated, most likely)
        n += (size_t)got;
    }
    close(fd);
    int rc = ivl_image_decode(buf, n, path, max_pixels, out);
    free(buf);
    return rc;
}

int ivl_image_load(const char *path, int64_t max_pixels, ivl_image *out) {
    return ivl_image_load_bounded(path, max_pixels, IVL_IMAGE_DEFAULT_MAX_FILE_BYTES, out);
}

void ivl_image_free(ivl_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}
