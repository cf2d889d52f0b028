// caption_input.h - the inputs of `internvl caption`, cut into units. A unit is the set of
// images that go into one output file, so it can finish (and be marked done) on its own:
//   - a WebDataset tar shard (one unit per .tar; brace ranges shards/{00000..00999}.tar are
//     expanded here). Members with an image extension (jpg jpeg png gif bmp webp tif tiff) are
//     images; their key is the member name up to the first '.' of its last component (the
//     WebDataset sample key). Other members (txt, json, cls: sample metadata) are ignored,
//     except with --keep-meta (unit.meta_max_bytes > 0): the sample's KEY.json and KEY.txt,
//     before or right after its image, become the item's meta (parallel/caption_meta.h).
//     Members whose names are absolute or contain a ".." component are not read: they become
//     error results.
//   - a directory, walked recursively (sorted, so chunks are the same in every run); files
//     with an image extension; key = path relative to the directory without its extension.
//     Cut into chunks of `chunk` images: unit names <dir>-000000, <dir>-000001, ...
//   - a list file: one image per line, "PATH", "KEY<TAB>PATH" or "KEY<TAB>PATH<TAB>META"
//     (relative paths are relative to the list file's folder; blank lines and lines starting
//     with '#' are skipped); key of a bare path = its file name without extension. META (a
//     JSON object or text) is carried into the output with --keep-meta. Chunked like a
//     directory.
// The input must not change between a run and its restart (units and keys must match).
#ifndef IVL_PARALLEL_CAPTION_INPUT_H
#define IVL_PARALLEL_CAPTION_INPUT_H

#include <stddef.h>
#include <stdint.h>

typedef enum { IVL_CAP_TAR = 0, IVL_CAP_FILES = 1 } ivl_cap_unit_kind;

typedef struct {
    char *key;
    char *path;
    char *meta;                 // a list file's third column, or NULL
} ivl_cap_file;

typedef struct {
    ivl_cap_unit_kind kind;
    char *name;                 // output stem: "00012" for shards/00012.tar, "imgs-000000"
    char *tar;                  // IVL_CAP_TAR: the shard's path
    const ivl_cap_file *files;  // IVL_CAP_FILES: this chunk's images (owned by the unit list)
    int64_t nfiles;
    int64_t meta_max_bytes;     // > 0: --keep-meta, items carry meta (set by the caller)
} ivl_cap_unit;

typedef struct {
    ivl_cap_unit *units;
    int n;
    ivl_cap_file **file_lists;  // owned arrays behind the FILES units
    int64_t *file_counts;
    int n_lists;
    int64_t known_images;       // images in FILES units (tar shards are counted as read)
} ivl_cap_inputs;

// Expands the sources. Returns 0, or -1 + ivl_last_error(): a missing or unreadable source,
// a brace range that matches no file, two units with the same name, or no input at all.
int ivl_cap_inputs_build(char *const *srcs, int nsrc, int64_t chunk, ivl_cap_inputs *in);
void ivl_cap_inputs_free(ivl_cap_inputs *in);

// Expands one brace range "a{000..012}b" (zero padding taken from the first bound) into
// *out (malloc'ed strings). A string without braces gives itself. Returns the count or -1.
int ivl_cap_expand_braces(const char *pattern, char ***out);

// 1 when the file name ends in an image extension (case-insensitive).
int ivl_cap_is_image_name(const char *name);

// One image as the reader hands it out: bytes in memory (tar member) or a path, or an
// error found before decoding (a member that escapes, a member that cannot be read).
typedef struct {
    char *key;
    char *source;    // "shard.tar:member" or the path (for messages and the result)
    char *path;      // read from this file, or:
    void *data;      // the member's bytes (malloc'ed)
    size_t size;
    char *error;     // non-NULL: the image failed already
    int retry;       // with error: not the image's fault (the shard is cut or unreadable):
                     // no result line, the next run retries it (caption_retry.h)
    char *meta;      // --keep-meta: the "meta" object's JSON text (caption_meta.h), or NULL
} ivl_cap_item;

void ivl_cap_item_free(ivl_cap_item *it);

typedef struct ivl_cap_reader ivl_cap_reader;

// Opens a unit for reading. -1 + ivl_last_error() when a tar shard cannot be opened.
int ivl_cap_reader_open(const ivl_cap_unit *u, int64_t max_member_bytes, ivl_cap_reader **r);
// 1: *it filled; 0: end of the unit; -1: the unit cannot be read further (corrupt or
// truncated tar), ivl_last_error() says where. skip(ctx, key) (may be NULL) is asked before
// a member's bytes are read; when it returns 1 the image is passed over (already done).
int ivl_cap_reader_next(ivl_cap_reader *r, ivl_cap_item *it,
                        int (*skip)(void *ctx, const char *key), void *ctx);
void ivl_cap_reader_close(ivl_cap_reader *r);

#endif
