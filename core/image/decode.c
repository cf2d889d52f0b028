// decode.c - format sniffing, reading files, dispatch to the decoders (JPEG, PNG, WebP, GIF,
// BMP, TIFF), the shared pixel-limit check.
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

int ivl_image_check_size(const char *name, const char *fmt, int64_t w, int64_t h,
                         int64_t max_pixels) {
    // w and h come from headers (up to 2^32 each): the product is formatted unsigned, found by
    // fuzz_image_formats (a signed w * h overflowed for a BMP of 4294967272 x 4278190061).
    if (w <= 0 || h <= 0)
        return ivl_image_fail(IVL_IMAGE_E_CORRUPT, "%s: corrupt %s: size %lldx%lld in the header",
                              name, fmt, (long long)w, (long long)h);
    if (w > (1 << 28) || h > (1 << 28) || w * h > max_pixels)
        return ivl_image_fail(IVL_IMAGE_E_TOO_LARGE,
                              "%s: %s is %lldx%lld = %llu pixels, above the limit of %lld "
                              "(possible decompression bomb)", name, fmt, (long long)w,
                              (long long)h, (unsigned long long)w * (unsigned long long)h,
                              (long long)max_pixels);
    return IVL_IMAGE_OK;
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

static int decode_any(const void *data, size_t size, const char *name, int64_t max_pixels,
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
    case IVL_IMAGE_FMT_WEBP: return ivl_image_decode_webp(data, size, name, max_pixels, out);
    case IVL_IMAGE_FMT_GIF: return ivl_image_decode_gif(data, size, name, max_pixels, out);
    case IVL_IMAGE_FMT_BMP: return ivl_image_decode_bmp(data, size, name, max_pixels, out);
    case IVL_IMAGE_FMT_TIFF: return ivl_image_decode_tiff(data, size, name, max_pixels, out);
    default:
        return ivl_image_fail(IVL_IMAGE_E_NOT_IMAGE,
                              "%s: not an image (no JPEG, PNG, WebP, GIF, BMP or TIFF signature "
                              "in the first bytes; %zu bytes)", name, size);
    }
}

int ivl_image_decode_oriented(const void *data, size_t size, const char *name,
                              int64_t max_pixels, int exif_transpose, ivl_image *out) {
    int st = decode_any(data, size, name, max_pixels, out);
    // (a TIFF's Orientation is applied by its decoder already, as Pillow's loader does)
    if (st != IVL_IMAGE_OK || !exif_transpose || ivl_image_sniff(data, size) == IVL_IMAGE_FMT_TIFF)
        return st;
    st = ivl_image_apply_orientation(out, ivl_image_exif_orientation(data, size));
    if (st) ivl_image_free(out);
    return st;
}

int ivl_image_decode(const void *data, size_t size, const char *name, int64_t max_pixels,
                     ivl_image *out) {
    return ivl_image_decode_oriented(data, size, name, max_pixels, 0, out);
}

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a plain file";
}

int ivl_image_load_ex(const char *path, int64_t max_pixels, int64_t max_bytes,
                      int exif_transpose, ivl_image *out) {
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
    int rc = ivl_image_decode_oriented(buf, n, path, max_pixels, exif_transpose, out);
    free(buf);
    return rc;
}

int ivl_image_load_bounded(const char *path, int64_t max_pixels, int64_t max_bytes, ivl_image *out) {
    return ivl_image_load_ex(path, max_pixels, max_bytes, 0, out);
}

int ivl_image_load(const char *path, int64_t max_pixels, ivl_image *out) {
    return ivl_image_load_ex(path, max_pixels, IVL_IMAGE_DEFAULT_MAX_FILE_BYTES, 0, out);
}

int ivl_image_load_oriented(const char *path, int64_t max_pixels, int exif_transpose,
                            ivl_image *out) {
    return ivl_image_load_ex(path, max_pixels, IVL_IMAGE_DEFAULT_MAX_FILE_BYTES, exif_transpose,
                             out);
}

void ivl_image_free(ivl_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}
