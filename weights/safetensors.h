// safetensors.h - read-only access to a Hugging Face checkpoint's tensors: one
// model.safetensors, or shards listed by model.safetensors.index.json (weight_map).
//
// Opening parses every header (with cJSON) and checks every entry against its file: header
// length past EOF, dtype not BF16/F16/F32, size != numel * dtype size, offsets out of range,
// overlapping tensors, a truncated file. Tensor data is never loaded at open; ivl_st_read
// pread()s the bytes of one tensor (or a row range of it) into the caller's buffer.
#ifndef IVL_WEIGHTS_SAFETENSORS_H
#define IVL_WEIGHTS_SAFETENSORS_H

#include <stdint.h>

#include "core/tensor.h"

typedef struct {
    const char *name;
    ivl_dtype dtype;
    int ndim;
    int64_t shape[IVL_MAX_DIMS];
    int file;              // index into the checkpoint's files
    uint64_t offset;       // absolute byte offset in the file
    uint64_t nbytes;
} ivl_st_tensor;

typedef struct ivl_st_checkpoint ivl_st_checkpoint;

// dir: the HF folder. Returns 0, or -1 with ivl_last_error() naming the file and tensor.
int ivl_st_open_dir(const char *dir, ivl_st_checkpoint **out);
void ivl_st_close(ivl_st_checkpoint *ck);

int ivl_st_count(const ivl_st_checkpoint *ck);
const ivl_st_tensor *ivl_st_at(const ivl_st_checkpoint *ck, int i);   // sorted by name
const ivl_st_tensor *ivl_st_find(const ivl_st_checkpoint *ck, const char *name);
const char *ivl_st_file_path(const ivl_st_checkpoint *ck, int file);
uint64_t ivl_st_total_bytes(const ivl_st_checkpoint *ck);   // sum of all tensors' data

// Reads bytes [byte0, byte0+n) of tensor t's data into dst. 0 or -1 (I/O error, short read).
int ivl_st_read(const ivl_st_checkpoint *ck, const ivl_st_tensor *t, uint64_t byte0,
                uint64_t n, void *dst);

#endif
