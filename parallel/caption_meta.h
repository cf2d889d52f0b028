// caption_meta.h - `internvl caption --keep-meta`: a sample's metadata as the JSON object that
// goes under "meta" in its output line.
//
// Sources: a WebDataset sample's KEY.json member (its fields are copied) and KEY.txt member
// (copied as "source_text"); a list file's optional third column (a JSON object's fields,
// or any other text as "source_text"). The result is always a valid UTF-8 JSON object:
// invalid UTF-8 bytes become U+FFFD; a .json that is not a JSON object, or metadata over the
// size limit, gives {"meta_error": "..."} (with source_text kept when it fits) instead of
// failing the image.
#ifndef IVL_PARALLEL_CAPTION_META_H
#define IVL_PARALLEL_CAPTION_META_H

#include <stddef.h>
#include <stdint.h>

// Default size limit of one sample's metadata (json + txt bytes): 64 KiB.
#define IVL_CAP_META_DEFAULT_MAX_BYTES (64 * 1024)

// Builds the "meta" object's text (compact JSON, malloc'ed). json/txt may be NULL (absent);
// `what` names the sample in messages ("shard.tar:KEY"). json_over/txt_over > 0: that
// member was not read because it has that many bytes, above max_bytes.
char *ivl_cap_meta_build(const char *json, size_t json_n, int64_t json_over, const char *txt,
                         size_t txt_n, int64_t txt_over, int64_t max_bytes, const char *what);

// A list file's third column: a JSON object's fields, or the text as "source_text".
char *ivl_cap_meta_from_column(const char *col, int64_t max_bytes, const char *what);

// Copies n bytes, replacing every invalid UTF-8 sequence (and NUL) with U+FFFD; NUL-terminated.
char *ivl_cap_utf8_clean(const char *s, size_t n);

#endif
