// exif.c - the EXIF Orientation of an encoded image and the transposition Pillow's
// ImageOps.exif_transpose applies for it (only with --exif-transpose: the reference pipeline
// does not call it, so it is off by default).
//
// Where Pillow 9.4's getexif() finds the orientation (tag 0x0112 of the first IFD of the EXIF
// block), copied here:
//   JPEG  the first APP1 segment starting "Exif\0\0"
//   PNG   the eXIf chunk (anywhere: getexif loads the file), else a tEXt/zTXt/iTXt chunk
//         "Raw profile type exif" (hex after its third line: ImageMagick writes these), else
//         an XMP packet in an iTXt/tEXt "XML:com.adobe.xmp" with tiff:Orientation="N" or
//         <tiff:Orientation>N
//   WebP  the EXIF chunk of the VP8X container
//   TIFF  the first page's own IFD (its Orientation tag). Pillow's TIFF loader applies that
//         tag itself (TiffImageFile.load_end), so decode_tiff.c always does, and
//         ivl_image_decode_oriented does not apply it a second time. (Pillow 9.4's
//         exif_transpose then transposes a TIFF again: a Pillow bug we do not copy.)
//   GIF, BMP: none.
// The tag counts when it holds one integer (BYTE, SHORT, LONG or their signed forms); values
// other than 2..8 leave the image as it is. An EXIF block Pillow could not parse (bad TIFF
// header) makes Pillow's exif_transpose raise; here it just means "no orientation".
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/image/image_internal.h"

static unsigned rd16(const uint8_t *p, int be) { return be ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0]; }
static uint32_t rd32(const uint8_t *p, int be) {
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

// Orientation tag of the first IFD of a TIFF-structured block (EXIF payload or a TIFF file):
// -1 when there is none (or the block does not parse), else its value, 0 when it is not an
// integer (Pillow then has the tag but no transposition for it). Like Pillow's IFD reader
// (which knows the tag holds one value), a tag with several values counts as its first.
static int tiff_orientation(const uint8_t *t, size_t n) {
    if (n >= 6 && !memcmp(t, "Exif\0\0", 6)) t += 6, n -= 6;
    if (n < 8) return -1;
    int be;
    if (!memcmp(t, "II*\0", 4)) be = 0;
    else if (!memcmp(t, "MM\0*", 4)) be = 1;
    else return -1;
    uint32_t off = rd32(t + 4, be);
    if (off > n || n - off < 2) return -1;
    unsigned cnt = rd16(t + off, be);
    for (unsigned i = 0; i < cnt; i++) {
        size_t e = (size_t)off + 2 + 12 * (size_t)i;
        if (e + 12 > n) return -1;
        if (rd16(t + e, be) != 0x0112) continue;
        unsigned type = rd16(t + e + 2, be);
        uint32_t count = rd32(t + e + 4, be);
        unsigned tsize = type == 1 || type == 6 ? 1 : type == 3 || type == 8 ? 2
                       : type == 4 || type == 9 ? 4 : 0;
        if (count < 1 || !tsize) return 0;
        size_t at = e + 8;                                       // inline value
        if ((uint64_t)tsize * count > 4) {                        // values elsewhere
            at = rd32(t + e + 8, be);
            if (at > n || n - at < tsize) return 0;
        }
        long v;
        switch (type) {
        case 1: v = t[at]; break;
        case 6: v = (int8_t)t[at]; break;
        case 3: v = rd16(t + at, be); break;
        case 8: v = (int16_t)rd16(t + at, be); break;
        case 4: v = rd32(t + at, be); break;
        default: v = (int32_t)rd32(t + at, be); break;
        }
        return v >= 1 && v <= 8 ? (int)v : 0;
    }
    return -1;
}

static int jpeg_orientation(const uint8_t *d, size_t n) {
    size_t i = 2;
    while (i + 4 <= n) {
        if (d[i] != 0xFF) return -1;
        unsigned m = d[i + 1];
        if (m == 0xFF) { i++; continue; }                       // fill byte
        if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) { i += 2; continue; }
        if (m == 0xDA || m == 0xD9) return -1;                  // scan: no APPn after it
        size_t len = (size_t)d[i + 2] << 8 | d[i + 3];
        if (len < 2 || i + 2 + len > n) return -1;
        if (m == 0xE1 && len >= 8 && !memcmp(d + i + 4, "Exif\0\0", 6))
            return tiff_orientation(d + i + 4, len - 2);        // the first one decides
        i += 2 + len;
    }
    return -1;
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

// "Raw profile type exif" text: hex digits after the third newline (whitespace skipped).
static int raw_profile_orientation(const char *s, size_t n) {
    size_t i = 0;
    for (int nl = 0; i < n && nl < 3; i++) nl += s[i] == '\n';
    uint8_t *b = malloc(n / 2 + 1);
    if (!b) return -1;
    size_t m = 0;
    int hi = -1;
    for (; i < n; i++) {
        int v = hexval((unsigned char)s[i]);
        if (v < 0) {
            if (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') continue;
            free(b);
            return -1;                                           // fromhex would fail
        }
        if (hi < 0) hi = v;
        else b[m++] = (uint8_t)(hi << 4 | v), hi = -1;
    }
    int o = hi < 0 ? tiff_orientation(b, m) : -1;
    free(b);
    return o;
}

// tiff:Orientation="N" or tiff:Orientation>N in an XMP packet (the first match), else -1.
static int xmp_orientation(const char *s, size_t n) {
    static const char k[] = "tiff:Orientation";
    for (size_t i = 0; i + sizeof k + 1 <= n; i++) {
        if (memcmp(s + i, k, sizeof k - 1)) continue;
        size_t j = i + sizeof k - 1;
        if (s[j] == '>' && j + 1 < n && s[j + 1] >= '0' && s[j + 1] <= '9') return s[j + 1] - '0';
        if (s[j] == '=' && j + 2 < n && s[j + 1] == '"' && s[j + 2] >= '0' && s[j + 2] <= '9')
            return s[j + 2] - '0';
    }
    return -1;
}

// Text of a tEXt / zTXt / iTXt chunk whose keyword is `kw`, malloc'ed (NULL otherwise).
static char *png_text(const uint8_t *c, size_t len, const char *type, const char *kw, size_t *out_n) {
    size_t kl = strlen(kw);
    if (len < kl + 1 || memcmp(c, kw, kl) || c[kl] != 0) return NULL;
    const uint8_t *p = c + kl + 1;
    size_t rest = len - kl - 1;
    int compressed = 0;
    if (!memcmp(type, "zTXt", 4)) {
        if (rest < 1) return NULL;
        compressed = 1, p++, rest--;
    } else if (!memcmp(type, "iTXt", 4)) {
        if (rest < 2) return NULL;
        compressed = p[0];
        p += 2, rest -= 2;
        for (int skip = 0; skip < 2; skip++) {                   // language tag, translated keyword
            const uint8_t *z = memchr(p, 0, rest);
            if (!z) return NULL;
            rest -= (size_t)(z - p) + 1;
            p = z + 1;
        }
    }
    if (!compressed) {
        char *s = malloc(rest + 1);
        if (!s) return NULL;
        memcpy(s, p, rest);
        s[rest] = 0;
        *out_n = rest;
        return s;
    }
    size_t cap = 1 << 20;                                       // Pillow reads text chunks up to 1 MB
    char *s = malloc(cap + 1);
    if (!s) return NULL;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) { free(s); return NULL; }
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)rest;
    z.next_out = (Bytef *)s;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    size_t got = cap - z.avail_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END) { free(s); return NULL; }
    s[got] = 0;
    *out_n = got;
    return s;
}

static int png_orientation(const uint8_t *d, size_t n) {
    // Pillow: info["exif"] (eXIf) else "Raw profile type exif"; XMP only when that EXIF
    // block has no Orientation.
    int exif = -1, raw = -1, xmp = -1, have_exif = 0, have_raw = 0, have_xmp = 0;
    for (size_t i = 8; i + 12 <= n;) {
        size_t len = rd32(d + i, 1);
        const char *type = (const char *)d + i + 4;
        if (len > n - i - 12) break;
        const uint8_t *c = d + i + 8;
        if (!memcmp(type, "eXIf", 4) && !have_exif) {
            exif = tiff_orientation(c, len);
            have_exif = 1;
        } else if (!memcmp(type, "tEXt", 4) || !memcmp(type, "zTXt", 4) || !memcmp(type, "iTXt", 4)) {
            size_t tn = 0;
            char *t;
            if (!have_raw && (t = png_text(c, len, type, "Raw profile type exif", &tn))) {
                raw = raw_profile_orientation(t, tn);
                have_raw = 1;
                free(t);
            } else if (!have_xmp && (t = png_text(c, len, type, "XML:com.adobe.xmp", &tn))) {
                xmp = xmp_orientation(t, tn);
                have_xmp = 1;
                free(t);
            }
        }
        if (!memcmp(type, "IEND", 4)) break;
        i += 12 + len;
    }
    int o = have_exif ? exif : raw;
    return o >= 0 ? o : xmp;
}

static int webp_orientation(const uint8_t *d, size_t n) {
    for (size_t i = 12; i + 8 <= n;) {
        uint32_t len = rd32(d + i + 4, 0);
        if (len > n - i - 8) return -1;
        if (!memcmp(d + i, "EXIF", 4)) return tiff_orientation(d + i + 8, len);
        i += 8 + (size_t)len + (len & 1);
    }
    return -1;
}

int ivl_image_tiff_orientation(const uint8_t *data, size_t size) {
    int o = tiff_orientation(data, size);
    return o >= 1 && o <= 8 ? o : 1;
}

int ivl_image_exif_orientation(const void *data, size_t size) {
    if (!data) return 1;
    const uint8_t *d = data;
    int o = -1;
    switch (ivl_image_sniff(data, size)) {
    case IVL_IMAGE_FMT_JPEG: o = jpeg_orientation(d, size); break;
    case IVL_IMAGE_FMT_PNG: o = png_orientation(d, size); break;
    case IVL_IMAGE_FMT_WEBP: o = webp_orientation(d, size); break;
    case IVL_IMAGE_FMT_TIFF: o = tiff_orientation(d, size); break;
    default: break;
    }
    return o >= 1 && o <= 8 ? o : 1;
}

int ivl_image_apply_orientation(ivl_image *img, int orientation) {
    if (!img || !img->rgb || orientation < 2 || orientation > 8) return 0;
    const int64_t W = img->width, H = img->height;
    const int swap = orientation >= 5;                 // 5..8 exchange width and height
    const int64_t ow = swap ? H : W, oh = swap ? W : H;
    uint8_t *out = malloc((size_t)(W * H) * 3);
    if (!out) return ivl_image_fail(IVL_IMAGE_E_NOMEM, "out of memory transposing a %lldx%lld image",
                                    (long long)W, (long long)H);
    for (int64_t y = 0; y < oh; y++)
        for (int64_t x = 0; x < ow; x++) {
            int64_t sx, sy;
            switch (orientation) {
            case 2: sx = W - 1 - x, sy = y; break;              // FLIP_LEFT_RIGHT
            case 3: sx = W - 1 - x, sy = H - 1 - y; break;      // ROTATE_180
            case 4: sx = x, sy = H - 1 - y; break;              // FLIP_TOP_BOTTOM
            case 5: sx = y, sy = x; break;                      // TRANSPOSE
            case 6: sx = y, sy = H - 1 - x; break;              // ROTATE_270 (clockwise)
            case 7: sx = W - 1 - y, sy = H - 1 - x; break;      // TRANSVERSE
            default: sx = W - 1 - y, sy = x; break;             // 8: ROTATE_90
            }
            memcpy(out + (y * ow + x) * 3, img->rgb + (sy * W + sx) * 3, 3);
        }
    free(img->rgb);
    img->rgb = out;
    img->width = (int)ow;
    img->height = (int)oh;
    return 0;
}
