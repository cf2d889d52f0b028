// image.h - image decoding and InternVL 1.5 preprocessing, bit-exact with the reference
// Python pipeline (PIL Image.open -> convert('RGB') -> dynamic_preprocess -> ToTensor ->
// Normalize). See spec section 7 and core/image/README.md for what matches Pillow and what
// does not.
//
// The steps, each usable on its own:
//   1. decode   ivl_image_load / ivl_image_decode: JPEG (libjpeg-turbo, default settings as
//               Pillow: ISLOW IDCT, fancy upsampling), PNG (libpng), WebP (libwebp), GIF
//               (giflib, first frame), BMP (own reader), TIFF (libtiff, first page) to 8-bit
//               RGB exactly as PIL's Image.convert('RGB') gives it. The format is sniffed
//               from the magic bytes, never from the file name.
//   2. tiling   ivl_tile_grid_select: the (cols, rows) grid of dynamic_preprocess, including
//               CPython's set iteration order of the candidate grids and the tie rule.
//   3. resize   ivl_image_resize_bicubic: Pillow's Image.resize(size, BICUBIC) in the same
//               22-bit fixed point, byte for byte.
//   4. tensor   ivl_image_preprocess: tiles (row-major crops, thumbnail last) normalised to
//               float32 (or bf16) [T, 3, S, S], CHW, ImageNet mean/std, as torchvision's
//               ToTensor + Normalize compute it in float32.
//   5. pipeline ivl_image_pipeline_*: N worker threads decode + preprocess ahead of the
//               consumer, results handed out in submission order.
//
// Not done, on purpose (the reference does not do it either): EXIF orientation is NOT
// applied by default (a rotated phone photo is tiled as stored; *_oriented and
// opts.exif_transpose opt in), no colour management (ICC profiles and
// PNG gAMA/sRGB chunks are ignored), alpha is dropped without compositing on a background.
//
// Errors: decoding returns an ivl_image_status (0 = ok, negative = the kind of failure) and
// puts a message naming the file in ivl_last_error() (core/check.h), so a captioning job can
// record it for that image and go on. No function here calls exit() or aborts on bad input.
// Thread safety: every function is reentrant; nothing here keeps global state except the
// thread-local error message of core/check.h.
#ifndef IVL_IMAGE_H
#define IVL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

// An 8-bit RGB image: rgb[(y * width + x) * 3 + c], rows top to bottom, no padding.
typedef struct ivl_image {
    int width;
    int height;
    uint8_t *rgb;   // malloc'ed; free with ivl_image_free
} ivl_image;

typedef enum {
    IVL_IMAGE_OK             = 0,
    IVL_IMAGE_E_IO           = -1,  // the file cannot be opened or read
    IVL_IMAGE_E_EMPTY        = -2,  // zero bytes
    IVL_IMAGE_E_NOT_IMAGE    = -3,  // no known image signature (a text file, random bytes)
    IVL_IMAGE_E_UNSUPPORTED  = -4,  // a layout of a known format we do not decode (a JPEG
                                    // with 2 or 5+ components, YCbCr/float TIFF, BMP with
                                    // JPEG inside, ...): core/image/README.md lists them
    IVL_IMAGE_E_CORRUPT      = -5,  // the decoder rejected the data
    IVL_IMAGE_E_TRUNCATED    = -6,  // the data ends early (Pillow: "image file is truncated")
    IVL_IMAGE_E_TOO_LARGE    = -7,  // width*height above the limit, found from the header
                                    // before any pixel is decoded (decompression bombs)
    IVL_IMAGE_E_NOMEM        = -8,  // out of memory for the pixels
    IVL_IMAGE_E_ARG          = -9,  // bad argument (NULL, bad size, bad option)
} ivl_image_status;

// Pillow's default hard limit (Image.MAX_IMAGE_PIXELS * 2): above it Pillow raises
// DecompressionBombError. Pass 0 to the functions below to get this default.
#define IVL_IMAGE_DEFAULT_MAX_PIXELS 178956970LL
// Largest image file read by default (the caption command's --max-member-mb default too).
#define IVL_IMAGE_DEFAULT_MAX_FILE_BYTES (256LL << 20)

typedef enum {
    IVL_IMAGE_FMT_UNKNOWN = 0,
    IVL_IMAGE_FMT_JPEG,
    IVL_IMAGE_FMT_PNG,
    IVL_IMAGE_FMT_GIF,
    IVL_IMAGE_FMT_BMP,
    IVL_IMAGE_FMT_WEBP,
    IVL_IMAGE_FMT_TIFF,
} ivl_image_format;

// Format from the first bytes (magic numbers); IVL_IMAGE_FMT_UNKNOWN if none matches.
ivl_image_format ivl_image_sniff(const void *data, size_t size);
const char *ivl_image_format_name(ivl_image_format fmt);
const char *ivl_image_status_name(ivl_image_status st);   // "truncated", "corrupt", ...

// Decodes an image held in memory (a file's bytes, a tar member). `name` is only used in
// error messages (the path or "shard.tar:key.jpg"); NULL gives "<memory>". max_pixels <= 0
// means IVL_IMAGE_DEFAULT_MAX_PIXELS. On success fills *out (free with ivl_image_free) and
// returns IVL_IMAGE_OK; on failure *out is zeroed, the message is in ivl_last_error().
//
// What the RGB is, per source (identical to PIL's Image.open(f).convert('RGB')):
//   JPEG gray -> replicated; YCbCr/RGB -> libjpeg's RGB; 4 components (CMYK or YCCK):
//     Pillow always treats them as Adobe-inverted CMYK, then R = nk - nk*C/255 rounded as
//     Pillow's MULDIV255, with nk = 255 - K, on the inverted values. Truncated JPEG data is
//     an error (libjpeg's "premature end of data" warning is promoted), other libjpeg
//     warnings (extraneous bytes, ...) are ignored as Pillow ignores them.
//   PNG gray 1/2/4/8 bit -> scaled to 8 bit and replicated; gray 16 bit -> Pillow mode "I",
//     so values are CLAMPED to 0..255 (not scaled!); RGB/RGBA/LA 16 bit -> the high byte;
//     palette -> palette colours (tRNS ignored); alpha dropped; interlaced handled.
//   WebP (still or animated: the first frame on its canvas), GIF (first frame), BMP, TIFF
//     (first page): the rules at the top of decode_webp.c, decode_gif.c, decode_bmp.c and
//     decode_tiff.c, summarised in core/image/README.md.
int ivl_image_decode(const void *data, size_t size, const char *name, int64_t max_pixels,
                     ivl_image *out);
// Reads the file at `path` (any name, the content decides the format) and decodes it. Only
// a regular file is read (a FIFO, device or directory fails with IVL_IMAGE_E_NOT_IMAGE and
// nothing is read: it is opened with O_NONBLOCK and checked with fstat), and only when its
// size is at most max_bytes (else IVL_IMAGE_E_TOO_LARGE before any byte is read; <= 0 means
// IVL_IMAGE_DEFAULT_MAX_FILE_BYTES). ivl_image_load uses the default limit.
int ivl_image_load_bounded(const char *path, int64_t max_pixels, int64_t max_bytes, ivl_image *out);
int ivl_image_load(const char *path, int64_t max_pixels, ivl_image *out);
void ivl_image_free(ivl_image *img);

// The same, then, when exif_transpose is 1, the EXIF orientation applied as Pillow's
// ImageOps.exif_transpose does (opt-in: the reference pipeline never applies it).
int ivl_image_decode_oriented(const void *data, size_t size, const char *name,
                              int64_t max_pixels, int exif_transpose, ivl_image *out);
int ivl_image_load_oriented(const char *path, int64_t max_pixels, int exif_transpose,
                            ivl_image *out);
// Both: the bounded read of ivl_image_load_bounded and the orientation of _oriented.
int ivl_image_load_ex(const char *path, int64_t max_pixels, int64_t max_bytes,
                      int exif_transpose, ivl_image *out);

// EXIF Orientation (1..8) as Pillow's getexif() finds it: JPEG's first APP1 "Exif", PNG's
// eXIf chunk / "Raw profile type exif" text / XMP tiff:Orientation, WebP's EXIF chunk, a
// TIFF's first IFD. 1 when there is none or it is not one integer in 1..8 (core/image/exif.c).
int ivl_image_exif_orientation(const void *data, size_t size);
// Transposes img in place for an orientation as ImageOps.exif_transpose: 2 FLIP_LEFT_RIGHT,
// 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90
// (5..8 swap width and height); anything else leaves it. 0, or IVL_IMAGE_E_NOMEM.
int ivl_image_apply_orientation(ivl_image *img, int orientation);

// ---------------------------------------------------------------------------------------
// Dynamic tiling (spec 7.1)
// ---------------------------------------------------------------------------------------

typedef struct ivl_tile_ratio {
    int cols;   // i in the reference: tiles across
    int rows;   // j: tiles down
} ivl_tile_ratio;

// Largest max_num accepted (memory and candidate list bound; the models use 6..40).
#define IVL_TILE_MAX_NUM 256

// The reference's candidate list: sorted(set((i, j) for n in range(min_num, max_num + 1)
// for i in 1..n for j in 1..n if min_num <= i*j <= max_num), key=i*j), i.e. ordered by
// i*j and, within equal products, in CPython's set iteration order, which this function
// reproduces by replaying CPython's (3.8+) tuple hash and set insertion. Writes up to `cap`
// entries and returns the full count, or -1 (with ivl_last_error) for bad bounds
// (need 1 <= min_num <= max_num <= IVL_TILE_MAX_NUM).
int ivl_tile_candidates(int min_num, int max_num, ivl_tile_ratio *out, int cap);

typedef struct ivl_tile_grid {
    int cols, rows;      // chosen grid; the image is resized to (S*cols) x (S*rows)
    int thumbnail;       // 1 if a thumbnail tile (the whole image at S x S) comes last
    int ntiles;          // cols*rows + thumbnail
} ivl_tile_grid;

// find_closest_aspect_ratio + the tile count of dynamic_preprocess for an image of
// width x height: the candidate with the closest aspect ratio in list order; on an exact
// tie a later candidate replaces the best iff width*height > 0.5*S*S*cols*rows.
// use_thumbnail adds the thumbnail tile when cols*rows != 1. Returns 0, or -1 for bad args.
int ivl_tile_grid_select(int width, int height, int min_num, int max_num, int image_size,
                         int use_thumbnail, ivl_tile_grid *out);

// ---------------------------------------------------------------------------------------
// Resize and tensors
// ---------------------------------------------------------------------------------------

// Pillow's Image.resize((dw, dh), Image.BICUBIC) of an RGB image, bit for bit: separable,
// horizontal pass first (only over the source rows the vertical pass reads) into a uint8
// intermediate, support 2*max(scale,1), 22-bit fixed point coefficients. A pass whose size
// is unchanged is skipped (same size both ways is a copy). dst holds dw*dh*3 bytes.
// Returns 0, or -1 (ivl_last_error) on bad sizes or out of memory.
int ivl_image_resize_bicubic(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh);

typedef struct ivl_preprocess_opts {
    int image_size;      // S: tile side, 448 for every InternVL 1.5 model
    int min_tiles;       // min_num, 1
    int max_tiles;       // max_num: 12 in the config and chat demo, 6 in the old README
    int use_thumbnail;   // 1 for InternVL 1.5 (config use_thumbnail=True)
    ivl_dtype dtype;     // IVL_F32 (what the reference makes) or IVL_BF16 (its .to(bf16), RNE);
                         // IVL_U8: the HWC uint8 tiles before normalising (ivl_image_tiles_u8;
                         // ivl_tiles_normalize_f32 later gives the F32 bits)
    int64_t max_pixels;  // decode limit; <= 0 means IVL_IMAGE_DEFAULT_MAX_PIXELS
    int64_t max_file_bytes;  // files read by path: size limit; <= 0 means
                             // IVL_IMAGE_DEFAULT_MAX_FILE_BYTES (ivl_image_load_bounded)
    int exif_transpose;  // pipeline: 1 applies the EXIF orientation after decoding (not the
                         // reference's behaviour; --exif-transpose)
} ivl_preprocess_opts;

// {448, 1, 12, 1, IVL_F32, IVL_IMAGE_DEFAULT_MAX_PIXELS, IVL_IMAGE_DEFAULT_MAX_FILE_BYTES, 0}
ivl_preprocess_opts ivl_preprocess_defaults(void);

// ImageNet mean and std, as torchvision.transforms.Normalize gets them (float32).
extern const float ivl_image_mean[3];
extern const float ivl_image_std[3];

// The uint8 tiles of dynamic_preprocess: out is [grid.ntiles, S, S, 3] (HWC, as PIL's
// tiles converted by np.array): tile k < cols*rows is the crop at column k % cols, row
// k / cols of the image resized to (S*cols, S*rows); the thumbnail (the original resized to
// S x S) is last. `out` holds grid->ntiles*S*S*3 bytes. Returns 0 or -1.
int ivl_image_tiles_u8(const ivl_image *img, const ivl_tile_grid *grid, int image_size,
                       uint8_t *out);

// ToTensor + Normalize of n HWC uint8 tiles into [n, 3, S, S] CHW: ((u8 / 255.f) - mean[c])
// / std[c], every step in float32 as torch does it. The bf16 variant rounds that float to
// bf16 (round to nearest even), as pixel_values.to(torch.bfloat16).
void ivl_tiles_normalize_f32(const uint8_t *hwc, int ntiles, int image_size, float *chw);
void ivl_tiles_normalize_bf16(const uint8_t *hwc, int ntiles, int image_size, uint16_t *chw);

// The whole per-image reference pipeline on a decoded image: picks the grid, resizes,
// crops and normalises. *pixels is malloc'ed [grid->ntiles, 3, S, S] of opts->dtype (F32 or
// BF16), or [grid->ntiles, S, S, 3] uint8 for IVL_U8 (not normalised); free() it. Returns 0, or -1 (ivl_last_error) on bad options or out of memory.
int ivl_image_preprocess(const ivl_image *img, const ivl_preprocess_opts *opts,
                         ivl_tile_grid *grid, void **pixels);

// ---------------------------------------------------------------------------------------
// Pipeline: decode + preprocess on worker threads, ahead of the consumer
// ---------------------------------------------------------------------------------------
//
// Usage (one producer/consumer thread; a separate producer thread works too):
//     ivl_image_pipeline *p = ivl_image_pipeline_create(4, 16, &opts);
//     for each image:  ivl_image_pipeline_submit(p, &src, user);   // blocks while 16 are
//                      ... and/or ivl_image_pipeline_next(p, &r);  // in flight, so in one
//     ivl_image_pipeline_close(p);                                  // thread interleave:
//     while (ivl_image_pipeline_next(p, &r) == 0) { use r; ivl_image_result_free(&r); }
//     ivl_image_pipeline_free(p);
// A single thread must not submit while ivl_image_pipeline_in_flight(p) == capacity (it
// would wait for itself): pull a result first.

typedef struct ivl_image_source {
    const char *path;    // read from this file, or else:
    const void *data;    // the encoded bytes (e.g. a tar member), `size` of them
    size_t size;
    const char *name;    // for messages (default: path, or "<memory>"); copied
    int take_data;       // 1: the pipeline owns `data` and free()s it; 0: it copies it
} ivl_image_source;

typedef struct ivl_image_result {
    int64_t index;          // submission order, 0-based; results come out in this order
    void *user;             // what was passed to submit
    int status;             // IVL_IMAGE_OK, an ivl_image_status, or -1 for a preprocess error
    char error[512];        // the message when status != 0 (names the file)
    int width, height;      // decoded size
    ivl_tile_grid grid;
    ivl_dtype dtype;        // of pixels
    void *pixels;           // [grid.ntiles, 3, S, S]; NULL on error
    double decode_s, preprocess_s;   // time spent on the worker, seconds
} ivl_image_result;

typedef struct ivl_image_pipeline ivl_image_pipeline;

// nthreads >= 1 workers; capacity >= 1: most images submitted but not yet pulled (bounds
// the memory: each holds up to ~ (max_tiles+1) * 3 * S*S * 4 bytes of pixels). NULL
// opts = ivl_preprocess_defaults(). Returns NULL (ivl_last_error) on bad arguments.
ivl_image_pipeline *ivl_image_pipeline_create(int nthreads, int capacity,
                                              const ivl_preprocess_opts *opts);
// Queues one image. Blocks while `capacity` images are in flight. Returns its index, or
// -1 after close or on a bad source.
int64_t ivl_image_pipeline_submit(ivl_image_pipeline *p, const ivl_image_source *src,
                                  void *user);
// Waits for the oldest unpulled image and moves its result into *out (0). Returns 1 when
// nothing is in flight and the pipeline is closed; with nothing in flight and not closed
// it waits for another thread to submit.
int ivl_image_pipeline_next(ivl_image_pipeline *p, ivl_image_result *out);
int ivl_image_pipeline_in_flight(ivl_image_pipeline *p);
int ivl_image_pipeline_capacity(const ivl_image_pipeline *p);
// No more submits; next() then drains what is queued and returns 1.
void ivl_image_pipeline_close(ivl_image_pipeline *p);
// Stops the workers (finishing the images they hold) and frees everything, including
// results never pulled.
void ivl_image_pipeline_free(ivl_image_pipeline *p);
void ivl_image_result_free(ivl_image_result *r);

#endif
