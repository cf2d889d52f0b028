// convert.h - Hugging Face InternVL checkpoint folder -> one HDF5 model file
// (weights/SCHEMA.md). Used by `internvl convert`.
#ifndef IVL_WEIGHTS_CONVERT_H
#define IVL_WEIGHTS_CONVERT_H

#include <stddef.h>

#define IVL_MODEL_FORMAT "internvl-h5"
#define IVL_MODEL_FORMAT_VERSION 1

typedef struct {
    const char *hf_dir;     // folder with config.json, safetensors, tokenizer files
    const char *out_path;   // final file; written as tmp_path, renamed when complete
    const char *tmp_path;   // NULL: "<out_path>.tmp-<pid>"
    int allow_unused;       // checkpoint tensors the engine does not use: warn, not fail
    int progress;           // progress bar on stderr
    int quantize_bits;      // --quantize int8|int4: 8 or 4 (0: keep the checkpoint's floats)
    long long group_size;   // --group-size N (0: int8 per output row, int4 128)
    int quantize_vision;    // --quantize-vision: the ViT and projector too
} ivl_convert_opts;

// Returns 0, or -1 with ivl_last_error() naming the file/tensor; on failure the temporary
// file is removed and out_path is left untouched.
int ivl_convert_hf(const ivl_convert_opts *opts);

// Reads a whole file into a NUL-terminated malloc'ed buffer (*size excludes the NUL).
int ivl_read_file(const char *path, char **data, size_t *size);

#endif
